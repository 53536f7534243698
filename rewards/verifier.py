"""Safe final-answer checking for verifiable math rewards.

Rewards run on untrusted model text millions of times, so the checker never evals that text, never hangs
and never exhausts memory. A small recursive-descent parser builds sympy objects through constructors;
text outside a character whitelist, longer than MAX_CHARS, nested deeper than MAX_DEPTH or raising a number
to a huge power is rejected before sympy builds anything. Plain numbers are compared in-process with
Fraction; the rest goes to a pool of worker processes (sympy imported once each) where every check has a
hard deadline and an overrunning worker is killed and replaced. Workers are fresh interpreters started by
subprocess, so the pool survives a later fork (torch, TRL) and needs no `__main__` guard from callers.
LaTeX the lab's parser cannot read (matrices, and whatever else it does not know) goes, in the same workers
and under the same deadline, to math-verify's LaTeX parser, latex2sympy2_extended, after TeX that defines,
reads or writes anything and exponents that would explode are refused; its result is compared by the same rules.

Extraction (extract_answer): the last of \\boxed{} (nested braces), "#### N", "Answer: ..." and "the answer is
..." (its first math span, else its sentence); without a marker the last $...$, \\(...\\) or \\[...\\] span;
else the whole response when it is an answer on its own ("10/9", "x = 3", "\\begin{pmatrix}...", no words but
"or"/"and"); else the last number. A gold answer stored boxed is unboxed.

Equivalence rules (choices, so callers know what "equal" means):
- "50%" equals "50"; "0.5" equals "50%" only with percent=True. Decimals are exact: 0.333 != 1/3.
- "1,000" is a thousands separator only when the whole answer is one such number; "2, 3" is a list; TeX's
  "1{,}000", "32,\\! 349" and spaced "1 000" / "10\\;000" (groups of exactly three) are thousands too.
- Decimal comma: an unspaced "d,d" that is no thousands number ("1,5", "1000,99", "0,111") reads both as the
  list 1, 5 and as the decimal 1.5, so it equals 1.5 and equals {1, 5}; "1,000" stays one thousand.
- ".4" is 0.4; \\dfrac, \\tfrac, \\cfrac are \\frac; \\sqrt3 is \\sqrt{3}, a braceless argument being one token
  (\\sqrt12 is \\sqrt{1}2 = 2, as \\frac12 is 1/2); \\left, \\right, $...$, \\(...\\) and \\[...\\] are dropped.
- "x = 3", "3 = x" and "3" are equal; "x = 2, y = 3" is a system compared by variable name (or as the
  tuple of values ordered by name), and so is "(x, y) = (2, 3)"; other equations are equal when lhs - rhs
  agree up to sign.
- "x = 1 or x = 2", "1, 2" and "{2, 1}" are unordered solution sets; "(1, 2)" is an ordered pair (or the
  open interval), "[1, 2)" an interval, a \\cup union a list of intervals; a bare list is ordered only
  when compared with a tuple. A matrix equals a matrix of the same shape with equal entries, nothing else
  (a column vector is not a tuple).
- trailing words are units ("12 apples", "5 cm^2", "5 \\text{ meters}"); \\text{}, \\textbf{}, \\mathrm{} and the
  like keep their content, "$" is dropped; a one-letter unit ("5 m") stays a variable; no unit conversion.
  "e" is Euler's number, "pi" is pi, "oo"/"\\infty" infinity; "30^\\circ" is 30 (no conversion to radians).
- irrational numbers agree to 40 significant digits; expressions: simplify(a - b) == 0, else equal values
  at random points (which also give a fast "not equal" before simplify).
- not supported: inequalities, \\pm (read by latex2sympy, equal to nothing plain), mixed numbers ("1 1/2" is
  1/2), 1e5 notation, functions (sin, log); a bare product of letters in a sentence-free answer, such as
  "a^2+2ab+b^2" with no marker, is taken for words (its last number is extracted).
"""

from __future__ import annotations

import atexit
import json
import os
import random
import re
import select
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

