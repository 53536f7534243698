"""A fallible demonstrator of column arithmetic: right on a fixed share of problems, wrong by one fixed rule on the
rest (the experiments/demonstrator stage, lab/experiments/demonstrator.py).

Its worked solutions are the generator's (tasks/math.py, written by tasks/math_solutions.add_steps / sub_steps) on
every problem outside its error class, and on the class it follows a classic buggy rule of children's column
arithmetic (Brown & VanLehn 1980), written as a consistent worked solution, so imitation learns the error
rather than averaging it away:

  addition      the carry is dropped: a column that sums to 10 or more writes its ones digit and "carry 0", so
                the next column never adds it (the last column's carry still goes in front, as a child writes it)
  subtraction   smaller from larger: a column whose top digit is smaller subtracts the top from the bottom and
                never borrows ("tens: 7 - 3 - 0 = 4" for 3 - 7)

The error class is exactly the problems on which the rule changes the answer: an addition with an inner column
whose digits sum to 10 or more, a subtraction with a column whose top digit is smaller. Outside it the rule is
the right procedure. So the demonstrator's accuracy on a set of problems is the share outside the class, and
`stratified` draws sets with a given share in it: a demonstrator right on `rate` of its problems by construction.
"""

from __future__ import annotations

import re
from dataclasses import replace

from lab.errors import LabError
from tasks.math import MathConfig, Problem, generate
from tasks.math_solutions import PLACES, add_steps, sub_steps

RULES = {"+": "drops the carry into the next column",
         "-": "subtracts the smaller digit from the larger in each column, never borrowing"}


def _digits(n: int) -> list[int]:
    return [int(c) for c in reversed(str(n))]


def _digit(digits: list[int], i: int) -> int:
    return digits[i] if i < len(digits) else 0


def operands(problem: Problem) -> tuple[int, str, int]:
    """(a, op, b) of a column-arithmetic problem ("+" or "-"); one LabError for any other problem."""
    extras = problem.extras
    if problem.task != "arithmetic" or extras.get("op") not in RULES:
        raise LabError(f"the demonstrator writes column addition and subtraction; {problem.id} is {problem.task} "
                       f"({extras.get('op')})")
    return extras["a"], extras["op"], extras["b"]


def in_error_class(a: int, op: str, b: int) -> bool:
    """Whether the demonstrator's rule gives a wrong answer to `a op b`: a carry out of an inner column, or a column
    whose top digit is smaller (either alone decides it: the buggy answer is then strictly below the right one)."""
    da, db = _digits(a), _digits(b)
    if op == "+":
        width = max(len(da), len(db))
        return any(_digit(da, i) + _digit(db, i) >= 10 for i in range(width - 1))
    return any(x < _digit(db, i) for i, x in enumerate(da))


def demonstrated_answer(a: int, op: str, b: int) -> int:
    """The demonstrator's answer to `a op b` (its rule; the right answer outside the error class)."""
    da, db = _digits(a), _digits(b)
    if op == "-":
        return sum(abs(x - _digit(db, i)) * 10 ** i for i, x in enumerate(da))
    width = max(len(da), len(db))
    sums = [_digit(da, i) + _digit(db, i) for i in range(width)]
    return sum(s % 10 * 10 ** i for i, s in enumerate(sums[:-1])) + sums[-1] * 10 ** (width - 1)


def demonstrated_steps(a: int, op: str, b: int) -> list[str]:
    """The column lines of the demonstrator's worked solution: the generator's own outside the error class."""
    if not in_error_class(a, op, b):
        return (add_steps if op == "+" else sub_steps)(a, b)
    da, db = _digits(a), _digits(b)
    if op == "-":  # each column larger minus smaller: exactly the right procedure on those digits, no borrow
        top = sum(max(x, _digit(db, i)) * 10 ** i for i, x in enumerate(da))
        return sub_steps(top, sum(min(x, _digit(db, i)) * 10 ** i for i, x in enumerate(da)))
    width, lines = max(len(da), len(db)), []
    for i in range(width):  # add_steps' line, with the carry into the next column dropped
        x, y = _digit(da, i), _digit(db, i)
        carry = (x + y) // 10 if i == width - 1 else 0
        lines.append(f"{PLACES[i]}: {x} + {y} + 0 = {x + y}, write {(x + y) % 10} carry {carry}.")
    if carry:
        lines.append(f"The last carry {carry} goes in front.")
    return lines


def demonstrate(problem: Problem) -> Problem:
    """The problem as the demonstrator answers it: its worked solution and answer (the generator's outside the error
    class); extras gain `gold` (the right answer) and `error_class`. The column lines of the generator's solution
    are replaced by the demonstrator's and its answer is carried into the lines after them (Result, Answer)."""
    a, op, b = operands(problem)
    wrong = in_error_class(a, op, b)
    extras = problem.extras | {"gold": problem.answer, "error_class": wrong}
    if not wrong:
        return replace(problem, extras=extras)
    right = (add_steps if op == "+" else sub_steps)(a, b)
    lines = problem.solution.split("\n")
    start = next((i for i in range(len(lines)) if lines[i : i + len(right)] == right), None)
    if start is None:
        raise LabError(f"{problem.id}: its solution does not hold the column lines of tasks/math_solutions "
                       "(did their format change?)")
    answer = str(demonstrated_answer(a, op, b))
    gold = re.compile(rf"(?<!\d){re.escape(problem.answer)}(?!\d)")
    tail = [gold.sub(answer, line) for line in lines[start + len(right) :]]
    return replace(problem, answer=answer, extras=extras,
                   solution="\n".join(lines[:start] + demonstrated_steps(a, op, b) + tail))


def stratified(cfg: MathConfig, n: int, rate: float, split: str, distinct: bool = False,
               ops: tuple[str, ...] = ("+", "-")) -> list[Problem]:
    """`n` problems of `split` (additions and subtractions of cfg's bands, `ops` only) of which round(n * (1 - rate))
    are in the error class and the rest outside it, in the generator's order (first come first kept in each part);
    `distinct`: no two with the same numbers (held-out sets). Deterministic in its arguments."""
    if not 0 < rate <= 1:
        raise LabError(f"the demonstrator's rate must be in (0, 1], got {rate}")
    quota = {True: round(n * (1 - rate)), False: n - round(n * (1 - rate))}
    size = 2 * n + 100
    while True:
        kept, seen, taken = [], set(), {True: 0, False: 0}
        for p in generate(cfg, size, split):
            if p.task != "arithmetic" or p.extras["op"] not in ops:
                continue
            key = operands(p)
            wrong = in_error_class(*key)
            if taken[wrong] < quota[wrong] and not (distinct and key in seen):
                kept.append(p)
                taken[wrong] += 1
                seen.add(key)
        if len(kept) == n:
            return kept
        if size > 64 * n + 10_000:
            raise LabError(f"found only {taken[True]} of {quota[True]} problems in the demonstrator's error class and "
                           f"{taken[False]} of {quota[False]} outside it ({split} split, bands {cfg.bands}"
                           f"{', distinct' if distinct else ''}); ask for fewer")
        size *= 4
