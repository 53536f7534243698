"""The experiments' settings: the scaling sweep (`scaling.*`), the RL-on-math grid (`math_rewards.*`), reward
over-optimization (`overoptimization.*`), RM quality against over-optimization (`goodhart.*`) and the RLHF
methods' comparison (`rlhf_methods.*`). Torch-free, beside the experiments (which load torch), so the presets
and `lab --help` load without torch; why some defaults are what they are is in docs/settings-notes.md."""

from __future__ import annotations

from dataclasses import dataclass, field

from lab.errors import LabError
from lab.train.rl_settings import RLHFSettings

MATH_REWARDS_ARMS = {  # arm -> (what it changes, RLSettings fields; None: the SFT control)
    "baseline": ("Dr. GRPO, verifier + format", {}),
    "exact_match": ("reward: exact string match, not the verifier",
                    {"rewards": ("exact_match", "format", "correctness"), "reward_weights": (1.0, 0.1, 0.0)}),
    "no_format": ("no format reward", {"rewards": ("correctness",), "reward_weights": (1.0,)}),
    "grpo": ("GRPO (std-normalised advantages)", {"algo": "grpo"}),
    "rloo": ("RLOO (leave-one-out baseline)", {"algo": "rloo"}),
    "sft": ("extra SFT on worked solutions, matched steps and tokens", None),
}


@dataclass
class ChatTranscriptSettings:
    # `experiments/chat` (lab/chat_transcript.py): scripted questions through `lab chat`'s session
    per_check: int = 20  # questions per check (known person in other words, never-seen, spelling, calculator, identity)
    max_new_tokens: int = 96  # as `lab chat`'s default


def parse_sizes(text: str) -> tuple[tuple[int, int], ...]:
    """"64x2,128x4" -> ((64, 2), (128, 4)): hidden size x layers, each a model the preset's context can build
    (heads of 32 dimensions, so a hidden size that is a positive multiple of 32, and at least one layer)."""
    try:
        sizes = tuple((int(d), int(layers)) for d, layers in (part.lower().split("x") for part in text.split(",")))
    except ValueError:
        raise LabError(f"scaling.sizes must look like 64x2,128x4 (hidden size x layers), got '{text}'") from None
    bad = [f"{d}x{layers}" for d, layers in sizes if d % 32 or d <= 0 or layers <= 0]
    if bad:
        raise LabError(f"scaling.sizes: hidden sizes must be positive multiples of 32 (heads of 32 dimensions) and "
                       f"layers at least 1, got {', '.join(bad)}")
    return sizes


@dataclass
class ScalingSettings:
    # the experiments/scaling stage and `lab experiment scaling`: hidden size x layers per model (heads of 32
    # dimensions), steps per model. Sized for make run's budget (~100 s on 2 cores): at least four
    # sizes apart enough for the power-law fit, and a 1-layer -> 2-layer neighbour for the abrupt-copying test.
    sizes: str = "32x1,64x1,64x2,128x2"  # comma-separated hidden size x layers, one model each
    steps: int = 250  # optimiser steps, the same steps and batches for every size: fixed data
    warmup_steps: int = 25  # learning-rate warm-up of each size, within its steps (the rest: pretrain.*)

    def __post_init__(self):
        if len(parse_sizes(self.sizes)) < 2:
            raise LabError(f"scaling.sizes needs at least two sizes, got '{self.sizes}'")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise LabError(f"scaling.warmup_steps must be a whole number >= 0, got {self.warmup_steps!r}")
        if not isinstance(self.steps, int) or self.steps < max(1, self.warmup_steps):
            raise LabError(f"scaling.steps must be at least scaling.warmup_steps ({self.warmup_steps}) and at least "
                           f"1, got {self.steps!r}")


@dataclass
class MathRewardsSettings:
    arms: tuple[str, ...] = tuple(MATH_REWARDS_ARMS)  # the arms trained, names of MATH_REWARDS_ARMS
    # a stage already trained with the baseline recipe from the same source (the pipeline: rl-math), read as the
    # baseline arm instead of training it again; "" trains experiments/math-rewards/baseline (always run)
    baseline_stage: str = ""

    def __post_init__(self):
        unknown = [a for a in self.arms if a not in MATH_REWARDS_ARMS]
        if unknown or not self.arms:
            raise LabError(f"unknown math-rewards arm(s) {unknown or '(none)'}; valid: {', '.join(MATH_REWARDS_ARMS)}")


@dataclass
class OveroptimizationSettings:
    bon_prompts: int = 12  # prompts best-of-n samples answers to
    bon_samples: int = 64  # sampled answers per prompt, the pool every n picks from
    ns: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    temperature: float = 0.7  # the sampling temperature of best-of-n's answers
    max_new_tokens: int = 64
    rl: RLHFSettings = field(default_factory=lambda: RLHFSettings(steps=20, lr=3e-4, ckpt_every=10))  # the RL arms
    betas: tuple[float, ...] = (0.005, 0.1)  # the KL-penalty sweep, besides rl.beta
    ensemble_seeds: tuple[int, ...] = (0, 1, 2)  # the rm stage's seed (0) reuses the rm stage
    ensemble_k: float = 1.0  # reward = mean - k * std over the ensemble
    smooth: int = 3  # RL points: moving average over this many logged steps
    seed: int = 0


@dataclass
class GoodhartSettings:
    pairs: tuple[int, ...] = (100, 200, 400)  # comparisons per reward model
    seeds: tuple[int, ...] = (0, 1)  # a reward model per (size, seed)
    label_noise: float = 0.0  # the chance a comparison's label is flipped
    steps: int = 60  # GRPO optimiser steps against each RM
    snapshot_every: int = 10  # keep the policy every this many steps: the points of each path


@dataclass
class RLHFMethodsSettings:
    prompts: int = 192  # fixed RLHF prompts every policy answers once
    temperature: float = 0.7  # the sampling temperature the policies answer at
    max_new_tokens: int = 64
    batch_size: int = 64
    seed: int = 0