MAX_CHARS = 500  # longer answers are unparseable: gold answers are short, and this bounds parse time
MAX_DEPTH = 40  # bracket nesting; with MAX_CHARS it also bounds the parser's recursion
MAX_EXP = 1000  # largest |exponent| of a numeric power
MAX_BITS = 40_000  # largest exact numeric power (10^1000 needs ~3,300 bits)
MAX_ITEMS = 32  # items in a list or set; comparing two is quadratic in this
WORKER_MEMORY = 2 << 30  # address-space limit of a worker: a blowup raises MemoryError there
STARTUP_TIMEOUT = 120.0
POOL_SIZE = min(4, os.cpu_count() or 1)
ALLOWED = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 +-*/^()[]{},.=;%\\")
LATEX_ALLOWED = ALLOWED | set("&_|'!:<>")  # matrices' & and what latex2sympy also reads (x_1, |x|, f')
ROOT = str(Path(__file__).resolve().parents[1])


@dataclass(frozen=True)
class Verdict:
    equivalent: bool
    reason: str  # one of: "equal", "not_equal", "unparseable", "timeout", "no_answer"
    prediction: str | None  # the extracted answer text (None if none found)


# ----- extraction --------------------------------------------------------------------------------------

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER = re.compile(r"answer\s*(?:is\s*)?\**\s*[:：]([^\n]*)|answer\s+is\s+([^\n]*)", re.I)
_HASHES = re.compile(r"####([^\n]*)")
_LAST_NUMBER = re.compile(r"(?<![A-Za-z\d.])[-−]?(?:\d+(?:,\d+)*(?:\.\d+)?|\.\d+)(?:/\d+)?(?!\d)")
# inline and display math: $...$, $$...$$, \(...\), \[...\]
_MATH_SPAN = re.compile(r"\$\$(.+?)\$\$|(?<!\\)\$(.+?)(?<!\\)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.S)
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
_TEX_TEXT = re.compile(r"\\[A-Za-z]+(?:\{[A-Za-z*]*\})?")  # a command, with a word argument: \\begin{pmatrix}


def _last(rx: re.Pattern, text: str) -> re.Match | None:
    matches = list(rx.finditer(text))
    return matches[-1] if matches else None


def _braced(text: str, start: int) -> str | None:
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


def _marked(text: str) -> str:
    """What follows an "answer is" marker: its first math span if it has one ("is $-7$. I hope..."), else the
    text up to the end of its sentence."""
    inner = _last(_ANSWER, text)  # "Final Answer: The final answer is $-7$."
    if inner:
        return _marked(_matched(inner))
    span = _MATH_SPAN.search(text)
    if span:
        return _matched(span)
    return re.split(r"\.\s+(?=[A-Z])", text, maxsplit=1)[0]


def _is_math(text: str) -> bool:
    """A short answer on its own ("10/9", "x = 3", "(-\\infty, 3]", "x = 1 \\text{ or } x = 2"), not a sentence: one
    line whose words of two or more letters, outside LaTeX commands, are only "or", "and" and math's names."""
    words = _WORD.findall(_TEX_TEXT.sub(" ", text))
    return len(text) <= MAX_CHARS and "\n" not in text.strip() and all(w in _WORDS for w in words)


def _math_span(text: str) -> bool:
    """A $...$ span that holds math, not the text between two prices ("$5 for apples and $7"): that starts with
    the first price's digits and ends in a word or a space."""
    return not (text[:1].isdigit() and re.search(r"[A-Za-z]{2,}\s*$|\s$", text))


def reads_as_answer(text: str) -> bool:
    """An answer on its own once normalised (trailing units, \\text{} and TeX wrappers dropped): no words but
    "or", "and" and math's names, so "72 apples" and "\\frac{1}{2}" are and "see above" is not; the test
    extract_answer applies to a whole response."""
    return _is_math(_normalize(text))


def extract_answer(response: str, last_number_fallback: bool = True) -> str | None:
    """The final answer: whichever of \\boxed{}, "#### N", "Answer: ..." and "the answer is ..." comes last (so
    "Answer: \\boxed{5}" gives 5). Without a marker: the last math span ($...$, \\(...\\), \\[...\\]); else the
    whole response when it is a short answer on its own ("10/9", "x = 3"); else, if last_number_fallback, the
    last number in the text."""
    response = response or ""
    found = [(m.start(), _marked(_matched(m)) if rx is _ANSWER else m[1])
             for rx in (_ANSWER, _HASHES) if (m := _last(rx, response))]
    box = _last(_BOXED, response)
    if box and (inside := _braced(response, box.end())) is not None:
        found.append((box.start(), inside))
    spans = [m for m in _MATH_SPAN.finditer(response) if _math_span(_matched(m))] if not found else []
    if spans:
        found.append((spans[-1].start(), _matched(spans[-1])))
    if not found and response.strip() and _is_math(response):
        found.append((0, response))
    if found:
        text = max(found)[1].strip().strip("*").strip().rstrip(".,;").strip()  # markdown bold, full stop
        return text or None
    numbers = _LAST_NUMBER.findall(response) if last_number_fallback else []
    return numbers[-1] if numbers else None


# ----- normalisation and the in-process cheap path -------------------------------------------------------

_REPLACE = [("\\left", ""), ("\\right", ""), ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\cfrac", "\\frac"),
            ("\\(", ""), ("\\)", ""), ("\\[", ""), ("\\]", ""), ("\\cdot", "*"),
            ("\\times", "*"), ("\\div", "/"), ("\\%", "%"), ("\\$", ""), ("$", ""), ("\\{", "{"), ("\\}", "}"),
            ("\\infty", "oo"), ("\\pi", " pi "), ("\\cup", ";"), ("\\in", "="), ("\\!", ""), ("\\,", ""), ("{,}", ","),
            ("\\;", " "), ("\\:", " "), ("\\ ", " "), ("^{\\circ}", ""), ("^\\circ", ""), ("−", "-"),
            ("×", "*"), ("÷", "/"), ("π", " pi "), ("∞", "oo"), ("°", "")]
_TEXT = re.compile(r"\\(?:text|textbf|textnormal|textit|mathrm|mathbf|mathit|mbox|operatorname)\s*\{([^{}]*)\}")
_UNIT = re.compile(r"[A-Za-z]{2,}(?:\^\d)?[.,]?")
_KEYWORDS = {"pi", "oo", "or", "and", "sqrt", "inf", "infty"}
_THOUSANDS = re.compile(r"[-+]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?")  # "0,111" is no thousands number
_SPACE_THOUSANDS = re.compile(r"[-+]?[1-9]\d{0,2}(?: \d{3})+(?:\.\d+)?")  # "1 000", "10\;000", "7 425 000"
_DECIMAL_COMMA = re.compile(r"([-+]?\d+),(\d+)")  # "1,5", "1000,99", "0,111": no thousands number
_DECIMAL = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)")
_RATIO = re.compile(r"([-+]?)\s*(?:(\d+)\s*/\s*(\d+)|\\frac\{(\d+)\}\{(\d+)\})")


