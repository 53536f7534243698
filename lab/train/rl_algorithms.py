"""The RL algorithms, in one registry that the stages, the CLI and the pipeline all read.

An algorithm is TRL's GRPO trainer with one of its loss variants, TRL's RLOO trainer, the lab's own PPO
(lab/train/ppo/loop.py) or TRL's DPO (offline, on the reward model's comparisons). Each entry says which
trainer runs it, the TRL config fields that make the variant, the function that trains a policy with it
against the reward model, and the preset section holding its settings. To add one: register it here (a
GRPO variant is one line of config fields) and test it (tests/test_rl_algorithms.py).

Torch-free: the presets check their algorithm names against this registry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from lab.errors import LabError


@dataclass(frozen=True)
class RLAlgorithm:
    name: str
    trainer: str  # "grpo" or "rloo" (TRL, online), "ppo" (the lab's), "dpo" (TRL, offline)
    about: str  # one line for help texts and the report
    config: dict = field(default_factory=dict)  # TRL config fields that make the variant
    rlhf: str = "lab.train.rlhf:rlhf"  # "module:function" training a policy against the reward model with it
    section: str = "rlhf"  # the preset section of its settings

    @property
    def trl_online(self) -> bool:
        """Trained by lab/train/policy_gradient.py's TRL core (GRPO's trainer or RLOO's)."""
        return self.trainer in TRL_ONLINE


ALGORITHMS: dict[str, RLAlgorithm] = {}
TRL_ONLINE = ("grpo", "rloo")  # the trainers lab/train/policy_gradient.py runs


def register_algorithm(algorithm: RLAlgorithm) -> RLAlgorithm:
    if algorithm.name in ALGORITHMS:
        raise LabError(f"RL algorithm '{algorithm.name}' is registered twice")
    ALGORITHMS[algorithm.name] = algorithm
    return algorithm


for _algorithm in (
    RLAlgorithm("grpo", "grpo", "GRPO: group-normalised advantages", {"loss_type": "grpo", "scale_rewards": "group"}),
    RLAlgorithm("dr_grpo", "grpo", "Dr. GRPO: no length or std normalisation",
                {"loss_type": "dr_grpo", "scale_rewards": "none"}),
    RLAlgorithm("dapo", "grpo", "DAPO: clip-higher, truncated completions masked",
                {"loss_type": "dapo", "epsilon_high": 0.28, "mask_truncated_completions": True}),
    RLAlgorithm("bnpo", "grpo", "BNPO: batch-normalised advantages", {"loss_type": "bnpo"}),
    RLAlgorithm("rloo", "rloo", "RLOO: leave-one-out baseline (TRL's RLOOTrainer)"),
    RLAlgorithm("ppo", "ppo", "PPO: value model, GAE, clipped updates (lab/train/ppo)",
                rlhf="lab.train.ppo.loop:ppo_rlhf", section="ppo"),
    RLAlgorithm("dpo", "dpo", "DPO: the preference loss, no reward model at training time",
                rlhf="lab.train.dpo:dpo", section="dpo"),
):
    register_algorithm(_algorithm)


def get_algorithm(name: str, trainers: Iterable[str] | None = None, what: str = "RL algo") -> RLAlgorithm:
    """The registered algorithm `name`, or one error naming the valid ones (those of `trainers`, when given)."""
    valid = [a.name for a in ALGORITHMS.values() if trainers is None or a.trainer in tuple(trainers)]
    if name not in valid:
        raise LabError(f"unknown {what} '{name}'; valid: {', '.join(valid)}")
    return ALGORITHMS[name]
