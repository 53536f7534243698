"""Verified checks: a "Check:" line counts only when its arithmetic is right and it checks the answer given.

A phrase is not a check ("Check: looks right. Correct." says the word and computes nothing). A check here is
one line "Check: X op Y = Z. Correct." (it passes) or "Check: X op Y = Z, not W." (it fails: the inverse
operation did not give the operand W back), as tasks/math_checks.py writes them. `read_checks` parses the
numbers with a regex (nothing of the model's text is evaluated) and counts a check as verified when

  - its arithmetic is right: X op Y is Z, recomputed here in integers (a division must be exact);
  - it refers to the answer: X is the value it checks, which for the last check is the final answer (the
    "Answer:" line, as the grader reads it) and for an earlier one the "Result:" line it follows;
  - with the question's own "a op b" known, it is that problem's check and its verdict is right: the inverse
    (X - b for a sum, X + b for a difference) brings back an operand, "Correct." exactly when Z is that
    operand, "not W" exactly when W is it and Z is not. Or it redoes the question forward (a op b = X).

A check "changed the answer" when a failing verified check is followed by a different result or final
answer. `verified_check` is the TRL tracker (weight 0: logged, never optimised); evals/math_checks.py
summarises held-out answers with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rewards.completions import completion_text
from rewards.extract import extract_answer

_INT = r"-?\d+"
CHECK_LINE = re.compile(r"^\W*check\b", re.I)
_CHECK = re.compile(rf"^\W*check\W*?:?\s*({_INT})\s*([-+*/])\s*({_INT})\s*=\s*({_INT})\s*(?:,\s*not\s+({_INT})\s*)?[.,]?"
                    r"\s*(correct\.?)?\s*$", re.I)
_RESULT = re.compile(rf"^\W*result\s*:\s*({_INT})\s*\.?\s*$", re.I)
_QUESTION = re.compile(rf"({_INT})\s*([-+*/])\s*({_INT})")
INVERSE = {"+": "-", "-": "+", "*": "/", "/": "*"}


@dataclass(frozen=True)
class Check:
    line: str
    numbers: tuple[int, str, int, int] | None  # X, op, Y, Z; None: the line computes nothing we can read
    not_w: int | None  # W of ", not W": the check says it failed
    passes: bool  # the line ends "Correct."
    checked: int | None  # the value it should check: the result it follows, the final answer for the last check
    arithmetic_right: bool
    verified: bool


@dataclass(frozen=True)
class ResponseChecks:
    checks: tuple[Check, ...]
    answer: int | None  # the final answer as an integer, None when the response marks none (or not a whole number)
    verified: bool  # it holds at least one verified check
    changed: bool  # a failing verified check was followed by a different result or final answer


def _int(text: str | None) -> int | None:
    s = (text or "").replace(",", "").strip().rstrip(".")
    return int(s) if re.fullmatch(_INT, s) else None


def _compute(x: int, op: str, y: int) -> int | None:
    if op == "/":
        return x // y if y and x % y == 0 else None
    return x + y if op == "+" else x - y if op == "-" else x * y


def question_operands(text: str | None) -> tuple[int, str, int] | None:
    """The last "a op b" of a question (or of a prompt, whose last user turn holds it), or None."""
    found = _QUESTION.findall(text or "")
    return (int(found[-1][0]), found[-1][1], int(found[-1][2])) if found else None


def _refers(x: int, op: str, y: int, z: int, not_w: int | None, passes: bool, checked: int | None,
            question: tuple[int, str, int] | None) -> bool:
    """The check is of `checked`, and (when the question is known) of that problem with a verdict that is right."""
    if checked is None:
        return False
    if question is None:
        return x == checked and (not_w is None or z != not_w)
    a, qop, b = question
    if op == qop and z == checked and {x, y} == {a, b} and not_w is None:  # redone forward: a op b = checked
        return passes and _compute(a, qop, b) == checked
    if x != checked or op != INVERSE[qop]:
        return False
    operands = {b: a, a: b} if qop in "+*" else {b: a}  # the operand Y leaves the other to come back
    if y not in operands:
        return False
    back = operands[y]
    return (passes and z == back) if not_w is None else (z != back and not_w == back)


def read_checks(response: str, question: str | None = None) -> ResponseChecks:
    """Every check line of `response`, each judged as the module docstring says; `question`: the problem's text."""
    operands = question_operands(question)
    answer = _int(extract_answer(response, last_number_fallback=False))
    results, found = [], []  # (line number, value) of each Result line; (line number, line, match) of each check
    for i, line in enumerate(line.strip() for line in response.splitlines()):
        if m := _RESULT.match(line):
            results.append((i, int(m[1])))
        elif CHECK_LINE.match(line):
            found.append((i, line, _CHECK.match(line)))
    checks, changed = [], False
    for k, (i, line, m) in enumerate(found):
        before = [v for j, v in results if j < i]
        checked = answer if k == len(found) - 1 else (before[-1] if before else None)
        if m is None:
            checks.append(Check(line, None, None, False, checked, False, False))
            continue
        x, op, y, z = int(m[1]), m[2], int(m[3]), int(m[4])
        not_w, passes = _int(m[5]), m[6] is not None
        right = _compute(x, op, y) == z
        checks.append(Check(line, (x, op, y, z), not_w, passes, checked, right,
                            right and _refers(x, op, y, z, not_w, passes, checked, operands)))
        # a failing check of the result it follows changed the answer when what comes last (a later result,
        # the final answer) is another number
        then = [v for j, v in results if j > i] + ([answer] if answer is not None else [])
        if right and not_w is not None and before and x == before[-1] and then and then[-1] != x:
            changed = True
    return ResponseChecks(tuple(checks), answer, any(c.verified for c in checks), changed)


def has_verified_check(response: str, question: str | None = None) -> bool:
    return read_checks(response, question).verified


def _prompt_text(prompt) -> str:
    """A TRL prompt's text: the string itself, or the last user message of a conversation."""
    if isinstance(prompt, str):
        return prompt
    users = [m for m in prompt or [] if isinstance(m, dict) and m.get("role") == "user"]
    return completion_text([{"content": users[-1].get("content")}]) if users else ""


def verified_check(prompts, completions, **kwargs) -> list[float]:
    """1.0 when the completion holds a verified check of its own answer to the prompt's problem. A tracker, not a
    target: weight 0 logs its per-step mean (rewards/verified_check/mean) beside the optimised rewards."""
    return [1.0 if has_verified_check(completion_text(c), _prompt_text(p)) else 0.0 for p, c in zip(prompts, completions)]
