"""The rm stage's settings (`rm.*`): how its comparisons are sampled and labelled, and how the reward model
trains on them. Torch-free, beside lab/train/reward_model.py, so the presets and `lab --help` load no torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RewardModelSettings:
    # preference data (rewards/preferences.build_preferences)
    pairs: int = 1000
    samples_per_prompt: int = 4
    temperature: float = 0.7  # the policy's RL sampling temperature: the RM should see what RL will show it
    max_new_tokens: int = 64
    label_mode: str = "bt"  # bt | argmax
    label_temperature: float = 0.1
    label_noise: float = 0.0
    heldout_share: float = 0.2  # of SFT people, whose comparisons are the RM's test split
    disjoint_pairs: bool = True
    sample_batch_size: int = 64
    # training (TRL RewardTrainer)
    epochs: float = 2.0
    lr: float = 2e-4
    batch_size: int = 16
    grad_accum: int = 1
    max_length: int = 256
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    center_rewards: float = 0.01  # pulls the mean reward to 0, so RL sees rewards on a steady scale
    log_every: int = 10
    ckpt_every: int = 50
    seed: int = 0

    def planned_steps(self, summary: dict) -> int:
        """The optimiser steps this stage takes with these settings (`summary`: a run of it, for its data size)."""
        return summary["steps"]  # epochs over the sampled comparisons: counted by the run
