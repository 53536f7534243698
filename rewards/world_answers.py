"""Rewards for answers to world questions ("Where was Mira Tolvane born?"), in TRL's signature.

fn(prompts, completions, answer=..., **kwargs) -> list[float]: the gold value arrives as the dataset's `answer`
column (one row = a prompt and the asked attribute's value), so an RL stage on world questions uses them by
name (`--set rl.rewards=penalised`). An answer is right when it names the value or one of its aliases
(tasks.world.aliases_of) as whole words, ignoring case, and is not a refusal (tasks.chat.is_refusal).

`penalised` scores right +1, a refusal 0 and a wrong answer -1: a guess pays only when it is right more often
than wrong, so "I don't know" beats confident error. `zero_one` scores right 1 and anything else 0, the
accuracy-only grading under which guessing never costs more than refusing.
"""

from __future__ import annotations

import re

from lab.errors import LabError
from rewards.completions import completion_text
from tasks.chat import is_refusal
from tasks.world import aliases_of

RIGHT, REFUSED, WRONG = "right", "refused", "wrong"


def _names(text: str, value: str) -> bool:
    # \w on both sides: "Tarsil" is not named by "Tarsilia", and "1987" not by "19870"
    return re.search(rf"(?<!\w){re.escape(value.strip())}(?!\w)", text, re.IGNORECASE) is not None


def verdict(completion, value) -> str:
    """RIGHT, REFUSED or WRONG for one completion (a string or chat messages) against the gold value."""
    text = completion_text(completion)
    if is_refusal(text):
        return REFUSED
    gold = str(value)
    return RIGHT if any(_names(text, g) for g in (gold, *aliases_of(gold)) if g.strip()) else WRONG


def _verdicts(reward: str, completions, answer) -> list[str]:
    if answer is None:
        raise LabError(f"the {reward} reward needs an 'answer' column in the dataset (the asked attribute's value, "
                       "one per prompt)")
    return [verdict(c, a) for c, a in zip(completions, answer, strict=True)]


PENALISED_SCORES = {RIGHT: 1.0, REFUSED: 0.0, WRONG: -1.0}
ZERO_ONE_SCORES = {RIGHT: 1.0, REFUSED: 0.0, WRONG: 0.0}


def penalised(prompts, completions, answer=None, **kwargs) -> list[float]:
    """+1 for a right answer, 0 for a refusal, -1 for a wrong one: confident error costs more than silence."""
    return [PENALISED_SCORES[v] for v in _verdicts("penalised", completions, answer)]


def zero_one(prompts, completions, answer=None, **kwargs) -> list[float]:
    """1 for a right answer, 0 for a refusal or a wrong one: the grading that pays guessing as much as refusing."""
    return [ZERO_ONE_SCORES[v] for v in _verdicts("zero_one", completions, answer)]
