"""The field's parser for what the lab's own does not read: math-verify's LaTeX extraction and latex2sympy, in the
verifier's worker processes, under their deadline.

Relations and inequalities, \\pm, functions (\\sin, \\log_2), matrices and LaTeX the lab's parser does not know go
here. TeX that defines, reads or writes anything, exponents that would explode and nesting deeper than the lab's
limit are refused first (ValueError), so no parser sees them; math-verify's LaTeX route builds sympy objects
with an ANTLR grammar and never evals text (its plain-expression route, which calls sympy's parse_expr, is not
used). Its objects come back in the lab's forms (rewards/parse.py), so both readings are compared by one set of
rules: a relation in one variable is the set it describes ("-2 \\ge y" is y in (-oo, -2], "a < x \\le b" the
interval (a, b], "t \\ne 4" the reals but 4, "3 - 2t < 1" the interval (1, oo)), a chain of equalities its last
member, \\pm a set of two.
"""

from __future__ import annotations

import logging
import re

import sympy as sp
from latex2sympy2_extended import NormalizationConfig, latex2sympy
from math_verify import LatexExtractionConfig
from math_verify import parse as mv_parse

from rewards import relations
from rewards.extract import FUNCTIONS
from rewards.normalize import RELATIONS
from rewards.parse import canon, kind

_TEX_PROGRAM = re.compile(r"\\(?:def|gdef|edef|let|newcommand|renewcommand|input|include|write|read|openin|openout"
                          r"|catcode|csname|expandafter|immediate|special)(?![A-Za-z])")
# a power with a 4-digit exponent, or a power in an exponent ("2^{10^{100}}", "10^10^10"): they explode
_BIG_EXPONENT = re.compile(r"\^\s*\{?\s*[-+]?\s*\d{4,}|\^\s*\{[^{}]*\^|\^\s*[\w.]+\s*\^")
_BARE_FUNCTION = re.compile(r"(?<![\\A-Za-z])(" + "|".join(sorted(FUNCTIONS, key=len, reverse=True)) + r")(?![A-Za-z])")
_CONFIG = [LatexExtractionConfig()]
MAX_DEPTH = 12  # bracket nesting this parser takes (the lab's own takes 40)
# what math-verify's own normalisation leaves: plain-text relations and TeX's sized brackets
_SPELLINGS = RELATIONS + [("=<", "\\le "), ("=>", "\\ge ")] + \
             [(f"\\{size}{side}", "") for size in ("big", "Big", "bigg", "Bigg") for side in ("l", "r", "")]
_SPACED_DELIMITER = re.compile(r"\\(left|right)\s+(?=[^A-Za-z\s])")  # "\left (" is "\left("
# "\log_2{3}": latex2sympy would take everything after it as the argument (log(3*log(4, 3), 2))
_BRACED_LOG = re.compile(r"\\log_(\d|\{[^{}]*\})\s*\{([^{}]*)\}")
logging.getLogger("math_verify").setLevel(logging.ERROR)  # its "timeout is disabled" note: the pool times checks


def needs_field_parser(text: str) -> bool:
    """Text the lab's parser leaves to this one: LaTeX commands, relations, and function names."""
    return "\\" in text or bool(re.search(r"[<>≤≥≠±]|!=", text)) or bool(_BARE_FUNCTION.search(text))


def read(text: str):
    """`text` as math-verify's LaTeX parser reads it, in the lab's forms; ValueError when it cannot be read."""
    if _TEX_PROGRAM.search(text) or _BIG_EXPONENT.search(text):
        raise ValueError("not an answer")
    depth = deepest = 0
    for c in text:  # the grammar recurses per bracket: bound it as the lab's parser does
        depth += (c in "{([") - (c in "})]")
        deepest = max(deepest, depth)
    if deepest > MAX_DEPTH:  # its ANTLR grammar slows steeply with nesting (20 levels of \sin: 1 s)
        raise ValueError("too deep")
    latex = _BARE_FUNCTION.sub(r"\\\1", text.replace("$", " "))
    for a, b in _SPELLINGS + [("!=", "! =" if "\\" in text else "\\ne ")]:  # in LaTeX, "5!=120" is a factorial
        latex = latex.replace(a, b)
    latex = _BRACED_LOG.sub(r"(\\log_{\1}(\2))", _SPACED_DELIMITER.sub(r"\\\1", latex))
    try:
        return canon(from_sympy(_parse(latex)))
    except ValueError:
        if "\\pm" not in latex and "\\mp" not in latex:
            raise
        return _plus_minus(latex)