def _normalize(s: str) -> str:
    box = _last(_BOXED, s)  # a gold stored boxed: "\boxed{11111111100}"
    if box and (inside := _braced(s, box.end())) is not None:
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
    return s.replace(",", "") if _THOUSANDS.fullmatch(s) else s


def _alternatives(s: str, percent: bool) -> list[tuple[str, Fraction]]:
    """(text, scale) readings: a trailing % is dropped, and with percent=True also read as /100; "1,5" (a comma
    that is no thousands separator) is both the list 1, 5 and the decimal 1.5."""
    base = s[:-1].strip() if s.endswith("%") else s
    texts = [base] + ([".".join(m.groups())] if (m := _DECIMAL_COMMA.fullmatch(base)) else [])
    return [(t, Fraction(1)) for t in texts] + ([(t, Fraction(1, 100)) for t in texts] if percent and base != s else [])


def _number(s: str) -> Fraction | None:
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
    p, g = _normalize(pred), _normalize(gold)
    if p == g:
        return "equal"
    for raw, norm in ((pred, p), (gold, g)):  # quotes, underscores, ...: not math, unless LaTeX for the LaTeX parser
        if not set(norm) <= ALLOWED and not ("\\" in raw and set(norm) <= LATEX_ALLOWED):
            return "unparseable"
    ps = [(_number(t), k) for t, k in _alternatives(p, percent)]
    gs = [(_number(t), k) for t, k in _alternatives(g, percent)]
    if all(v is not None for v, _ in ps + gs):
        return "equal" if any(a * i == b * j for a, i in ps for b, j in gs) else "not_equal"
    return None


# ----- parsing into sympy (runs in the workers; ValueError means unparseable) ------------------------------

