"""An extracted answer's text made canonical, and the in-process check that settles plain numbers.

Most RL answers are plain numbers ("72", "3/4", "1,000", "50%"), so they are compared here with Fraction,
exactly and without sympy; only what this cannot settle goes to the verifier's worker pool. The normaliser
unboxes a boxed gold, drops TeX wrappers, \\text{} (keeping its content), trailing units and "$", reads thousands
separators ("1,000", "1{,}000", "1 000", "10\\;000") and rewrites a mixed number ("2\\frac{3}{4}", "1 1/2") as the
fraction it means; rewards/verifier.py's docstring has the rules this implements.
"""

from __future__ import annotations

import re
from fractions import Fraction

from rewards.extract import BOXED, MAX_CHARS, braced, is_math, last

# what the workers' parsers read; anything else (quotes, underscores, "!") is text, not math
ALLOWED = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 +-*/^()[]{},.=;%<>|\\")
LATEX_ALLOWED = ALLOWED | set("&_|'!:")  # LaTeX's matrices' & and what its parser also reads (x_1, |x|, f')

# relations spelled in Unicode or plain text, as TeX writes them (rewards/field_parser.py reads them too)
RELATIONS = [("≤", "\\le "), ("≥", "\\ge "), ("≠", "\\ne "), ("±", "\\pm "), ("<=", "\\le "), (">=", "\\ge ")]
_REPLACE = [("\\left", ""), ("\\right", ""), ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\cfrac", "\\frac"),
            ("\\(", ""), ("\\)", ""), ("\\[", ""), ("\\]", ""), ("\\cdot", "*"),
            ("\\times", "*"), ("\\div", "/"), ("\\%", "%"), ("\\$", ""), ("$", ""), ("\\{", "{"), ("\\}", "}"),
            ("\\infty", "oo"), ("\\pi", " pi "), ("\\cup", ";"), ("\\in", "="), ("\\!", ""), ("\\,", ""),
            ("{,}", ","), ("\\;", " "), ("\\:", " "), ("\\ ", " "), ("^{\\circ}", ""), ("^\\circ", ""), ("−", "-"),
            ("×", "*"), ("÷", "/"), ("π", " pi "), ("∞", "oo"), ("°", "")] + RELATIONS + \
           [("!=", "\\ne ")]
_TEXT = re.compile(r"\\(?:text|textbf|textnormal|textit|mathrm|mathbf|mathit|mbox|operatorname)\s*"
                   r"\{((?:[^{}]|\{[^{}]*\})*)\}")  # one level of braces inside: \mathbf{\frac{3}{4}}
_UNIT = re.compile(r"[A-Za-z]{2,}(?:\^\d)?[.,]?")
_KEYWORDS = {"pi", "oo", "or", "and", "sqrt", "inf", "infty"}
_THOUSANDS = re.compile(r"[-+]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?")  # "0,111" is no thousands number
_SPACE_THOUSANDS = re.compile(r"[-+]?[1-9]\d{0,2}(?: \d{3})+(?:\.\d+)?")  # "1 000", "10\;000", "7 425 000"
_DECIMAL_COMMA = re.compile(r"([-+]?\d+),(\d+)")  # "1,5", "1000,99", "0,111": no thousands number
_DECIMAL = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)")
_RATIO = re.compile(r"([-+]?)\s*(?:(\d+)\s*/\s*(\d+)|\\frac\{(\d+)\}\{(\d+)\})")
# a whole number, then a proper fraction: "2\frac{3}{4}", "2 \frac34", "1 1/2" (not "1/2" alone, not "2 \cdot 1/2")
_MIXED = re.compile(r"([A-Za-z]\s*=\s*)?([-+]?)(\d{1,3}(?: \d{3})+|\d+)"  # "d = ", a sign, the whole part ("1 000")
                    r"(?:\s*\\frac\{(\d+)\}\{(\d+)\}|\s*\\frac\s*(\d)\s*(\d)|\s+(\d+)/(\d+))")


