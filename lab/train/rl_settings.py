"""The RL stages' settings: RL on math (rl-math, `rl.*`), RLHF with TRL (rlhf-grpo and rlhf-rloo, `rlhf.*`),
PPO (rlhf-ppo, `ppo.*`, trained by lab/train/ppo/loop.py) and DPO (`dpo.*`, lab/train/dpo.py). Torch-free,
so the presets and `lab --help` load without torch; why each default is what it is (the calibration runs
behind it) is in docs/settings-notes.md."""

from __future__ import annotations

from dataclasses import dataclass

from lab.errors import LabError
from lab.train.rl_algorithms import TRL_ONLINE, get_algorithm
from rewards.registry import check_reward_names


@dataclass
class RLSettings:
    algo: str = "dr_grpo"  # a TRL-trained algorithm of lab/train/rl_algorithms.py: grpo, dr_grpo, dapo, bnpo, rloo
    steps: int = 60  # optimiser steps (~3 s each on 2 CPU cores with the tiny model)
    lr: float = 1e-4  # an order below SFT's 1e-3
    num_generations: int = 8  # samples per prompt: the group the advantage is computed in
    batch_size: int = 128  # completions per step (batch_size / num_generations prompts)
    temperature: float = 0.7  # sampling temperature of the rollouts
    max_completion_length: int = 128  # tokens; a cut-off answer earns nothing
    beta: float = 0.01  # KL to the source model; > 0 loads a reference model (LoRA: the adapter is switched off)
    rewards: tuple[str, ...] = ("correctness", "format")  # reward names of rewards/registry.py, or dotted paths
    reward_weights: tuple[float, ...] = (1.0, 0.1)  # one weight a reward; 0 logs a reward without training on it
    lora_r: int = 0  # 0 = full fine-tune
    lora_alpha: int = 16
    tasks: tuple[str, ...] = ("arithmetic",)  # the generator's task families trained and held out
    bands: tuple[int, ...] = (2,)  # their difficulty bands (2: two-digit column addition and subtraction)
    train_problems: int = 2000  # generated training problems
    # answers a training problem gets before training; only problems solved sometimes but not always are kept
    # (0 = off: every problem trains)
    solve_probe_samples: int = 0
    eval_problems: int = 300  # distinct held-out questions, graded greedily before and after
    eval_samples: int = 4  # and this many answers each at `temperature` (0 = greedy only): a finer paired measure
    eval_every: int = 0  # also grade the held-out set every this many steps (0 = before and after only)
    log_every: int = 1
    ckpt_every: int = 50
    seed: int = 0
    use_vllm: bool = False  # GPU only: TRL's colocated vLLM generation, when vllm is installed

    def planned_steps(self, summary: dict) -> int:
        """The optimiser steps this stage takes with these settings (`summary`: a run of it, for its data size)."""
        return self.steps

    def __post_init__(self):
        get_algorithm(self.algo, TRL_ONLINE, what="rl.algo")
        check_reward_names(self.rewards, "rl.rewards")
        if self.solve_probe_samples < 0 or self.solve_probe_samples == 1:
            raise LabError(f"rl.solve_probe_samples is {self.solve_probe_samples}: 0 trains on every problem, and "
                           "the filter needs at least 2 answers a problem to find one right and one wrong")


@dataclass
class RLHFSettings:
    algo: str = "grpo"  # a TRL-trained algorithm of lab/train/rl_algorithms.py (rlhf-rloo sets rloo)
    steps: int = 30  # optimiser steps (~5 s each on 2 CPU cores with the tiny model)
    lr: float = 1e-4  # an order below SFT's, as for RL on math
    beta: float = 0.02  # KL penalty to the source; > 0 also makes TRL measure the KL the experiments plot
    num_generations: int = 4  # samples per prompt: the group the advantage is computed in
    batch_size: int = 16  # completions per step (batch_size / num_generations prompts)
    temperature: float = 0.7  # the temperature the RM's comparisons were sampled at
    max_completion_length: int = 64  # the rm stage's max_new_tokens: longer answers are off the RM's data
    # rewards of rewards/registry.py: `proxy` is the learned RM, `gold` the judge (weight 0: logged, not optimised)
    rewards: tuple[str, ...] = ("proxy", "gold")
    reward_weights: tuple[float, ...] = (1.0, 0.0)
    lora_r: int = 0
    lora_alpha: int = 16
    log_every: int = 1  # every step: each is a point on the over-optimization curve
    ckpt_every: int = 20
    snapshot_every: int = 5  # keep the policy every this many steps (snapshots/), 0 = never: the KL path
    seed: int = 0
    use_vllm: bool = False

    def __post_init__(self):
        get_algorithm(self.algo, TRL_ONLINE, what="rlhf.algo")
        check_reward_names(self.rewards, "rlhf.rewards")

    def planned_steps(self, summary: dict) -> int:
        """The optimiser steps this stage takes with these settings (`summary`: a run of it, for its data size)."""
        return self.steps


@dataclass
class PPOSettings:
    steps: int = 30  # optimiser steps, one rollout batch each
    batch_size: int = 16  # prompts per step, one answer each
    minibatch_size: int = 8
    ppo_epochs: int = 4  # passes over each rollout batch
    lr: float = 1e-4  # the policy's learning rate
    value_lr: float = 1e-4
    clip_range: float = 0.2  # policy ratio trust region
    value_clip_range: float = 0.2  # how far a value prediction may move from its rollout-time value
    vf_coef: float = 0.5
    gamma: float = 1.0  # no discount inside one answer
    lam: float = 0.95  # GAE's bias-variance knob
    init_kl_coef: float = 0.02  # the KL penalty's starting coefficient
    target_kl: float | None = 4.0  # nats per answer the controller steers to (None: fixed coefficient)
    kl_horizon: int = 256  # answers over which the controller may move the coefficient by ~20%
    whiten_advantages: bool = True
    max_approx_kl: float = 0.05  # per token: stop this rollout's epochs once an update moved the policy this far
    max_grad_norm: float = 1.0
    temperature: float = 0.7  # sampling temperature of the rollouts
    max_completion_length: int = 64  # tokens
    value_init: str = "rm"  # rm: a copy of the reward model | policy: the policy with a fresh scalar head
    lora_r: int = 0  # 0 = full fine-tune of the policy (the value model is always fully trained)
    lora_alpha: int = 16
    ckpt_every: int = 10  # checkpoint.pt (policy, value model, optimizer) every N steps; 0 = none
    snapshot_every: int = 5  # keep the policy every this many steps (snapshots/), 0 = never: the KL path
    seed: int = 0

    def planned_steps(self, summary: dict) -> int:
        """The optimiser steps this stage takes with these settings (`summary`: a run of it, for its data size)."""
        return self.steps


@dataclass
class DPOSettings:
    beta: float = 0.1  # strength of the pull towards the reference policy
    loss_type: str = "sigmoid"  # TRL's DPO loss variants: sigmoid (DPO), ipo, hinge, ...
    epochs: float = 2.0
    lr: float = 1e-4
    batch_size: int = 16
    max_length: int = 256
    log_every: int = 5
    ckpt_every: int = 50
    seed: int = 0

    def planned_steps(self, summary: dict) -> int:
        """The optimiser steps this stage takes with these settings (`summary`: a run of it, for its data size)."""
        return summary["steps"]  # epochs over the rm stage's comparisons: counted by the run