sp = None  # sympy, imported by the workers only: the main process never needs it
_TOKEN = re.compile(r"\s*(?:(\d+\.?\d*|\.\d+)|\\([A-Za-z]+)|([A-Za-z]+)|(\*\*|[-+*/^()\[\]{},=;]))")
_WORDS = {"pi", "e", "oo", "inf", "infty", "sqrt", "or", "and"}


def _tokens(s: str) -> list[tuple[str, str]]:
    out, i, s = [], 0, s.rstrip()
    while i < len(s):
        m = _TOKEN.match(s, i)
        if not m or (m[3] and m[3] not in _WORDS and len(m[3]) > 3):
            raise ValueError(f"cannot read {s[i:i + 10]!r}")  # unknown characters, or a word: text, not math
        i, (num, cmd, word, op) = m.end(), m.groups()
        if word and word not in _WORDS:
            out += [("name", c) for c in word]  # "xy" is x*y
        else:
            out.append(("num", num) if num else ("cmd", cmd) if cmd else ("name", word) if word else
                       ("op", "^" if op == "**" else op))
    return out + [("end", "")]


def _e(v):
    """v as a sympy expression: tuples, sets and equations cannot take part in arithmetic."""
    if not isinstance(v, sp.Basic):
        raise ValueError("structure inside arithmetic")
    return v


def _pow(b, x):
    """b^x, refusing huge exponents and huge exact results before sympy computes them."""
    b, x = _e(b), _e(x)
    if x.is_Rational and abs(x) > MAX_EXP:
        raise ValueError("exponent too large")
    if b.is_Rational and x.is_Rational and abs(x) * (b.p.bit_length() + b.q.bit_length()) > MAX_BITS:
        raise ValueError("power too large")
    return sp.Pow(b, x)


def _div(a, b):
    if _e(b) == 0:
        raise ValueError("division by zero")
    return sp.Mul(_e(a), sp.Pow(b, -1))


class _Parser:
    """items := item (, ; or and item)* ; item := expr ['=' expr] ; expr := term (+|- term)* ;
    term := unary ((*|/|implicit) unary)* ; unary := (+|-)* power ; power := primary ['^' unary]."""

    def __init__(self, text: str):
        self.toks, self.i, self.depth = _tokens(text), 0, 0

    def at(self, *values: str) -> bool:
        kind, val = self.toks[self.i]
        return kind in ("op", "name") and val in values

    def take(self, *values: str) -> str:
        if not self.at(*values):
            raise ValueError(f"expected {values}, got {self.toks[self.i]}")
        self.i += 1
        return self.toks[self.i - 1][1]

    def items(self) -> list:
        out = [self.item()]
        while self.at(",", ";", "or", "and") and len(out) <= MAX_ITEMS:
            self.i += 1
            out.append(self.item())
        return out

    def item(self):
        lhs = self.expr()
        if not self.at("="):
            return lhs
        self.i += 1
        return ("eq", lhs, self.expr())

    def expr(self):
        self.depth += 1  # every bracket passes through here, so this bounds the recursion
        if self.depth > MAX_DEPTH:
            raise ValueError("too deep")
        v = self.term()
        while self.at("+", "-"):
            op, w = self.take("+", "-"), self.term()
            v = sp.Add(_e(v), _e(w) if op == "+" else sp.Mul(-1, _e(w)))
        self.depth -= 1
        return v

    def term(self):
        v = self.unary()
        while True:
            kind, val = self.toks[self.i]
            if self.at("*", "/"):
                op, w = self.take("*", "/"), self.unary()
                v = sp.Mul(_e(v), _e(w)) if op == "*" else _div(v, w)
            elif kind in ("num", "cmd") or kind == "name" and val not in ("or", "and") or self.at("(", "{"):
                v = sp.Mul(_e(v), _e(self.power()))  # implicit multiplication: 2x, 2\sqrt{2}, (x+1)(x-1)
            else:
                return v

    def unary(self):
        negative = False
        while self.at("+", "-"):  # a loop, not recursion: "- - - - x" cannot exhaust the stack
            negative ^= self.take("+", "-") == "-"
        v = self.power()
        return sp.Mul(-1, _e(v)) if negative else v

    def power(self):
        base = self.primary()
        if self.at("^"):
            self.i += 1
            return _pow(base, self.unary())  # right-associative: 2^3^2 = 2^9
        return base

    def primary(self):
        kind, val = self.toks[self.i]
        self.i += 1
        if kind == "num":
            return sp.Integer(val) if val.isdigit() else sp.Rational(val)  # decimals stay exact
        if val == "sqrt" and kind in ("name", "cmd"):
            n = self.arg() if self.at("[") else sp.Integer(2)  # \sqrt[3]{8}
            return _pow(self.arg(), _div(sp.Integer(1), n))
        if kind == "name" and val not in ("or", "and"):
            return {"pi": sp.pi, "e": sp.E, "oo": sp.oo, "inf": sp.oo, "infty": sp.oo}.get(val) or sp.Symbol(val)
        if kind == "cmd" and val == "frac":
            return _div(self.arg(), self.arg())
        if kind == "op" and val in "([{":
            return self.group(val)
        raise ValueError(f"unexpected {val!r}")

    def arg(self):
        """A LaTeX argument: {expr} (or [n] after \\sqrt), else one token: \\frac12 is 1/2."""
        if self.at("{", "["):
            close = "}" if self.take("{", "[") == "{" else "]"
            v = self.expr()
            self.take(close)
            return v
        kind, val = self.toks[self.i]
        if kind == "num" and val.isdigit() and len(val) > 1:
            self.toks[self.i] = ("num", val[1:])
            return sp.Integer(val[0])
        return self.primary()

    def group(self, opening: str):
        """(...) groups or is a pair/tuple, {...} groups or is a set, mixed brackets make an interval."""
        items = self.items()
        closing = self.take(")", "]", "}")
        if (opening == "{") != (closing == "}"):
            raise ValueError("unbalanced braces")
        if len(items) == 1:
            return items[0]
        if opening == "{":
            return ("set", items)
        if len(items) == 2 and (opening, closing) != ("(", ")"):
            return ("interval", items[0], items[1], opening == "[", closing == "]")
        return ("tuple", items)


