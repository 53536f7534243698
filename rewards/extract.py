"""The final answer of a model's response: the text the verifier then compares with a gold answer.

Runs in-process on every response, so it is regexes and one linear scan, never a parser. The order:
1. GSM8K's calculator annotations ("<<3*12=36>>") are dropped, and so is every currency sign: a "$" followed by
   a number whose text up to the next "$" on its line is no math ("$50 - $36 = $14 left", "$5 for apples and
   $7"), so the text between two prices is never taken for a $...$ math span.
2. The last final-answer marker wins over everything found before it: \\boxed{} (nested braces), "#### N",
   "Answer: ...", "the answer is ...", "A: ..." at the start of a line (GSM8K's sample solutions), and a heading
   "# Answer" or "**Final Answer**" with the answer on the next line (PRM800K's model outputs). Inside
   "the answer is ..." its first math span, else its sentence.
3. Without a marker: the last $...$, $$...$$, \\(...\\) or \\[...\\] span, with the spans before it that it is
   listed with ("$x = 2$ or $x = 3$" is "x = 2, x = 3").
4. Else the whole response when it is an answer on its own ("10/9", "x = 3", no words but "or"/"and").
5. Else, if last_number_fallback, the last number in the text.
A gold answer stored boxed is unboxed by the normaliser (rewards/normalize.py), not here.
"""

from __future__ import annotations

import re

MAX_CHARS = 500  # longer answers are unparseable: gold answers are short, and this bounds parse time

BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER = re.compile(r"^[ \t]*(?:#+|\*\*)[ \t]*(?:final[ \t]+)?answer[ \t]*:?[ \t]*(?:\*\*)?[ \t]*:?[ \t]*\n\s*([^\n]+)"
                     r"|answer\s*(?:is\s*)?\**\s*[:：]([^\n]*)|answer\s+is\s+([^\n]*)"
                     r"|^[ \t*]*(?-i:A)[ \t]*\**[:：]\**([^\n]*)", re.I | re.M)
