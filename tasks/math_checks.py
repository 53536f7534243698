"""Checked column arithmetic with a planted slip: the check is a real computation, and on a slipped result it fails.

A worked solution that checks its result undoes the operation on it (tasks/math_solutions.inverse_step): for
37 + 38 = 75, "Check: 75 - 38 = 37. Correct." A planted slip makes one column step wrong (a dropped carry or
borrow, or a column's digit off by one), so the result is wrong; the check then computes the inverse on that
wrong result, correctly, and the number it gets is not the operand it should give back:

    Result: 65.
    Check: 65 - 38 = 27, not 37.
    Redo the columns.
    ones: 7 + 8 + 0 = 15, write 5 carry 1.  (the right column steps, as every other solution writes them)
    Result: 75.
    Check: 75 - 38 = 37. Correct.
    Answer: 75

So a check can catch an error and the redo fixes it: checking pays off in the data, as it would under RL
(Gandhi et al. 2025: priming with verification and backtracking is what lets RL find them). tasks/math.py
plants slips in a `slip_share` of its checked solutions; only column addition and subtraction slip.
"""

from __future__ import annotations

import random

from tasks.math_solutions import PLACES, apply_op, inverse_step

SLIP_OPS = ("+", "-")  # the column procedures a slip is planted in
REDO = "Redo the columns."
INVERSE = {"+": "-", "-": "+"}


def _digits(n: int) -> list[int]:
    return [int(c) for c in reversed(str(n))]


def _at(digits: list[int], i: int) -> int:
    return digits[i] if i < len(digits) else 0


def slips(a: int, op: str, b: int) -> list[tuple[str, int]]:
    """The slips one column step of `a op b` can carry, as (kind, column): "drop" forgets a carry (or borrow)
    the column produces; "digit" states the column's sum (or difference) one off."""
    da, db = _digits(a), _digits(b)
    out, carry = [], 0
    for i in range(max(len(da), len(db)) if op == "+" else len(da)):
        s = _at(da, i) + _at(db, i) + carry if op == "+" else _at(da, i) - _at(db, i) - carry
        produces = s >= 10 if op == "+" else s < 0
        out += [("drop", i)] if produces else []
        out += [("digit", i)] if op == "+" or s >= 0 else []  # an off-by-one borrow column is a drop in disguise
        carry = 1 if produces else 0
    return out


def column_steps(a: int, op: str, b: int, slip: tuple[str, int] | None = None) -> tuple[list[str], int]:
    """The column lines of `a op b` (op "+" or "-") with at most one slip, and the value they write.
    Without a slip they are tasks/math_solutions.add_steps / sub_steps, line for line."""
    da, db = _digits(a), _digits(b)
    lines, carry, value = [], 0, 0
    if op == "+":
        for i in range(max(len(da), len(db))):
            x, y = _at(da, i), _at(db, i)
            s = x + y + carry
            if slip == ("digit", i):
                s = s - 1 if s else s + 1
            out = 0 if slip == ("drop", i) else s // 10
            lines.append(f"{PLACES[i]}: {x} + {y} + {carry} = {s}, write {s % 10} carry {out}.")
            value += s % 10 * 10 ** i
            carry = out
        if carry:
            lines.append(f"The last carry {carry} goes in front.")
            value += carry * 10 ** max(len(da), len(db))
        return lines, value
    for i in range(len(da)):
        x, y = da[i], _at(db, i)
        d = x - y - carry
        if slip == ("digit", i):
            d = d + 1 if d < 9 else d - 1
        if d < 0:
            out = 0 if slip == ("drop", i) else 1
            lines.append(f"{PLACES[i]}: {x} - {y} - {carry} = {d}, add 10 to get {d + 10}, write {d + 10} borrow {out}.")
            value += (d + 10) * 10 ** i
        else:
            out = 0
            lines.append(f"{PLACES[i]}: {x} - {y} - {carry} = {d}, write {d} borrow 0.")
            value += d * 10 ** i
        carry = out
    return lines, value


def failed_check(a: int, op: str, b: int, wrong: int) -> str:
    """The inverse operation computed on a wrong result: it gives back a number that is not `a`."""
    inv = INVERSE[op]
    return f"Check: {wrong} {inv} {b} = {apply_op(wrong, inv, b)}, not {a}."


def passed_check(a: int, op: str, b: int) -> str:
    """The inverse operation on the right result gives `a` back (the line every checked solution ends with)."""
    return f"Check: {inverse_step(a, op, b, apply_op(a, op, b))}. Correct."


def can_slip(task: str, extras: dict) -> bool:
    return task == "arithmetic" and extras.get("op") in SLIP_OPS


def slipped_steps(steps: list[str], check: str, a: int, op: str, b: int, rng: random.Random) -> list[str]:
    """A checked solution with one slip drawn by `rng`: the opening line of `steps`, the slipped columns, their
    wrong result and the check that catches it, the redo (`steps`' own column lines and result) and `check`,
    the passing check. `steps` are a column problem's worked steps, ending "Result: <value>."."""
    slip = rng.choice(slips(a, op, b))
    lines, wrong = column_steps(a, op, b, slip)
    return [steps[0], *lines, f"Result: {wrong}.", failed_check(a, op, b, wrong), REDO, *steps[1:], check]


def slip_line(solution: str) -> str | None:
    """The planted slip of a slipped solution: the first column line of the first attempt that its redo writes
    otherwise (the lines after a dropped carry follow from it and are right given it); None without a redo."""
    lines = solution.split("\n")
    if REDO not in lines:
        return None
    redo = lines.index(REDO)
    first = [line for line in lines[1:redo] if ": " in line and " = " in line and not line.startswith("Check:")]
    again = [line for line in lines[redo + 1:] if ": " in line and " = " in line and not line.startswith("Check:")]
    return next((a for a, b in zip(first, again) if a != b), None)