def _canon(v):
    """Equations with a lone variable on one side become assignments; lists of assignments to one variable
    become solution sets, to distinct variables systems."""
    if not isinstance(v, tuple) or v[0] in ("interval", "matrix"):
        return v
    if v[0] == "eq" and all(_kind(x) == "tuple" for x in v[1:]) and len(v[1][1]) == len(v[2][1]) \
            and all(isinstance(x, sp.Symbol) for x in v[1][1]):  # "(x, y) = (7, 6)" is the system x = 7, y = 6
        return _canon(("list", [("eq", x, y) for x, y in zip(v[1][1], v[2][1])]))
    if v[0] == "eq":
        for var, val in ((v[1], v[2]), (v[2], v[1])):
            if isinstance(var, sp.Symbol) and not (isinstance(val, sp.Basic) and var in val.free_symbols):
                return ("assign", var.name, _canon(val))
        return ("eq", _e(v[1]), _e(v[2]))
    items = [_canon(x) for x in v[1]]
    names = [x[1] for x in items if isinstance(x, tuple) and x[0] == "assign"]
    if len(names) == len(items) and len(set(names)) == 1:
        return ("set", [x[2] for x in items])
    if len(names) == len(items) == len(set(names)):
        return ("system", {x[1]: x[2] for x in items})
    return (v[0], items)


def _parse(text: str, scale: Fraction):
    parser = _Parser(text)
    items = parser.items()
    if parser.toks[parser.i][0] != "end" or len(items) > MAX_ITEMS:
        raise ValueError(f"unexpected {parser.toks[parser.i]}")
    v = _canon(items[0] if len(items) == 1 else ("list", items))
    return v if scale == 1 else sp.Mul(_e(v), sp.Rational(scale.numerator, scale.denominator))


# ----- equivalence (runs in the workers) ------------------------------------------------------------------

def _values(d, points: int = 5) -> list[complex]:
    """d at a few random rational points of its symbols, skipping points where it is undefined."""
    rng, out = random.Random(0), []
    for _ in range(points):
        try:
            z = complex(d.xreplace({s: sp.Rational(rng.randint(30, 270), 100) for s in d.free_symbols}).evalf(30))
        except (TypeError, ValueError, ZeroDivisionError, OverflowError):
            continue
        out += [z] if z == z and abs(z) != float("inf") else []
    return out


