"""The building blocks of the math problems' worked solutions: one short, regular line per step.

Column arithmetic writes one digit per line with its carry or borrow spelled out, fractions reduce by their
gcd in one line, and every check line undoes the last operation. tasks/math_families.py assembles these
lines into each problem's solution; a tiny model imitates them, so their wording is part of the data.
"""

from __future__ import annotations

from math import gcd

PLACES = ("ones", "tens", "hundreds", "thousands", "ten-thousands", "hundred-thousands")


def terms(*pairs: tuple[int, str]) -> str:
    """Sum of coefficient*variable terms as people write it: terms((3, "x"), (-5, "")) -> "3x - 5"."""
    out = ""
    for c, v in pairs:
        if c == 0:
            continue
        mag = "" if abs(c) == 1 and v else str(abs(c))
        out = (("-" if c < 0 else "") + mag + v) if not out else out + (" - " if c < 0 else " + ") + mag + v
    return out or "0"


def _digit(digits: list[int], i: int) -> int:
    return digits[i] if i < len(digits) else 0


def _digits(n: int) -> list[int]:
    return [int(c) for c in reversed(str(n))]


def apply_op(a: int, op: str, b: int) -> int:
    """Whole-number arithmetic; callers make sure a division is exact."""
    return a + b if op == "+" else a - b if op == "-" else a * b if op == "*" else a // b


def inverse_step(a: int, op: str, b: int, v: int) -> str:
    """The inverse operation that checks `a op b = v`: undoing the step is a genuine re-derivation."""
    if op == "+":
        return f"{v} - {b} = {a}"
    if op == "-":
        return f"{v} + {b} = {a}"
    if op == "/":
        return f"{v} * {b} = {a}"
    return f"{v} / {b} = {a}" if b else (f"{v} / {a} = {b}" if a else f"{a} * {b} = {v}")


# ----- arithmetic: column procedures -----------------------------------------------------------------

def add_steps(a: int, b: int) -> list[str]:
    da, db = _digits(a), _digits(b)
    lines, carry = [], 0
    for i in range(max(len(da), len(db))):
        x, y = _digit(da, i), _digit(db, i)
        s = x + y + carry
        lines.append(f"{PLACES[i]}: {x} + {y} + {carry} = {s}, write {s % 10} carry {s // 10}.")
        carry = s // 10
    if carry:
        lines.append(f"The last carry {carry} goes in front.")
    return lines


def sub_steps(a: int, b: int) -> list[str]:
    da, db = _digits(a), _digits(b)
    lines, borrow = [], 0
    for i in range(len(da)):
        x, y = da[i], _digit(db, i)
        d = x - y - borrow
        if d < 0:  # spell out the borrow: a tiny model copies "add 10" more reliably than a silent fix
            lines.append(f"{PLACES[i]}: {x} - {y} - {borrow} = {d}, add 10 to get {d + 10}, write {d + 10} borrow 1.")
        else:
            lines.append(f"{PLACES[i]}: {x} - {y} - {borrow} = {d}, write {d} borrow 0.")
        borrow = 1 if d < 0 else 0
    return lines


def mul_steps(a: int, b: int) -> list[str]:
    lines, partials = [], []
    for j, y in enumerate(_digits(b)):
        lines.append(f"Multiply {a} by the {PLACES[j]} digit {y}:")
        carry = 0
        for i, x in enumerate(_digits(a)):
            p = x * y + carry
            lines.append(f"{PLACES[i]}: {x} * {y} + {carry} = {p}, write {p % 10} carry {p // 10}.")
            carry = p // 10
        if carry:
            lines.append(f"The last carry {carry} goes in front.")
        partials.append(a * y * 10 ** j)
        lines.append(f"So {a} * {y} = {a * y}" + (f", times {10 ** j} is {partials[-1]}." if j else "."))
    if len(partials) == 2:
        lines.append(f"Add the partial products {partials[0]} + {partials[1]}:")
        lines += add_steps(*partials)
    return lines


# ----- fractions -------------------------------------------------------------------------------------

def simplify_steps(n: int, d: int) -> list[str]:
    g = gcd(n, d)
    if g == 1:
        return [f"gcd({n}, {d}) = 1, so {n}/{d} is already in lowest terms."]
    return [f"gcd({n}, {d}) = {g}, and {n} / {g} = {n // g}, {d} / {g} = {d // g}, so {n}/{d} = {n // g}/{d // g}."]
