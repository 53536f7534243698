"""The experiments/demonstrator stage's settings (`demonstrator.*`, lab/experiments/demonstrator.py). Torch-free,
beside that module (which trains, so loads torch), so the presets and `lab --help` load without torch.

The rate was chosen before any run and is not tuned: 0.65, the issue's example. The sizes were chosen on the
development world (replicate-full seed 1; held-out two-digit accuracy, demonstrator 0.65 by construction) so that
SFT on the demonstrator comes near it, the premise of the test, and RL has steps enough to move greedy answers:
  3,000 problems (+500 replayed), 30 RL steps: SFT-on-noisy 0.28 (0.38 outside the error class), RL 0.36: imitation
      too weak for RL to come near the demonstrator whatever it learned
  5,000 (+250), 30 RL steps: SFT-on-noisy 0.60, RL 0.60 (+0.000 [-0.033, +0.033]): 30 steps moved no greedy answer
  6,000 (+500), 40 RL steps: SFT-on-noisy 0.57 (0.87 outside the class; 0.90 of its class answers the
      demonstrator's wrong one), RL 0.66 (0.99 outside, 0.06 inside): RL − SFT-on-noisy +0.093 [+0.057, +0.130],
      RL − demonstrator +0.013 [-0.005, +0.032]. These are the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.errors import LabError
from tasks.answer_forms import FORMS


@dataclass
class DemonstratorSettings:
    """SFT on a fallible demonstrator's worked solutions from sft-idk, then RL with the verifier from that SFT."""
    rate: float = 0.65  # share of problems the demonstrator gets right, exactly, in practice and held out; in (0, 1]
    problems: int = 6000  # practice problems (band-2 column addition and subtraction) in its worked solutions
    forms: tuple[str, ...] = ("worked",)  # answer forms each practice problem is trained in (tasks/answer_forms.py)
    replay: int = 500  # sft-idk's own SFT conversations mixed into the practice, against forgetting
    batch_size: int = 15  # SFT conversations per step; each is seen once
    lr: float = 1e-3  # SFT learning rate, sft-math's (constant after a short warm-up)
    rl_steps: int = 40  # RL optimiser steps (the run's rl.* settings otherwise: batch, group, lr, beta, ...)
    rl_problems: int = 1000  # RL training problems, drawn with the practice's share in the error class
    rl_check_problems: int = 32  # of those, questions rl_math holds out for its own before/after check
    eval_problems: int = 300  # distinct held-out problems in each split graded (two- and three-digit)
    eval_batch_size: int = 64  # prompts answered at once when grading
    eval_max_new_tokens: int = 192  # answer tokens when grading (three-digit worked solutions run to ~120)
    log_every: int = 10
    ckpt_every: int = 100  # SFT checkpoints, 0 = none (RL keeps rl.ckpt_every)
    seed: int = 0  # draws the practice and RL problems and seeds training; the held-out sets are fixed

    def __post_init__(self):
        if not isinstance(self.rate, (int, float)) or not 0 < self.rate <= 1:
            raise LabError(f"demonstrator.rate must be in (0, 1] (the share of problems the demonstrator gets right), "
                           f"got {self.rate!r}")
        for name, least in (("problems", 1), ("replay", 0), ("batch_size", 1), ("rl_steps", 1), ("rl_problems", 1),
                            ("rl_check_problems", 1), ("eval_problems", 1), ("eval_batch_size", 1),
                            ("eval_max_new_tokens", 1), ("log_every", 1), ("ckpt_every", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < least:
                raise LabError(f"demonstrator.{name} must be a whole number >= {least}, got {value!r}")
        unknown = [f for f in self.forms if f not in FORMS]
        if unknown or not self.forms:
            raise LabError(f"demonstrator.forms must name answer forms among {', '.join(FORMS)}, got {self.forms!r}")
        if not self.lr > 0:
            raise LabError(f"demonstrator.lr must be above 0, got {self.lr!r}")