def _equal(a, b) -> bool:
    if a == b:
        return True
    if any(x.has(sp.oo, -sp.oo, sp.zoo, sp.nan) for x in (a, b)):
        return False  # infinities are only equal structurally: oo - oo is nan
    d = sp.Add(a, sp.Mul(-1, b))
    if d.is_Rational:
        return d == 0  # exact numbers: 0.333 != 1/3
    if not d.free_symbols:  # numbers: zero to 40 digits relative to the size of the terms that cancel
        size = sum(abs(t.evalf(20)) for t in sp.Add.make_args(d))
        return bool(abs(d.evalf(60)) <= 1e-40 * size)
    values, scale = _values(d), 1 + max((abs(z) for z in _values(a)), default=0)
    if any(abs(z) > 1e-12 * scale for z in values):
        return False  # clearly different at some point: skip the (slow) simplify
    return sp.simplify(d) == 0 or len(values) >= 3


def _kind(v) -> str:
    return v[0] if isinstance(v, tuple) else "expr"


def _same(a, b) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka == kb == "assign":
        return a[1] == b[1] and _same(a[2], b[2])
    if "assign" in (ka, kb):  # "x = 3" vs "3"
        return _same(a[2], b) if ka == "assign" else _same(a, b[2])
    if ka == kb == "system":
        return a[1].keys() == b[1].keys() and all(_same(a[1][k], b[1][k]) for k in a[1])
    if "system" in (ka, kb):  # "x = 2, y = 3" vs "(2, 3)": values ordered by variable name
        a, b = [("tuple", [v[1][k] for k in sorted(v[1])]) if _kind(v) == "system" else v for v in (a, b)]
        return _same(a, b)
    for x, y in ((a, b), (b, a)):  # a scalar is the set of itself: "{3}" and "3, 3" equal 3
        if _kind(x) in ("list", "set") and _kind(y) in ("expr", "eq", "interval"):
            return all(_same(i, y) for i in x[1])
    if ka == kb == "expr":
        return _equal(a, b)
    if ka == kb == "eq":
        da, db = a[1] - a[2], b[1] - b[2]
        return _equal(da, db) or _equal(da, -db)
    if ka == kb == "matrix":
        return a[1] == b[1] and all(_same(x, y) for x, y in zip(a[2], b[2]))
    if ka == kb == "interval":
        return a[3:] == b[3:] and _same(a[1], b[1]) and _same(a[2], b[2])
    if {ka, kb} == {"interval", "tuple"}:  # (1, 2) is also the open interval
        i, t = (a, b) if ka == "interval" else (b, a)
        return len(t[1]) == 2 and i[3:] == (False, False) and _same(i[1], t[1][0]) and _same(i[2], t[1][1])
    if "tuple" in (ka, kb) and {ka, kb} <= {"tuple", "list"}:
        return len(a[1]) == len(b[1]) and all(_same(x, y) for x, y in zip(a[1], b[1]))
    if {ka, kb} <= {"set", "list"}:  # as sets: every item has an equal partner on the other side
        return all(any(_same(x, y) for y in b[1]) for x in a[1]) and all(any(_same(x, y) for x in a[1]) for y in b[1])
    return False


# ----- LaTeX through the field's parser (latex2sympy2_extended, math-verify's; runs in the workers) ----------

# TeX that defines, reads or writes anything is refused before any parser sees it (latex2sympy executes none
# of it, but an answer containing it is not an answer); so are exponents a power would explode on.
_TEX_PROGRAM = re.compile(r"\\(?:def|gdef|edef|let|newcommand|renewcommand|input|include|write|read|openin|openout"
                          r"|catcode|csname|expandafter|immediate|special)(?![A-Za-z])")
_BIG_EXPONENT = re.compile(r"\^\s*\{?\s*[-+]?\s*(?:\d{4,}|[^{}]*\^)")


