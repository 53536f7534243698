"""Relations and inequalities as what they describe: the set of a variable's values, or a half-space.

Runs in the verifier's worker processes, on latex2sympy's relational objects (rewards/field_parser.py). A
relation in one variable, or a chain or alternatives of them, is the set of that variable's values that satisfy
it: built from its bounds when the variable stands alone on one side ("a < x \\le b" is the interval (a, b], with
symbolic bounds too), else solved over the reals by sympy's solveset ("3 - 2t < 1" is (1, oo)). A single
relation in several variables is a half-space, f < 0, f <= 0 or f != 0 with f = lhs - rhs; two are the same when
their f differ by a positive factor ("2x + 3y >= 7" and "-2x - 3y <= -7"), or any non-zero one for !=.
"""

from __future__ import annotations

import sympy as sp
from sympy.core.function import AppliedUndef

MAX_SOLVE_DEGREE = 12  # solveset on a relation of higher degree can take minutes: such answers are refused
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "!=": "!="}


class SeveralVariables(ValueError):
    """A relation whose solution set would depend on which of its variables it is solved for."""


def _parts(v) -> list:
    return [r for a in sp.Or.make_args(v) for r in sp.And.make_args(a)]


def _bare(r, var):
    """(op, bound) when `var` stands alone on one side of the relation `r` and not on the other, else None."""
    if not isinstance(r, sp.Rel) or isinstance(r, sp.Eq):
        return None
    if r.lhs == var and not r.rhs.has(var):
        return r.rel_op, r.rhs
    if r.rhs == var and not r.lhs.has(var):
        return _FLIP[r.rel_op], r.lhs
    return None


def _unknowns(r) -> set:
    """What a relation's sides may be solved for: its symbols, and applications of functions it names (g(x))."""
    return {t for t in (r.lhs, r.rhs) if isinstance(t, (sp.Symbol, AppliedUndef))}


def solution_set(v) -> tuple[str, sp.Set]:
    """(the variable's name, the set of its values that satisfy `v`); SeveralVariables when `v` has no one
    variable: the bounds of a bare variable must be numbers, or a chain's ("a < x \\le b"), else `v` may hold
    one free symbol, which sympy solves for."""
    parts = _parts(v)
    if not all(isinstance(r, sp.Rel) and not isinstance(r, sp.Eq) for r in parts):
        raise ValueError("a relation mixed with something else")
    bare = set.intersection(*(_unknowns(r) for r in parts))
    bare = [t for t in bare if all(_bare(r, t) for r in parts)]
    if len(bare) == 1 and (len(parts) > 1 or not any(b.free_symbols for _, b in (_bare(r, bare[0]) for r in parts))):
        return str(bare[0]), _solve(v, bare[0])  # "82 \\ge g(x) \\ge -80": the interval of g(x)
    _refuse_slow(v)
    symbols = set().union(*(sp.expand(r.lhs - r.rhs).free_symbols for r in parts))
    if len(symbols) != 1:  # "y \\le 4 - x" is the half-plane "x + y \\le 4", not a set of y
        raise SeveralVariables("a relation in several variables")
    return next(iter(symbols)).name, _solve(v, next(iter(symbols)))


def _solve(v, var) -> sp.Set:
    if isinstance(v, sp.Or):
        return sp.Union(*(_solve(a, var) for a in v.args))
    if isinstance(v, sp.And) and not all(_bare(r, var) for r in v.args):
        return sp.Intersection(*(_solve(a, var) for a in v.args))
    bounds = [_bare(r, var) for r in sp.And.make_args(v)]
    if all(bounds):
        return _interval(bounds)
    return sp.solveset(sp.Rel(sp.expand(v.lhs - v.rhs), 0, v.rel_op), var, sp.S.Reals)


def _refuse_slow(v) -> None:
    """Relations that expanding or solving could take minutes on: a variable raised past MAX_SOLVE_DEGREE, or
    inside a function other than |x| (transcendental). ValueError: the answer is unparseable."""
    if any(p.base.free_symbols and p.exp.is_Number and abs(p.exp) > MAX_SOLVE_DEGREE for p in v.atoms(sp.Pow)) \
            or any(not isinstance(g, sp.Abs) and g.free_symbols for g in v.atoms(sp.Function)):
        raise ValueError("a relation of too high a degree, or transcendental: too slow to solve")


def _interval(bounds) -> sp.Set:
    """The values between a chain's bounds ("a < x", "x \\le b"), less the values it excludes ("x \\ne 4")."""
    lo, lo_open, hi, hi_open, holes = -sp.oo, True, sp.oo, True, []
    for op, b in bounds:
        if op in (">", ">="):
            lo, lo_open = b, op == ">"
        elif op in ("<", "<="):
            hi, hi_open = b, op == "<"
        else:
            holes.append(b)
    out = sp.Interval(lo, hi, lo_open, hi_open)
    return out - sp.FiniteSet(*holes) if holes else out


def halfspace(v) -> tuple[str, sp.Expr]:
    """A single relation in several variables as (op, f) with op one of "<", "<=", "!=" and f = lhs - rhs (or
    rhs - lhs for > and >=)."""
    if not isinstance(v, sp.Rel) or isinstance(v, sp.Eq):
        raise ValueError("a chain of relations in several variables")
    _refuse_slow(v)
    f = sp.expand(v.lhs - v.rhs)
    return (_FLIP[v.rel_op], -f) if v.rel_op in (">", ">=") else (v.rel_op, f)


def same_halfspace(a: tuple[str, sp.Expr], b: tuple[str, sp.Expr]) -> bool:
    """Whether two half-spaces are the same: one op, and f differing by a positive factor (any for !=)."""
    if a[0] != b[0]:
        return False
    ratio = sp.simplify(a[1] / b[1])
    return bool(not ratio.free_symbols and ratio.is_nonzero and (a[0] == "!=" or ratio.is_positive))
