"""Reward functions for RL on math, in TRL's signature: fn(prompts, completions, **kwargs) -> list[float].

A completion is a string or a list of chat messages (rewards/completions.completion_text reads either);
dataset columns arrive as keyword lists, the gold answer in `answer`. Correctness is the reward we care
about; `format` pays for the shape that makes answers checkable (reasoning lines, then a final "Answer: ..."
line), and `length_penalty` discourages rambling past a target length. TRL logs each function under its
__name__, which is its name in rewards/registry.REWARDS (so what shows up in training logs).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from lab.errors import LabError
from rewards.completions import completion_text
from rewards.verifier import extract_answer, verify_many

_ANSWER_LINE = re.compile(r"\**\s*(?:final\s+)?answer\s*(?:is\s*)?\**\s*[:：]\s*\**\s*\S", re.I)
_BOXED = re.compile(r"\\boxed\s*\{.*\S.*\}")  # closed, with something inside


def correctness(prompts, completions, answer=None, **kwargs) -> list[float]:
    """1.0 when the extracted final answer is equivalent to the gold `answer`, else 0.0."""
    if answer is None:
        raise LabError("the correctness reward needs an 'answer' column in the dataset")
    verdicts = verify_many([(completion_text(c), str(a)) for c, a in zip(completions, answer, strict=True)])
    return [1.0 if v.equivalent else 0.0 for v in verdicts]


def exact_match(prompts, completions, answer=None, **kwargs) -> list[float]:
    """1.0 when the extracted final answer is the gold string, character for character (spaces aside): the
    naive reward the verifier is compared against. "0.5" for "1/2", "x = 3" for "3" or "2/4" earn nothing."""
    if answer is None:
        raise LabError("the exact_match reward needs an 'answer' column in the dataset")
    squash = lambda s: "".join((s or "").split())  # noqa: E731
    return [1.0 if squash(extract_answer(completion_text(c))) == squash(str(a)) else 0.0
            for c, a in zip(completions, answer, strict=True)]


def format_reward(prompts, completions, **kwargs) -> list[float]:
    """1.0 for reasoning lines followed by a final "Answer: ..." (or \\boxed{...}) line, 0.5 for the marked
    answer alone, 0.0 when the completion does not end with a marked answer (e.g. it was cut off)."""
    scores = []
    for c in completions:
        lines = [line.strip() for line in completion_text(c).splitlines() if line.strip()]
        marked = bool(lines) and bool(_ANSWER_LINE.match(lines[-1]) or _BOXED.search(lines[-1]))
        scores.append(0.0 if not marked else 1.0 if len(lines) > 1 else 0.5)
    return scores


format_reward.__name__ = "format"  # its registry name, what TRL logs (a `def format` would shadow the builtin)


def length_penalty(target_chars: int = 1000, scale: float = 0.5) -> Callable[..., list[float]]:
    """A reward function giving 0 up to target_chars and -scale * excess / target_chars beyond, capped at
    -scale (reached at twice the target) so length never outweighs a correct answer."""
    if target_chars <= 0 or scale < 0:
        raise LabError(f"length_penalty needs target_chars > 0 and scale >= 0, got {target_chars} and {scale}")

    def penalty(prompts, completions, **kwargs) -> list[float]:
        excess = [max(0, len(completion_text(c)) - target_chars) for c in completions]
        return [-scale * min(1.0, e / target_chars) for e in excess]

    penalty.__name__ = "length_penalty"
    return penalty


# Phrases of a model checking its own work: the "aha" behaviour RL is said to make emerge. Our worked
# solutions contain "Check: ... Correct." for a share of problems (math_check_share), so SFT seeds it.
SELF_CHECK = re.compile(r"\b(check|wait|verify|let me recompute|double-check|re-?compute)\b", re.IGNORECASE)


def self_check(prompts, completions, **kwargs) -> list[float]:
    """1.0 when the completion checks itself. A tracker, not a target: give it weight 0 and TRL logs its
    per-step mean (rewards/self_check/mean) beside the rewards that are optimised."""
    return [1.0 if SELF_CHECK.search(completion_text(c)) else 0.0 for c in completions]


def group_solved(prompts, completions, answer=None, **kwargs) -> list[float]:
    """1.0 for each completion whose group (the samples of the same prompt) holds at least one correct
    answer. A tracker, not a target (weight 0): its per-step mean is the share of groups that give GRPO any
    signal, since a group with no correct answer has zero correctness advantage. When it sits near 0 from
    step 1 the start is too weak (or its samples too alike) for RL to learn from."""
    right = correctness(prompts, completions, answer=answer)
    solved: dict[str, bool] = {}
    for p, r in zip(prompts, right, strict=True):
        key = str(p)
        solved[key] = solved.get(key, False) or r > 0
    return [1.0 if solved[str(p)] else 0.0 for p in prompts]