def _mixed_number(s: str) -> str:
    """A whole answer that is a mixed number, or assigns one, as the fraction it means ("2\\frac{3}{4}" -> "11/4",
    "d = 15\\frac{1}{2}" -> "d = 31/2"); else `s`."""
    m = _MIXED.fullmatch(s)
    if not m:
        return s
    num, den = next((int(a), int(b)) for a, b in zip(m.groups()[3::2], m.groups()[4::2]) if a is not None)
    if not 0 <= num < den:
        return s  # "2\frac{5}{4}" is no mixed number: a product, as the parser reads it
    value = (int(m[3].replace(" ", "")) + Fraction(num, den)) * (-1 if m[2] == "-" else 1)
    return f"{m[1] or ''}{value.numerator}/{value.denominator}"


def normalize(s: str) -> str:
    box = last(BOXED, s)  # a gold stored boxed: "\boxed{11111111100}"
    if box and (inside := braced(s, box.end())) is not None:
        s = inside
    s = re.sub(r",\\!\s*", ",", _TEXT.sub(r" \1", s))  # "32,\! 349": a thousands separator, spaced in TeX
    for a, b in _REPLACE:
        s = s.replace(a, b)
    words = s.strip().rstrip(".").split()
    # trailing words after a number, letter or bracket are units: "12 apples", "5 cm^2"
    while len(words) > 1 and _UNIT.fullmatch(words[-1]) and words[-1].lower() not in _KEYWORDS \
            and re.search(r"[\w)\]}]$", words[-2]):
        words.pop()
    s = " ".join(words)
    if _SPACE_THOUSANDS.fullmatch(s):
        return s.replace(" ", "")
    return s.replace(",", "") if _THOUSANDS.fullmatch(s) else _mixed_number(s)


def reads_as_answer(text: str) -> bool:
    """An answer on its own once normalised (trailing units, \\text{} and TeX wrappers dropped): no words but
    "or", "and" and math's names, so "72 apples" and "\\frac{1}{2}" are and "see above" is not; the test
    extract_answer applies to a whole response."""
    return is_math(normalize(text))


def alternatives(s: str, percent: bool) -> list[tuple[str, Fraction]]:
    """(text, scale) readings: a trailing % is dropped, and with percent=True also read as /100; "1,5" (a comma
    that is no thousands separator) is both the list 1, 5 and the decimal 1.5."""
    base = s[:-1].strip() if s.endswith("%") else s
    texts = [base] + ([".".join(m.groups())] if (m := _DECIMAL_COMMA.fullmatch(base)) else [])
    return [(t, Fraction(1)) for t in texts] + ([(t, Fraction(1, 100)) for t in texts] if percent and base != s else [])


def number(s: str) -> Fraction | None:
    """Integers, decimals and a/b or \\frac{a}{b} as exact fractions; None for anything else."""
    if _DECIMAL.fullmatch(s):
        return Fraction(s)
    m = _RATIO.fullmatch(s)
    n, d = ((m[2], m[3]) if m[2] else (m[4], m[5])) if m else ("0", "0")
    return Fraction(int(m[1] + n), int(d)) if int(d) else None


def precheck(pred: str | None, gold: str, percent: bool) -> str | None:
    """Decide in-process whatever needs no sympy; None means a worker must look."""
    if pred is None or not pred.strip():
        return "no_answer"
    if len(pred) > MAX_CHARS or len(gold) > MAX_CHARS:
        return "unparseable"
    p, g = normalize(pred), normalize(gold)
    if p == g:
        return "equal"
    for raw, norm in ((pred, p), (gold, g)):  # quotes, underscores, ...: not math, unless LaTeX for the LaTeX parser
        if not set(norm) <= ALLOWED and not ("\\" in raw and set(norm) <= LATEX_ALLOWED):
            return "unparseable"
    ps = [(number(t), k) for t, k in alternatives(p, percent)]
    gs = [(number(t), k) for t, k in alternatives(g, percent)]
    if all(v is not None for v, _ in ps + gs):
        return "equal" if any(a * i == b * j for a, i in ps for b, j in gs) else "not_equal"
    return None
