"""Math problems with exactly checkable answers, graded into difficulty bands 1 (easiest) to 4.

Each generator draws its parameters from the caller's `random.Random`, computes the gold answer in
exact integer / Fraction arithmetic and writes a short, regular worked solution that a tiny model can
imitate: column arithmetic one digit per line, one operation per line everywhere else. The parameters
go into `extras` so a verifier can recompute the answer without parsing the question.

Train and held-out are disjoint: a problem's split is a hash of its task and parameters (which the
question shows in full), so neither the same question nor a rewording of the same calculation can land
on both sides, whatever the seed. `generate` walks one seeded stream and keeps the problems of the
requested split, so the first k of `generate(cfg, n)` equal `generate(cfg, k)`.

A `check_share` of solutions check their result before the Answer line, and a `slip_share` of the checked
column additions and subtractions carry a planted slip that the check catches and a redo fixes
(tasks/math_checks.py); both default to 0, and at 0 every problem and solution is what it was before slips.

The task families live in tasks/math_families.py, the building blocks of their worked solutions in
tasks/math_solutions.py; this module keeps the public API (MathConfig, Problem, generate) and the split.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from lab.errors import LabError
from tasks.corpus import register_source
from tasks.math_checks import can_slip, slipped_steps
from tasks.math_families import (
    Draft,
    arithmetic,
    fractions,
    linear_equations,
    linear_systems,
    order_of_operations,
    percentages,
    quadratics,
    word_problems,
)

BANDS = (1, 2, 3, 4)
SPLITS = ("train", "heldout")
HELDOUT_PERCENT = 10


@dataclass
class Problem:
    """One sample. `answer` is the canonical gold string; the last line of `solution` is exactly "Answer: <answer>"."""
    id: str
    task: str
    difficulty: int
    question: str
    answer: str
    solution: str
    extras: dict = field(default_factory=dict)


def split_of(text: str) -> str:
    """The split of a text (a problem key, a word), fixed by the text alone so the splits can never overlap."""
    bucket = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") % 100
    return "heldout" if bucket < HELDOUT_PERCENT else "train"


def split_key(task: str, params: dict) -> str:
    """What decides a problem's split: its task and numbers, not its wording. The question shows every
    parameter, so one question text always has one key (disjoint by text), and a rephrased or renamed
    copy of a held-out calculation ("Compute 3 + 4." for "What is 3 + 4?") cannot leak into train."""
    return task + "|" + json.dumps(params, sort_keys=True)


def draw_operands(rng, a_range: tuple[int, int], b_range: tuple[int, int], split: str, op: str = "*") -> tuple[int, int]:
    """Two operands, each uniform over its inclusive range, redrawn until "a op b" falls in `split`: a tool
    demonstration never shows a held-out calculation, and an evaluation never asks one that training showed."""
    while True:
        a, b = rng.randint(*a_range), rng.randint(*b_range)
        if split_of(split_key("arithmetic", {"a": a, "b": b, "op": op})) == split:
            return a, b


# ----- registry and sampling -------------------------------------------------------------------------

TASKS: dict[str, Callable[[random.Random, int], Draft]] = {
    "arithmetic": arithmetic,
    "order_of_operations": order_of_operations,
    "fractions": fractions,
    "percentages": percentages,
    "linear_equations": linear_equations,
    "linear_systems": linear_systems,
    "quadratics": quadratics,
    "word_problems": word_problems,
}


@dataclass
class MathConfig:
    seed: int = 0
    tasks: tuple[str, ...] = tuple(TASKS)
    bands: tuple[int, ...] = (1, 2)
    check_share: float = 0.0  # share of solutions that verify the result before the Answer line
    # share of the checked column additions and subtractions with a planted slip that the check catches and a redo
    # fixes (tasks/math_checks.py); drawn from a stream of its own, so at 0 the problems are what they always were
    slip_share: float = 0.0


def validate(cfg: MathConfig, split: str = "train") -> None:
    unknown = [t for t in cfg.tasks if t not in TASKS]
    if unknown or not cfg.tasks:
        raise LabError(f"unknown math task(s) {unknown or '(none given)'}; valid tasks are {', '.join(TASKS)}")
    bad = [b for b in cfg.bands if b not in BANDS]
    if bad or not cfg.bands:
        raise LabError(f"unknown math band(s) {bad or '(none given)'}; valid bands are {', '.join(map(str, BANDS))}")
    if not 0.0 <= cfg.check_share <= 1.0:
        raise LabError(f"check_share must be between 0 and 1, got {cfg.check_share}")
    if not 0.0 <= cfg.slip_share <= 1.0:
        raise LabError(f"slip_share must be between 0 and 1, got {cfg.slip_share}")
    if split not in SPLITS:
        raise LabError(f"unknown split '{split}'; valid splits are {', '.join(SPLITS)}")


def generate(cfg: MathConfig, n: int, split: str = "train") -> list[Problem]:
    """n problems of one split, deterministic in (cfg, split). Duplicates within a split are allowed:
    band 1 has only a few hundred distinct questions, and training data may repeat."""
    validate(cfg, split)
    rng = random.Random(cfg.seed)  # one stream for both splits; the key's hash decides which keeps it
    out: list[Problem] = []
    for draw in range(1000 * n + 10_000):
        if len(out) >= n:
            break
        task, band = rng.choice(cfg.tasks), rng.choice(cfg.bands)
        draft = TASKS[task](rng, band)
        checked = rng.random() < cfg.check_share  # drawn for every draft so the stream never depends on split
        if split_of(split_key(task, draft.extras)) != split:
            continue
        lines = draft.steps + ([draft.check] if checked else [])
        slip = random.Random(f"slip|{cfg.seed}|{draw}") if checked and cfg.slip_share > 0 else None
        slipped = slip is not None and can_slip(task, draft.extras) and slip.random() < cfg.slip_share
        if slipped:
            e = draft.extras
            lines = slipped_steps(draft.steps, draft.check, e["a"], e["op"], e["b"], slip)
        out.append(Problem(id=f"math-{split}-{cfg.seed}-{len(out):06d}", task=task, difficulty=band,
                           question=draft.question, answer=draft.answer,
                           solution="\n".join(lines + [f"Answer: {draft.answer}"]),
                           extras=draft.extras | {"checked": checked} | ({"slipped": slipped} if cfg.slip_share else {})))
    if len(out) < n:
        raise LabError(f"found only {len(out)} of {n} {split} problems for tasks {cfg.tasks} and bands {cfg.bands}")
    return out


@register_source("math")
def math_documents(n: int, rng: random.Random) -> list[str]:
    """Worked solutions for the pretraining mix, from the train split only (held-out problems stay unseen)."""
    return [f"{p.question}\n{p.solution}" for p in generate(MathConfig(seed=rng.randrange(2**31)), n)]