def _from_latex(text: str):
    """`text` as LaTeX, through latex2sympy2_extended (with math-verify's normalisation of units, malformed
    operators such as \\sqrt3, and spacing nits), in the lab's own forms. ValueError when it cannot be read."""
    if _TEX_PROGRAM.search(text) or _BIG_EXPONENT.search(text):
        raise ValueError("not an answer")
    depth = deepest = 0
    for c in text:  # the grammar recurses per bracket: bound it as the lab's parser does
        depth += (c in "{([") - (c in "})]")
        deepest = max(deepest, depth)
    if deepest > MAX_DEPTH:
        raise ValueError("too deep")
    from latex2sympy2_extended import NormalizationConfig, latex2sympy

    config = NormalizationConfig(basic_latex=True, units=True, malformed_operators=True, nits=True, boxed="last",
                                 equations=False)
    try:
        value = latex2sympy(text, normalization_config=config)
    except Exception as e:  # the ANTLR parser raises bare Exceptions for text it cannot read
        raise ValueError(str(e)[:80]) from None
    return _canon(_from_sympy(value))


def _from_sympy(v):
    """latex2sympy's objects in the forms _same compares: intervals, unions (a list of intervals), finite sets,
    tuples, matrices (their shape and entries), equations, expressions."""
    if isinstance(v, sp.MatrixBase):
        return ("matrix", v.shape, [_from_sympy(x) for x in v])
    if isinstance(v, sp.Interval):
        return ("interval", v.start, v.end, not v.left_open, not v.right_open)
    if isinstance(v, sp.Union):
        return ("list", [_from_sympy(x) for x in v.args])
    if isinstance(v, sp.FiniteSet):
        return ("set", [_from_sympy(x) for x in v.args])
    if isinstance(v, sp.Tuple):
        return ("tuple", [_from_sympy(x) for x in v.args])
    if isinstance(v, sp.Eq):
        return ("eq", _from_sympy(v.lhs), _from_sympy(v.rhs))
    if isinstance(v, sp.Expr):
        return v
    raise ValueError(f"not a value: {type(v).__name__}")


def _readings(text: str, percent: bool) -> list:
    """Every reading of one side: the lab's parser on the normalised text; where it cannot read it (a matrix,
    LaTeX it does not know), latex2sympy on the text as written."""
    try:
        return [_parse(t, k) for t, k in _alternatives(_normalize(text), percent)]
    except (ValueError, TypeError, AttributeError, IndexError, RecursionError, MemoryError):
        if "\\" not in text:
            raise
        return [_from_latex(text)]


def _check(pred: str, gold: str, percent: bool) -> str:
    try:
        ps, gs = _readings(pred, percent), _readings(gold, percent)
    except (ValueError, TypeError, AttributeError, IndexError, RecursionError, MemoryError):
        return "unparseable"
    try:
        return "equal" if any(_same(p, g) for p in ps for g in gs) else "not_equal"
    except Exception:  # sympy can raise almost anything on odd input; it cannot be shown equal then
        return "not_equal"


# ----- the worker pool ------------------------------------------------------------------------------------

def _worker_main() -> None:
    """A worker: one JSON request per line on stdin, one JSON reply per line on the original stdout."""
    global sp
    import resource
    import warnings
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY, WORKER_MEMORY))
    warnings.simplefilter("ignore")
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # stray prints from libraries must not corrupt the reply channel
    import sympy
    sp = sympy
    _check("x(x+1)", "x^2+x", False)  # sympy's first simplify loads more modules: keep that off any deadline
    _check("\\begin{pmatrix}1\\end{pmatrix}", "1", False)  # and the LaTeX parser its grammar
    print('"ready"', file=out, flush=True)
    for line in sys.stdin:
        op, *args = json.loads(line)
        if op == "sleep":  # test hook: a check that overruns its deadline
            time.sleep(args[0])
        print(json.dumps("equal" if op == "sleep" else _check(*args)), file=out, flush=True)


class _Worker:
    """One worker process; `job` is the index of the check it runs (None when idle), `due` its deadline."""

    def __init__(self):
        code = f"import sys; sys.path.insert(0, {ROOT!r}); from rewards.verifier import _worker_main; _worker_main()"
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.ready, self.job, self.due = False, None, time.monotonic() + STARTUP_TIMEOUT

    def close(self, kill: bool = True) -> None:
        if kill:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()


