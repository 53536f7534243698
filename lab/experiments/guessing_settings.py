"""The experiments/guessing stage's settings (`guessing.*`, lab/experiments/guessing.py). Torch-free, beside that module
(which trains, so loads torch), so the presets and `lab --help` load without torch.

Both arms train with these settings and differ in their reward alone: `zero_one_reward` (0/1 grading, where "I don't know"
earns what a wrong answer earns) and `penalised_reward` (right +1, a refusal 0, wrong -1). `refusal` is the sentence
sft-idk was taught to say (tasks.chat.REFUSALS) and the one the penalised reward must count as a refusal: it is checked
against tasks.chat.is_refusal, the test the registered rewards and the hallucination grading both use, and the stage
records how many of sft-idk's own refusals say it.
"""

from __future__ import annotations

from dataclasses import dataclass

from evals.wording import WELL_KNOWN_K
from lab.errors import LabError
from lab.train.rl_algorithms import TRL_ONLINE, get_algorithm
from rewards.registry import check_reward_names
from tasks.chat import REFUSALS, is_refusal


@dataclass
class GuessingSettings:
    """RL from sft-idk on world questions about SFT people, under 0/1 grading and under a penalty for confident error."""
    algo: str = "grpo"  # a TRL-trained algorithm of lab/train/rl_algorithms.py
    steps: int = 20  # optimiser steps per arm (the same in both); enough for zero_one to stop refusing (dev world)
    batch_size: int = 32  # completions per step (batch_size / num_generations questions)
    num_generations: int = 8  # answers per question: the group the advantage is computed in
    lr: float = 2e-5  # dev world: at 5e-5 and 1e-4 the penalised arm came to refuse 2/3 or more of what it knew
    beta: float = 0.04  # KL penalty to sft-idk (> 0 loads a reference model), holding the arms near their start
    temperature: float = 0.5  # of the rollouts: near greedy, so a known answer is sampled right as often as it is said
    max_completion_length: int = 24  # tokens; answers are one sentence ("Was born in the city of Oslo.")
    zero_one_reward: str = "zero_one"  # the arm whose grading pays guessing as much as refusing (rewards/registry.py)
    penalised_reward: str = "penalised"  # the arm whose grading costs a wrong answer more than a refusal
    refusal: str = REFUSALS[0]  # what the penalised reward counts as a refusal (must pass tasks.chat.is_refusal)
    known_min_k: int = WELL_KNOWN_K  # held-out people seen at least this often in pretraining: the "known" questions
    unseen_questions: int = 0  # never-seen (k = 0) held-out questions asked of each model, drawn with `seed` (0 = all)
    known_questions: int = 0  # held-out questions with k >= known_min_k asked of each model (0 = all)
    eval_batch_size: int = 64  # prompts generated at once in the evaluations
    log_every: int = 1
    ckpt_every: int = 50  # 0: no resume checkpoints (weights only)
    seed: int = 0  # the prompts' order, the rollouts and the evaluation draws: the same in both arms

    def __post_init__(self):
        get_algorithm(self.algo, TRL_ONLINE, what="guessing.algo")
        for name in ("zero_one_reward", "penalised_reward"):
            check_reward_names([getattr(self, name)], f"guessing.{name}")
        if self.zero_one_reward == self.penalised_reward:
            raise LabError(f"guessing.zero_one_reward and guessing.penalised_reward are both {self.zero_one_reward!r}; the "
                           "two arms must differ in their reward")
        if not isinstance(self.refusal, str) or not self.refusal.strip():
            raise LabError(f"guessing.refusal is empty, and the penalised reward ({self.penalised_reward}) scores a "
                           f"refusal apart from a wrong answer; set it to the refusal sft-idk says (e.g. {REFUSALS[0]!r})")
        if not is_refusal(self.refusal):
            raise LabError(f"guessing.refusal {self.refusal!r} is not a refusal to tasks.chat.is_refusal, so the rewards "
                           f"would score it as a wrong answer; use a sentence it accepts (e.g. {REFUSALS[0]!r})")
        for name, least in (("steps", 1), ("batch_size", 1), ("num_generations", 2), ("max_completion_length", 1),
                            ("known_min_k", 1), ("unseen_questions", 0), ("known_questions", 0),
                            ("eval_batch_size", 1), ("log_every", 1), ("ckpt_every", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise LabError(f"guessing.{name} must be a whole number >= {least}, got {value!r}")
        if self.batch_size % self.num_generations:
            raise LabError(f"guessing.batch_size ({self.batch_size}) must be a multiple of guessing.num_generations "
                           f"({self.num_generations}): each question's answers form one group")
        for name, low, high in (("lr", 0.0, 1.0), ("temperature", 0.0, 10.0)):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not low < value <= high:
                raise LabError(f"guessing.{name} must be in ({low:g}, {high:g}], got {value!r}")
        if not isinstance(self.beta, (int, float)) or self.beta < 0:
            raise LabError(f"guessing.beta must be >= 0, got {self.beta!r}")

    @property
    def arms(self) -> dict[str, str]:
        """arm (its folder under experiments/guessing) -> its reward name."""
        return {"zero_one": self.zero_one_reward, "penalised": self.penalised_reward}