_HASHES = re.compile(r"####([^\n]*)")
_LAST_NUMBER = re.compile(r"(?<![A-Za-z\d.])[-−]?(?:\d+(?:,\d+)*(?:\.\d+)?|\.\d+)(?:/\d+)?(?!\d)")
# inline and display math: $...$, $$...$$, \(...\), \[...\]
_MATH_SPAN = re.compile(r"\$\$(.+?)\$\$|(?<!\\)\$(.+?)(?<!\\)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.S)
_JOINER = re.compile(r"\s*(?:,?\s*or|,\s*and|,)\s*")  # "$x = 2$ or $x = 3$": one answer listed in spans
MAX_JOINED = 6
_STATEMENT = re.compile(r"[=<>]|\\(?:le|ge|ne|leq|geq|neq|in)(?![A-Za-z])")  # "period $2\pi$, $\sin a = b$": no list
_ANNOTATION = re.compile(r"<<[^<>\n]{0,200}>>")  # GSM8K's calculator calls: "$<<9*2=18>>18"
_DOLLAR = re.compile(r"(?<!\\)\$(\$?)")
_PRICE = re.compile(r"\s?[-−]?(?:\d|\.\d)")
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
_TEX_TEXT = re.compile(r"\\[A-Za-z]+(?:\{[A-Za-z*]*\})?")  # a command, with a word argument: \\begin{pmatrix}
# words an answer may hold: "or"/"and" between solutions, math's names, and the functions the verifier evaluates
MATH_WORDS = {"pi", "e", "oo", "inf", "infty", "sqrt", "or", "and"}
FUNCTIONS = {"sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
             "log", "ln", "exp"}
_ANSWER_WORDS = MATH_WORDS | FUNCTIONS


def last(rx: re.Pattern, text: str) -> re.Match | None:
    matches = list(rx.finditer(text))
    return matches[-1] if matches else None


def braced(text: str, start: int) -> str | None:
    """The text from `start` to the brace that closes the one just before it, or None if none does."""
    depth = 1
    for j in range(start, len(text)):
        depth += (text[j] == "{") - (text[j] == "}")
        if depth == 0:
            return text[start:j]
    return None


def _matched(m: re.Match) -> str:
    """The text of whichever alternative group matched (a math span's delimiters, an answer marker's form)."""
    return next(g for g in m.groups() if g is not None)


def is_math(text: str) -> bool:
    """A short answer on its own ("10/9", "x = 3", "(-\\infty, 3]", "x = 1 \\text{ or } x = 2"), not a sentence: one
    line whose words of two or more letters, outside LaTeX commands, are only "or", "and" and math's names."""
    words = _WORD.findall(_TEX_TEXT.sub(" ", text))
    return len(text) <= MAX_CHARS and "\n" not in text.strip() and all(w in _ANSWER_WORDS for w in words)


def _math_between(inner: str) -> bool:
    """Whether the text between a "$" that starts with a number and the next "$" is math ("$12$", "$2x+1$",
    "$24\\text{ cm}^2$") rather than the run between two prices: that has no TeX command but has words, or ends in
    a space or an operator ("$5, $6"), or crosses a line."""
    if "\n" in inner or not inner.strip():
        return False
    return _span_math(inner) and ("\\" in inner or not re.search(r"[\s+\-−*/=(]$", inner))  # "$3,$": MATH's style


def _span_math(inner: str) -> bool:
    """A math span's text holds math: a TeX command, or no words but math's ("$x and then $" holds none)."""
    return "\\" in inner or is_math(inner)


def drop_currency(text: str) -> str:
    """`text` without GSM8K's calculator annotations and without currency signs (see the module docstring)."""
    text = _ANNOTATION.sub("", text)
    out, kept_from, scan = [], 0, 0
    while (m := _DOLLAR.search(text, scan)) is not None:
        j = m.end()
        if m[1]:  # "$$": display math runs to the next "$$"
            close = text.find("$$", j)
            scan = len(text) if close < 0 else close + 2
            continue
        close = text.find("$", j)
        while close > 0 and text[close - 1] == "\\":  # "\$" inside math is a dollar, not the span's end
            close = text.find("$", close + 1)
        line_end = text.find("\n", j) % (len(text) + 1)  # -1 (no newline) becomes the end of the text
        if _PRICE.match(text, j) and (close < 0 or close > line_end or not _math_between(text[j:close])):
            out.append(text[kept_from:m.start()])  # a price: the sign goes, the number stays
            kept_from = scan = j
        else:  # a math span: skip past its closing "$"
            scan = len(text) if close < 0 else close + 1
    return "".join(out) + text[kept_from:]


def _marked(text: str) -> str:
    """What follows an "answer is" marker: its first math span if it has one ("is $-7$. I hope..."), else the
    text up to the end of its sentence. A sentence that names what it answers first ("The largest $n$ is 34")
    gives what follows its last " is "."""
    inner = last(_ANSWER, text)  # "Final Answer: The final answer is $-7$."
    if inner:
        return _marked(_matched(inner))
    span = _MATH_SPAN.search(text)
    sentence = re.split(r"\.\s+", text, maxsplit=1)[0]  # "is 19. <|im_start|>user": chat-template debris after it
    named, _, value = sentence.rpartition(" is ")
    if span and span.end() <= len(named) and re.search(r"\d|\$|\\\(", value):
        return _marked(value)
    return _matched(span) if span else sentence


def _last_spans(response: str, spans: list[re.Match]) -> tuple[int, str]:
    """(start, text) of the last math span, with the spans before it that it lists with ("$x = 2$ or $x = 3$",
    "$1$, $2$, and $3$"): one answer of several parts. A plain "and" joins nothing ("$x = 5$ and $2x = 10$" states
    two things), nor does a comma next to a statement ("period $2\\pi$, $\\sin a = b$")."""
    first = len(spans) - 1
    while first > 0 and len(spans) - first < MAX_JOINED and \
            (joiner := _JOINER.fullmatch(response, spans[first - 1].end(), spans[first].start())) and \
            ("or" in joiner[0] or not _STATEMENT.search(_matched(spans[first - 1]) + _matched(spans[first]))):
        first -= 1
    return spans[first].start(), ", ".join(_matched(m) for m in spans[first:])


def _next_line(text: str, start: int) -> str:
    """The line after a marker that ends its own line ("Thus, the answer is:\n\\[ \\frac{207}{64} \\]"), when that
    line is an answer on its own; else nothing."""
    line = next((x.strip() for x in text[start:start + 2 * MAX_CHARS].split("\n") if x.strip()), "")
    return line if is_math(_MATH_SPAN.sub(_matched, line)) else ""


def extract_answer(response: str, last_number_fallback: bool = True) -> str | None:
    """The final answer of `response` (the module docstring has the order), or None when there is none."""
    response = drop_currency(response or "")
    found = [(m.start(), _marked(_matched(m).strip() or _next_line(response, m.end())) if rx is _ANSWER else m[1])
             for rx in (_ANSWER, _HASHES) if (m := last(rx, response))]
    box = last(BOXED, response)
    if box and (inside := braced(response, box.end())) is not None:
        found.append((box.start(), inside))
    # a span of words ("$x and then $5 more", a stray sign before a letter) is no math: the last number decides
    spans = [m for m in _MATH_SPAN.finditer(response) if _span_math(_matched(m))] if not found else []
    if spans:
        found.append(_last_spans(response, spans))
    if not found and response.strip() and is_math(response):
        found.append((0, response))
    if found:
        text = max(found)[1].strip().strip("*").strip().rstrip(".,;").strip()  # markdown bold, full stop
        return text or None
    numbers = _LAST_NUMBER.findall(response) if last_number_fallback else []
    return numbers[-1] if numbers else None