class _Pool:
    """Workers start lazily, only as many as there is work for; `lock` makes one batch run at a time."""

    def __init__(self, size: int):
        self.size, self.pid, self.workers, self.lock = size, os.getpid(), [], threading.Lock()

    def run(self, messages: list[list], timeout: float) -> list[str]:
        """Each message checked by some worker within `timeout` seconds of being handed over, order kept."""
        results, todo = [None] * len(messages), deque(range(len(messages)))
        with self.lock:
            self.workers += [_Worker() for _ in range(min(self.size, len(messages)) - len(self.workers))]
            try:
                while todo or any(w.job is not None for w in self.workers):
                    for w in self.workers:
                        if w.ready and w.job is None and todo:
                            self._send(w, todo.popleft(), messages, timeout)
                    self._wait(results)
            except BaseException:  # interrupted: a late reply must not answer the next batch
                for w in [w for w in self.workers if w.job is not None]:
                    self._replace(w)
                raise
        return results

    def _send(self, w: _Worker, job: int, messages: list[list], timeout: float) -> None:
        w.job, w.due = job, time.monotonic() + timeout
        try:
            w.proc.stdin.write((json.dumps(messages[job]) + "\n").encode())
            w.proc.stdin.flush()
        except BrokenPipeError:
            pass  # died while idle: its stdout reports EOF in _wait

    def _wait(self, results: list) -> None:
        busy = [w for w in self.workers if w.job is not None or not w.ready]
        wait = max(0.0, min(w.due for w in busy) - time.monotonic())
        poller = select.poll()  # not select.select: a big training process may hold fds above 1024
        for w in busy:
            poller.register(w.proc.stdout, select.POLLIN)
        readable = {fd for fd, _ in poller.poll(wait * 1000)}
        for w in busy:
            # one reply is outstanding at a time, so readline's buffer never hides a second one from poll
            line = w.proc.stdout.readline() if w.proc.stdout.fileno() in readable else None
            if line is None and time.monotonic() < w.due:
                continue
            if not w.ready and not line:
                raise RuntimeError("a verifier worker failed to start (its stderr says why)")
            if line:  # a verdict, or a new worker's "ready"
                if w.ready:
                    results[w.job] = json.loads(line)
                w.ready, w.job = True, None
            else:  # overran its deadline, or died mid-check (out of memory): only its own check is lost
                results[w.job] = "timeout"
                self._replace(w)

    def _replace(self, w: _Worker) -> None:
        w.close()
        self.workers[self.workers.index(w)] = _Worker()

    def close(self) -> None:
        with self.lock:
            for w in self.workers:
                w.close()
            self.workers = []


_pool = _Pool(POOL_SIZE)  # starts no process until a check needs one


def _new_pool_in_child() -> None:
    """A forked child closes its copies of the parent's pipes (so workers still see EOF when the parent
    exits) and gets a pool of its own, started if it ever needs one."""
    global _pool
    for w in _pool.workers:
        w.close(kill=False)
    _pool = _Pool(POOL_SIZE)


def shutdown() -> None:
    """Stop the pool's workers (registered with atexit); a later check starts new ones."""
    if _pool.pid == os.getpid():
        _pool.close()


atexit.register(shutdown)
os.register_at_fork(after_in_child=_new_pool_in_child)


# ----- public API -----------------------------------------------------------------------------------------

def _verify_all(jobs: list[tuple[str | None, str, bool]], timeout: float) -> list[Verdict]:
    jobs = [(p, str(g), bool(percent)) for p, g, percent in jobs]  # a gold may come from a column of ints
    reasons = [precheck(p, g, percent) for p, g, percent in jobs]
    ask = [i for i, r in enumerate(reasons) if r is None]
    if ask:
        for i, r in zip(ask, _pool.run([["check", *jobs[i]] for i in ask], timeout)):
            reasons[i] = r
    return [Verdict(r == "equal", r, None if r == "no_answer" else p) for r, (p, _, _) in zip(reasons, jobs)]


def verify(prediction: str, gold: str, timeout: float = 2.0, percent: bool = False) -> Verdict:
    """Is an already-extracted answer equivalent to the gold answer? The module docstring has the rules."""
    return _verify_all([(prediction, gold, percent)], timeout)[0]


def verify_response(response: str, gold: str, timeout: float = 2.0, last_number_fallback: bool = True) -> Verdict:
    return verify_many([(response, gold)], timeout, last_number_fallback)[0]


def verify_many(pairs: list[tuple[str, str]], timeout: float = 2.0, last_number_fallback: bool = True) -> list[Verdict]:
    """(response, gold) pairs, extracted here and checked in parallel by the pool; order kept."""
    return _verify_all([(extract_answer(r, last_number_fallback), g, False) for r, g in pairs], timeout)
