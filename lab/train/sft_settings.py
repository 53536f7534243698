"""SFT's settings (both variants, sft and sft-idk): optimisation, the knowledge probe, the data mixture
and the assistant's identity; and math practice's (sft-math, `math_sft.*`, lab/train/math_practice.py).

Torch-free, beside lab/train/sft.py (which imports torch at load), so the presets load without torch; why
some defaults are what they are is in docs/settings-notes.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from lab.errors import LabError
from tasks.chat import ChatMixture
from tasks.identity import Identity

KNOWN_UNITS = ("question", "person")


def check_known_unit(unit: str) -> None:
    if unit not in KNOWN_UNITS:
        raise LabError(f"unknown sft.known_unit '{unit}'; valid: {', '.join(KNOWN_UNITS)}")


@dataclass
class SFTSettings:
    epochs: float = 2.0
    lr: float = 1e-3
    batch_size: int = 32
    grad_accum: int = 1
    max_length: int = 384
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    log_every: int = 10
    ckpt_every: int = 100  # resume checkpoints (with optimizer state) every N steps; 0 = none, weights only
    lora_r: int = 0  # 0 = full fine-tune; > 0 = LoRA of this rank (peft), merged into the saved model
    lora_alpha: int = 16
    # knowledge probing for sft-idk: a question is known if >= known_threshold of probe_samples are correct
    probe_samples: int = 8
    probe_temperature: float = 0.7
    known_threshold: float = 0.5
    # what "known" is decided for: each "question" alone, or each "person" (the mean correct share over their
    # questions), so that "I don't know who that is" is said of a person and never beside an answer about them
    known_unit: str = "person"
    mixture: ChatMixture = field(default_factory=lambda: ChatMixture(
        qa=1500, math=300, spelling=300, tool_use=450, identity=400, context=600))
    identity: Identity = field(default_factory=Identity)

    def planned_steps(self, summary: dict) -> int:
        """The optimiser steps this stage takes with these settings (`summary`: a run of it, for its data size)."""
        return math.ceil(self.epochs * math.ceil(summary["conversations"] / (self.batch_size * self.grad_accum)))

    def __post_init__(self):
        check_known_unit(self.known_unit)
        if not 0.0 <= self.known_threshold <= 1.0:
            raise LabError(f"sft.known_threshold must be within [0, 1], got {self.known_threshold}")


@dataclass
class MathSFTSettings:
    tasks: tuple[str, ...] = ("arithmetic",)  # the generator's task families practised
    bands: tuple[int, ...] = (2,)  # their difficulty bands (2: two-digit column addition and subtraction)
    # generated training problems, each seen once in each form. Not fewer with checks: on the dev world 4,500 (as
    # many answer tokens as 6,000 plain solutions) left held-out greedy accuracy at 0.34, 6,000 at 0.66 (plain: 0.70)
    problems: int = 6000
    # the answer forms each problem is trained in (tasks/answer_forms.py): worked steps and the bare answer
    forms: tuple[str, ...] = ("worked", "direct")
    replay: int = 1000  # conversations of the source's own SFT mixture mixed in, against forgetting
    check_share: float = 0.5  # share of worked solutions that check their result (the inverse operation on it)
    # share of those checks that catch a planted slip in one column step, followed by the redo (tasks/math_checks.py)
    slip_share: float = 0.3
    batch_size: int = 15
    lr: float = 1e-3  # constant after a short warm-up
    log_every: int = 10
    ckpt_every: int = 100
    seed: int = 0

    def planned_steps(self, summary: dict) -> int:
        """The optimiser steps this stage takes with these settings (`summary`: a run of it, for its data size)."""
        return max(1, (self.problems * len(self.forms) + self.replay) // self.batch_size)

    def __post_init__(self):
        for name in ("check_share", "slip_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise LabError(f"math_sft.{name} must be within [0, 1], got {getattr(self, name)}")
