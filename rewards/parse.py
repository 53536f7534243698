"""The lab's own parser of answer text into sympy objects: numbers, expressions, equations, lists, sets, tuples,
intervals. Runs in the verifier's worker processes only (the main process never imports sympy).

A small recursive-descent parser builds sympy objects through constructors, never by eval: text outside a
character whitelist, nested deeper than MAX_DEPTH or raising a number to a huge power is refused (ValueError)
before sympy builds anything. Relations, \\pm, functions and LaTeX it does not know are left to the field's
parser (rewards/field_parser.py). Values come out in the forms rewards/equivalence.py compares: a sympy
expression, or a tuple ("eq" | "assign" | "system" | "list" | "set" | "tuple" | "interval" | "matrix", ...).
"""

from __future__ import annotations

import re
from fractions import Fraction

import sympy as sp

from rewards.extract import FUNCTIONS, MATH_WORDS

MAX_DEPTH = 40  # bracket nesting; with the answer length limit it also bounds the parser's recursion
MAX_EXP = 1000  # largest |exponent| of a numeric power
MAX_BITS = 40_000  # largest exact numeric power (10^1000 needs ~3,300 bits)
MAX_ITEMS = 32  # items in a list or set; comparing two is quadratic in this

_TOKEN = re.compile(r"\s*(?:(\d+\.?\d*|\.\d+)|\\([A-Za-z]+)|([A-Za-z]+)|(\*\*|[-+*/^()\[\]{},=;]))")


def _tokens(s: str) -> list[tuple[str, str]]:
    out, i, s = [], 0, s.rstrip()
    while i < len(s):
        m = _TOKEN.match(s, i)
        if not m or (m[3] and m[3] not in MATH_WORDS and (len(m[3]) > 3 or m[3] in FUNCTIONS)):
            raise ValueError(f"cannot read {s[i:i + 10]!r}")  # unknown characters, a word or a function
        i, (num, cmd, word, op) = m.end(), m.groups()
        if word and word not in MATH_WORDS:
            out += [("name", c) for c in word]  # "xy" is x*y
        else:
            out.append(("num", num) if num else ("cmd", cmd) if cmd else ("name", word) if word else
                       ("op", "^" if op == "**" else op))
    return out + [("end", "")]


def as_expr(v):
    """v as a sympy expression: tuples, sets and equations cannot take part in arithmetic."""
    if not isinstance(v, sp.Basic):
        raise ValueError("structure inside arithmetic")
    return v


def _pow(b, x):
    """b^x, refusing huge exponents and huge exact results before sympy computes them."""
    b, x = as_expr(b), as_expr(x)
    if x.is_Rational and abs(x) > MAX_EXP:
        raise ValueError("exponent too large")
    if b.is_Rational and x.is_Rational and abs(x) * (b.p.bit_length() + b.q.bit_length()) > MAX_BITS:
        raise ValueError("power too large")
    return sp.Pow(b, x)


def _div(a, b):
    if as_expr(b) == 0:
        raise ValueError("division by zero")
    return sp.Mul(as_expr(a), sp.Pow(b, -1))


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
            self.i += 1 + (self.toks[self.i][1] == "," and self.toks[self.i + 1][1] in ("or", "and"))  # "1, 2, and 3"
            out.append(self.item())
        return out

    def item(self):
        members = [self.expr()]
        while self.at("=") and len(members) <= MAX_ITEMS:
            self.i += 1
            members.append(self.expr())
        if len(members) > 2:  # a chain, "s = 2*3+4 = 10": its last member is the answer
            return members[-1]
        return ("eq", *members) if len(members) == 2 else members[0]

    def expr(self):
        self.depth += 1  # every bracket passes through here, so this bounds the recursion
        if self.depth > MAX_DEPTH:
            raise ValueError("too deep")
        v = self.term()
        while self.at("+", "-"):
            op, w = self.take("+", "-"), self.term()
            v = sp.Add(as_expr(v), as_expr(w) if op == "+" else sp.Mul(-1, as_expr(w)))
        self.depth -= 1
        return v

    def term(self):
        v = self.unary()
        while True:
            kind, val = self.toks[self.i]
            if self.at("*", "/"):
                op, w = self.take("*", "/"), self.unary()
                v = sp.Mul(as_expr(v), as_expr(w)) if op == "*" else _div(v, w)
            elif kind in ("num", "cmd") or kind == "name" and val not in ("or", "and") or self.at("(", "{"):
                v = sp.Mul(as_expr(v), as_expr(self.power()))  # implicit multiplication: 2x, 2\sqrt{2}, (x+1)(x-1)
            else:
                return v

    def unary(self):
        negative = False
        while self.at("+", "-"):  # a loop, not recursion: "- - - - x" cannot exhaust the stack
            negative ^= self.take("+", "-") == "-"
        v = self.power()
        return sp.Mul(-1, as_expr(v)) if negative else v

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


def kind(v) -> str:
    return v[0] if isinstance(v, tuple) else "expr"


def canon(v):
    """Equations with a lone variable on one side become assignments, and equations of numbers their right side
    ("2*3+4 = 10" is worked arithmetic, then the answer); lists of assignments to one variable become solution
    sets, to distinct variables systems."""
    if not isinstance(v, tuple) or v[0] in ("interval", "matrix", "relation", "halfspace"):
        return v
    if v[0] == "eq" and all(kind(x) == "tuple" for x in v[1:]) and len(v[1][1]) == len(v[2][1]) \
            and all(isinstance(x, sp.Symbol) for x in v[1][1]):  # "(x, y) = (7, 6)" is the system x = 7, y = 6
        return canon(("list", [("eq", x, y) for x, y in zip(v[1][1], v[2][1])]))
    if v[0] == "eq":
        for var, val in ((v[1], v[2]), (v[2], v[1])):
            if isinstance(var, sp.Symbol) and not (isinstance(val, sp.Basic) and var in val.free_symbols):
                return ("assign", var.name, canon(val))
        lhs, rhs = as_expr(v[1]), as_expr(v[2])
        return rhs if not lhs.free_symbols | rhs.free_symbols else ("eq", lhs, rhs)
    items = [canon(x) for x in v[1]]
    names = [x[1] for x in items if isinstance(x, tuple) and x[0] == "assign"]
    if len(names) == len(items) and len(set(names)) == 1:
        return ("set", [x[2] for x in items])
    if len(names) == len(items) == len(set(names)):
        return ("system", {x[1]: x[2] for x in items})
    return (v[0], items)


def parse(text: str, scale: Fraction):
    parser = _Parser(text)
    items = parser.items()
    if parser.toks[parser.i][0] != "end" or len(items) > MAX_ITEMS:
        raise ValueError(f"unexpected {parser.toks[parser.i]}")
    v = canon(items[0] if len(items) == 1 else ("list", items))
    return v if scale == 1 else sp.Mul(as_expr(v), sp.Rational(scale.numerator, scale.denominator))