def _plus_minus(latex: str):
    """A \\pm the parser cannot read inside a fraction or a list ("x = \\frac{5 \\pm \\sqrt{5}}{2}"): the answer read
    once with + and once with -, as the set of both."""
    plus, minus = (read(latex.replace("\\pm", a).replace("\\mp", b)) for a, b in (("+", "-"), ("-", "+")))
    if kind(plus) == kind(minus) == "assign" and plus[1] == minus[1]:
        return ("assign", plus[1], ("set", [plus[2], minus[2]]))
    items = [x for v in (plus, minus) for x in (v[1] if kind(v) in ("list", "set") else [v])]
    return ("set", items)


def _parse(latex: str):
    """math-verify's extraction and normalisation, then latex2sympy on its own where those read nothing."""
    try:
        found = mv_parse(f"${latex}$", _CONFIG, fallback_mode="no_fallback", parsing_timeout=None)
        if found and not isinstance(found[0], str):
            return found[0]
        config = NormalizationConfig(basic_latex=True, units=False, malformed_operators=True, nits=True, boxed="last",
                                     equations=False)
        return latex2sympy(latex, normalization_config=config)
    except Exception as e:  # the ANTLR parser raises bare Exceptions for text it cannot read
        raise ValueError(str(e)[:80] or "the LaTeX parser cannot read it") from None


def from_sympy(v):
    """latex2sympy's objects in the forms the lab compares: sets (intervals, unions as lists of intervals, finite
    sets), relations as the sets they describe, chains of equalities as their last member, tuples, matrices
    (their shape and entries), equations, expressions."""
    if isinstance(v, sp.MatrixBase):
        return ("matrix", v.shape, [from_sympy(x) for x in v])
    if isinstance(v, sp.Set):
        return from_set(v)
    if isinstance(v, sp.Tuple):
        return ("tuple", [from_sympy(x) for x in v.args])
    if isinstance(v, sp.Eq):
        return ("eq", from_sympy(v.lhs), from_sympy(v.rhs))
    if isinstance(v, sp.And) and all(isinstance(a, sp.Eq) for a in v.args):
        return from_sympy(_last_member(v.args))
    if isinstance(v, (sp.Rel, sp.And, sp.Or)):
        v = v.xreplace(_exact(v))
        try:
            name, values = relations.solution_set(v)
            return ("relation", name, from_set(values))
        except relations.SeveralVariables:
            op, f = relations.halfspace(v)
            return ("halfspace", op, from_sympy(f))
    if isinstance(v, sp.Expr):  # its symbols are real, the lab's plain: x must be the same x on both sides
        try:
            v = v.xreplace(_exact(v)).doit()  # sums, integrals and function values: sin(2*pi) is 0
        except Exception:  # noqa: S110 - what sympy cannot evaluate further is compared as it is
            pass
        return v.xreplace({s: sp.Symbol(s.name) for s in v.free_symbols})
    raise ValueError(f"not a value: {type(v).__name__}")


def _exact(v) -> dict:
    """latex2sympy reads "5.6" as a float: as the lab's parser does, decimals are exact (28/5)."""
    return {f: sp.Rational(str(f)) for f in v.atoms(sp.Float)}


def from_set(s):
    if isinstance(s, sp.Interval):
        return ("interval", from_sympy(s.start), from_sympy(s.end), not s.left_open, not s.right_open)
    if s == sp.S.Reals:
        return ("interval", -sp.oo, sp.oo, False, False)
    if isinstance(s, sp.Union):
        return ("list", [from_set(x) for x in s.args])
    if isinstance(s, sp.FiniteSet):
        return ("set", [from_sympy(x) for x in s.args])
    if s == sp.S.EmptySet:
        return ("set", [])
    raise ValueError(f"a set the lab does not compare: {type(s).__name__}")


def _last_member(eqs) -> sp.Basic:
    """The last member of a chain of equalities that sympy stored as And(Eq(a, b), Eq(b, c)) in its own order:
    the one right-hand side that is no left-hand side."""
    lefts = {e.lhs for e in eqs}
    ends = [e.rhs for e in eqs if e.rhs not in lefts]
    if len(ends) != 1:
        raise ValueError("not a chain of equalities")
    return ends[0]
