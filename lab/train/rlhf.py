"""RLHF: the sft-idk policy optimised against the learned reward model, with the gold judge watching.

The reward is the proxy RM of the `rm` stage (rewards/reward_model.py); the prompts are "Tell me about
<person>." questions (rewards/gold.PROMPT_TEMPLATES) about SFT people only, so held-out people stay
unseen. The gold judge (rewards/gold.py) is passed to TRL as a second reward with weight 0: TRL scores
and logs it every step (rewards/gold/mean) but it adds nothing to the advantage, so the policy never
optimises it. That makes each step one point of Gao et al.'s over-optimization curve: proxy and gold
reward against the KL to the initial policy.

TRL logs KL as a mean per token; the over-optimization curves need it per answer (Gao et al.'s KL is of
whole sequences), so each log row also gets kl_seq = kl x mean completion length, an estimate good
enough to place the points. KL is only measured with beta > 0 (TRL then keeps a reference model).

The trainer core (config, resume, save, logs) is lab/train/rl_math.train_policy, shared with RL on math.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lab.errors import LabError
from lab.runs import Run, write_json, write_train_log
from lab.train.memory import training_memory
from lab.train.rl_math import (
    chat_prompts,
    check_prompts,
    check_rl_settings,
    load_policy,
    train_policy,
)

if TYPE_CHECKING:  # annotations only: the presets sit above this module
    from lab.presets import Preset


@dataclass
class RLHFSettings:
    algo: str = "grpo"  # grpo | dr_grpo | dapo | bnpo | rloo (lab/rl.ALGOS)
    steps: int = 30  # ~5 s a step on 2 free CPU cores with the tiny model (generation dominates): ~2.5 minutes
    lr: float = 1e-4  # an order below SFT's, as for RL on math
    beta: float = 0.02  # KL penalty to sft-idk; > 0 also makes TRL measure the KL the experiment plots
    num_generations: int = 4  # samples per prompt: the group the advantage is computed in
    batch_size: int = 16  # completions per step (batch_size / num_generations prompts)
    temperature: float = 0.7  # the temperature the RM's comparisons were sampled at
    max_completion_length: int = 64  # the rm stage's max_new_tokens: longer answers are off the RM's data
    rewards: tuple[str, ...] = ("proxy", "gold")  # fixed: the RM is optimised, the gold judge only logged
    reward_weights: tuple[float, ...] = (1.0, 0.0)
    lora_r: int = 0
    lora_alpha: int = 16
    log_every: int = 1  # every step: each is a point on the over-optimization curve
    ckpt_every: int = 20
    snapshot_every: int = 5  # keep the policy every this many steps (snapshots/), 0 = never: the KL path
    seed: int = 0
    use_vllm: bool = False


def rlhf_dataset(world, tokenizer, seed: int = 0):
    """Every PROMPT_TEMPLATES question about every SFT person (a person column for the gold judge), shuffled."""
    from datasets import Dataset

    from rewards.gold import PROMPT_TEMPLATES, prompt_for
    from tasks.world import seeded_rng

    asked = [(p.name, t) for p in world.sft_people() for t in range(len(PROMPT_TEMPLATES))]
    if not asked:
        raise LabError("the world has no SFT people to ask about")
    seeded_rng("rlhf-prompts", seed).shuffle(asked)
    prompts = chat_prompts(tokenizer, [prompt_for(name, t) for name, t in asked])
    return Dataset.from_dict({"prompt": [text for text, _ in prompts], "person": [name for name, _ in asked]}), prompts


def write_rlhf_log(out, history: list[dict]) -> list[dict]:
    """logs/train.jsonl with short names for the curves: proxy, gold, kl (per token), kl_seq, length."""
    rows = [dict(r) for r in history]
    for r in rows:
        if "rewards/proxy/mean" in r:
            r["proxy"], r["gold"] = r["rewards/proxy/mean"], r.get("rewards/gold/mean")
            r["length"] = r.get("completions/mean_length")
            if "kl" in r and r["length"] is not None:
                r["kl_seq"] = r["kl"] * r["length"]
    write_train_log(out, rows)
    return rows


def ends(values: list[float]) -> tuple[float | None, float | None]:
    """Means of the first and last few values: single steps of 16 samples are noisy."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    window = max(1, min(5, len(values) // 4))
    return sum(values[:window]) / window, sum(values[-window:]) / window


def rlhf(run: Run, preset: Preset, settings: RLHFSettings, source: str = "sft-idk", rm_stage: str = "rm",
         out_stage: str = "rlhf-grpo", proxy=None) -> dict:
    """Optimise `source` against the `rm_stage` reward model into `run/<out_stage>`.

    `proxy` replaces the RM's reward function (a TRL reward function named "proxy", e.g. the
    experiment's ensemble); the rm stage is still required, its tokenizer checked against the policy's."""
    from rewards.gold import gold_reward_fn
    from rewards.reward_model import (
        check_tokenizers_match,
        load_reward_model,
        make_reward_fn,
    )
    from tasks.world import build_world

    check_rl_settings(settings, len(settings.rewards))
    if tuple(settings.rewards) != ("proxy", "gold"):
        raise LabError(f"rlhf.rewards is fixed to ('proxy', 'gold'), got {settings.rewards}")
    src = run.require(source)
    rm_dir = run.require(rm_stage)
    model, tokenizer = load_policy(src)
    world = build_world(preset.data.world)
    held = []  # models beside the policy, for the memory figure
    if proxy is None:
        rm_model, rm_tokenizer = load_reward_model(rm_dir)
        held.append(rm_model)
        proxy = make_reward_fn(rm_model, rm_tokenizer, policy_tokenizer=tokenizer)
    else:
        from lab.model.tokenizer import load_tokenizer

        check_tokenizers_match(load_tokenizer(rm_dir), tokenizer)
    dataset, prompts = rlhf_dataset(world, tokenizer, settings.seed)
    check_prompts(tokenizer, model, prompts, settings.max_completion_length)
    out = run.open_stage(out_stage)

    gold = gold_reward_fn(world, tokenizer=tokenizer)  # reads completion_ids: special tokens and cut-offs cost
    done = train_policy(out, model, tokenizer, settings, dataset, [proxy, gold], write_logs=write_rlhf_log,
                        snapshot_every=settings.snapshot_every)
    steps = [r for r in done.logs if "proxy" in r]
    proxy_first, proxy_last = ends([r["proxy"] for r in steps])
    gold_first, gold_last = ends([r["gold"] for r in steps])
    summary = {
        "algo": settings.algo, "source": source, "rm_stage": rm_stage, "steps": done.trainer.state.global_step,
        "resumed_from": Path(done.resumed_from).name if done.resumed_from else None,
        "steps_this_session": done.steps_this_session, "seconds": done.seconds,
        "seconds_per_step": done.seconds / max(1, done.steps_this_session),
        "proxy_first": proxy_first, "proxy_last": proxy_last, "gold_first": gold_first, "gold_last": gold_last,
        "kl_seq_last": ends([r.get("kl_seq") for r in steps])[1],
        "length_first": ends([r["length"] for r in steps])[0], "length_last": ends([r["length"] for r in steps])[1],
        "prompts": len(dataset), "completions": settings.steps * settings.batch_size,
        "memory": training_memory(done.trainer, held), "settings": asdict(settings),
    }
    write_json(out / "summary.json", summary)
    run.mark_complete(out_stage, {"algo": settings.algo, "steps": summary["steps"], "proxy_last": proxy_last,
                                  "gold_last": gold_last})
    return summary

