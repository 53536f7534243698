"""RLHF: the sft-idk policy optimised against the learned reward model, with the gold judge watching.

The reward is the proxy RM of the `rm` stage (rewards/proxy.py); the prompts are "Tell me about
<person>." questions (rewards/gold.PROMPT_TEMPLATES) about SFT people only, so held-out people stay
unseen. The gold judge (rewards/gold.py) is passed to TRL as a second reward with weight 0: TRL scores
and logs it every step (rewards/gold/mean) but it adds nothing to the advantage, so the policy never
optimises it. That makes each step one point of Gao et al.'s over-optimization curve: proxy and gold
reward against the KL to the initial policy.

TRL logs KL as a mean per token; the over-optimization curves need it per answer (Gao et al.'s KL is of
whole sequences), so each log row also gets kl_seq = kl x mean completion length, an estimate good
enough to place the points. KL is only measured with beta > 0 (TRL then keeps a reference model).

The trainer core (config, resume, save, logs) is lab/train/policy_gradient.py, shared with RL on math; the
rewards are rewards/registry.py's, named by rlhf.rewards (the proxy and gold factories by default).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from datasets import Dataset

from lab.errors import LabError
from lab.model.chat_format import chat_prompts
from lab.model.tokenizer import load_tokenizer
from lab.runs import write_json, write_train_log
from lab.stage_names import RM
from lab.train.memory import training_memory
from lab.train.policy_gradient import check_prompts, check_rl_settings, load_policy, train_policy
from lab.train.rl_settings import RLHFSettings
from rewards.gold import PROMPT_TEMPLATES, prompt_for
from rewards.proxy import check_tokenizers_match
from rewards.registry import RewardContext, get_rewards
from tasks.world import seeded_rng


def rlhf_dataset(world, tokenizer, seed: int = 0):
    """Every PROMPT_TEMPLATES question about every SFT person (a person column for the gold judge), shuffled."""
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


def rlhf(settings: RLHFSettings, context, rm_stage: str = RM, proxy=None) -> dict:
    """Optimise `context.source` against the `rm_stage` reward model into `context.stage`.

    `proxy` replaces the RM's reward function (a TRL reward function named "proxy", e.g. the
    experiment's ensemble); the rm stage is still required, its tokenizer checked against the policy's."""
    run, source, out_stage = context.run, context.source, context.stage
    check_rl_settings(settings, len(settings.rewards))
    if "proxy" not in settings.rewards:
        raise LabError(f"rlhf.rewards must include 'proxy', the reward model RLHF optimises; got {settings.rewards}")
    src = run.require(source)
    rm_dir = run.require(rm_stage)
    model, tokenizer = load_policy(src)
    world = context.world
    held = []  # models beside the policy, for the memory figure
    if proxy is not None:
        check_tokenizers_match(load_tokenizer(rm_dir), tokenizer)
    # registry names, or the override in place of "proxy"; the gold judge reads completion_ids, so special tokens
    # and cut-offs cost
    reward_funcs = get_rewards([proxy if name == "proxy" and proxy is not None else name for name in settings.rewards],
                               RewardContext(tokenizer=tokenizer, world=world, rm_dir=rm_dir, held=held))
    dataset, prompts = rlhf_dataset(world, tokenizer, settings.seed)
    check_prompts(tokenizer, model, prompts, settings.max_completion_length)
    out = run.open_stage(out_stage)

    done = train_policy(out, model, tokenizer, settings, dataset, reward_funcs, write_logs=write_rlhf_log,
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

