"""Whether two answers are the same value: the check the verifier's worker processes run.

Each side is read by the lab's parser (rewards/parse.py) after normalisation, once per reading (a trailing %,
a decimal comma); what that parser cannot read goes to the field's parser (rewards/field_parser.py). Two
readings are equal by the rules of rewards/verifier.py's docstring: exact numbers exactly, irrational numbers to
40 digits, expressions by simplify or by equal values at random points, lists as sets unless compared with a
tuple, systems by variable, relations as the sets they describe. `worker_main` is a worker's loop.
"""

from __future__ import annotations

import json
import os
import random
import resource
import sys
import time
import warnings

import sympy as sp

from rewards import field_parser
from rewards.normalize import alternatives, normalize
from rewards.parse import kind, parse
from rewards.relations import same_halfspace

WORKER_MEMORY = 2 << 30  # address-space limit of a worker: a blowup raises MemoryError there
READ_ERRORS = (ValueError, TypeError, AttributeError, IndexError, RecursionError, MemoryError)


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


def _same(a, b) -> bool:
    """Whether the prediction's reading `a` is the gold's reading `b` (the rules are symmetric but for one: a
    predicted equation of numbers' working is its right side)."""
    ka, kb = kind(a), kind(b)
    if ka == kb == "relation":  # "y \le -2" and "-2 \ge y": one variable, one set
        return a[1] == b[1] and _same(a[2], b[2])
    if "relation" in (ka, kb):  # "x > 1" and "(1, \infty)"
        return _same(a[2], b) if ka == "relation" else _same(a, b[2])
    if ka == kb == "halfspace":  # "2x + 3y \\ge 7" and "-2x - 3y \\le -7"
        return same_halfspace(a[1:], b[1:])
    if ka == kb == "assign":
        return a[1] == b[1] and _same(a[2], b[2])
    if "assign" in (ka, kb):  # "x = 3" vs "3"
        return _same(a[2], b) if ka == "assign" else _same(a, b[2])
    if ka == kb == "system":
        return a[1].keys() == b[1].keys() and all(_same(a[1][k], b[1][k]) for k in a[1])
    if "system" in (ka, kb):  # "x = 2, y = 3" vs "(2, 3)": values ordered by variable name
        a, b = [("tuple", [v[1][k] for k in sorted(v[1])]) if kind(v) == "system" else v for v in (a, b)]
        return _same(a, b)
    for x, y in ((a, b), (b, a)):  # a scalar is the set of itself: "{3}" and "3, 3" equal 3
        if kind(x) in ("list", "set") and kind(y) in ("expr", "eq", "interval"):
            return all(_same(i, y) for i in x[1])
    if ka == kb == "expr":
        return _equal(a, b)
    if ka == "eq" and kb == "expr":  # a prediction "a + b = 12" ends its working in a number: 12 is its answer
        return not a[2].free_symbols and _equal(a[2], b)
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


def _readings(text: str, percent: bool) -> list:
    """Every reading of one side: the lab's parser on the normalised text; where it cannot read it (a relation,
    a matrix, LaTeX it does not know), the field's parser on the text as written."""
    try:
        return [parse(t, k) for t, k in alternatives(normalize(text), percent)]
    except READ_ERRORS:
        if not field_parser.needs_field_parser(text):
            raise
        return [field_parser.read(text)]


def check(pred: str, gold: str, percent: bool) -> str:
    try:
        ps, gs = _readings(pred, percent), _readings(gold, percent)
    except Exception:  # READ_ERRORS, and whatever sympy's solveset raises on a relation it cannot solve
        return "unparseable"
    try:
        return "equal" if any(_same(p, g) for p in ps for g in gs) else "not_equal"
    except Exception:  # sympy can raise almost anything on odd input; it cannot be shown equal then
        return "not_equal"


def worker_main() -> None:
    """A worker: one JSON request per line on stdin, one JSON reply per line on the original stdout."""
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY, WORKER_MEMORY))
    warnings.simplefilter("ignore")
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # stray prints from libraries must not corrupt the reply channel
    check("x(x+1)", "x^2+x", False)  # sympy's first simplify loads more modules: keep that off any deadline
    check("\\begin{pmatrix}1\\end{pmatrix}", "1", False)  # and the LaTeX parser its grammar
    check("x \\le 1", "(-\\infty, 1]", False)  # and solveset's
    print('"ready"', file=out, flush=True)
    for line in sys.stdin:
        op, *args = json.loads(line)
        if op == "sleep":  # test hook: a check that overruns its deadline
            time.sleep(args[0])
        print(json.dumps("equal" if op == "sleep" else check(*args)), file=out, flush=True)
