"""Answer forms: one problem answered with worked steps or directly, chosen by an instruction.

"Models need tokens to think" is measured by asking the same held-out problem both ways of the same
model and pairing the grades by problem. For that to measure thinking rather than obedience, both
forms are trained on the same problems in equal number (tasks/chat.py's math and spelling records,
lab/train/math_practice.py): a worked solution by default, the bare Answer line when the question
ends with DIRECT_INSTRUCTION. The eval suites ask with the same instruction (evals/suites.py).
"""

from __future__ import annotations

DIRECT_INSTRUCTION = " Answer directly with just the answer."
FORMS = ("worked", "direct")


def ask(question: str, form: str) -> str:
    """The question as the user writes it for one form; a plain question asks for worked steps."""
    return question + DIRECT_INSTRUCTION if form == "direct" else question


def reply(solution: str, answer: str, form: str) -> str:
    """The assistant's answer in one form: the worked solution (ending "Answer: X") or that line alone."""
    return f"Answer: {answer}" if form == "direct" else solution


def both_forms(question: str, solution: str, answer: str) -> list[tuple[str, str, str]]:
    """(form, user message, assistant message) for each form of one problem."""
    return [(form, ask(question, form), reply(solution, answer, form)) for form in FORMS]
