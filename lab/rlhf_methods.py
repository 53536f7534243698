"""PPO, GRPO, RLOO and DPO on the same reward model, scored by the same gold judge at their KL from sft-idk.

Each method trains into its own stage from sft-idk: rlhf-ppo (lab/ppo.py), rlhf-grpo and rlhf-rloo (TRL,
lab/rlhf.py) on the same prompts, reward model and number of sampled answers (30 steps x 16), and dpo on
the reward model's own comparisons (no RM, no sampling). Then one evaluation treats them alike: each
policy (and sft-idk itself) answers the same fixed prompts, once each, at the RL sampling temperature
and seed; the answers get the proxy reward, the gold score, and their KL to sft-idk, summed over the
answer's tokens of log pi(token) - log pi_sft-idk(token) under the sampling distributions: an unbiased
estimate of KL(policy || sft-idk) per answer. Gold differences to sft-idk are paired over prompts.

Methods end at different KLs, and gold moves with KL, so the table also reads each RL method's gold at
DPO's KL off its training curve (smoothed over 5 steps, linear between points): gold at matched KL.
Writes experiments/rlhf-methods/{results.json, table.md, rlhf_methods.png, samples/<method>.jsonl}.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from lab.errors import LabError
from lab.runs import Run, read_json, write_json

OUT = "experiments/rlhf-methods"
METHODS = ("rlhf-ppo", "rlhf-grpo", "rlhf-rloo", "dpo")


@dataclass
class RLHFMethodsSettings:
    prompts: int = 192  # fixed RLHF prompts every policy answers once
    temperature: float = 0.7  # the RL stages' sampling temperature: the KL is of what they were trained to sample
    max_new_tokens: int = 64
    batch_size: int = 64
    smooth: int = 5  # training-curve steps averaged before reading gold at a matched KL
    seed: int = 0


def train_missing(run: Run, preset, source: str = "sft-idk", rm_stage: str = "rm") -> None:
    """Train whichever of the four method stages is not complete, each with its preset settings."""
    from lab.dpo import dpo
    from lab.ppo import ppo_rlhf
    from lab.rlhf import rlhf

    trainers = {
        "rlhf-ppo": lambda: ppo_rlhf(run, preset, preset.ppo, source, rm_stage, "rlhf-ppo"),
        "rlhf-grpo": lambda: rlhf(run, preset, replace(preset.rlhf, algo="grpo"), source, rm_stage, "rlhf-grpo"),
        "rlhf-rloo": lambda: rlhf(run, preset, replace(preset.rlhf, algo="rloo"), source, rm_stage, "rlhf-rloo"),
        "dpo": lambda: dpo(run, preset, preset.dpo, source, rm_stage, "dpo"),
    }
    for stage, train in trainers.items():
        if not run.is_complete(stage):
            train()


def sample_and_score(policy, reference, rm_model, rm_tokenizer, tokenizer, world, asked, settings) -> list[dict]:
    """One answer per prompt from `policy`, with its proxy reward, gold score and KL to `reference`."""
    import torch

    from lab.engine import SamplingParams, generate
    from lab.ppo import answer_logprobs, make_batch
    from rewards.gold import decode_completion, gold_score
    from rewards.reward_model import score

    stops = (tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.eos_token_id)
    device = next(policy.parameters()).device
    rows = []
    for start in range(0, len(asked), settings.batch_size):
        chunk = asked[start : start + settings.batch_size]
        prompts = [ids for _, _, ids in chunk]
        params = SamplingParams(max_new_tokens=settings.max_new_tokens, temperature=settings.temperature,
                                stop_token_ids=stops, seed=settings.seed * 1_000_003 + start)
        answers = generate(policy.eval(), prompts, params, pad_token_id=tokenizer.pad_token_id)
        batch = make_batch(prompts, answers, tokenizer.pad_token_id, device)
        with torch.no_grad():
            kl = ((answer_logprobs(policy, batch, settings.temperature)
                   - answer_logprobs(reference, batch, settings.temperature)) * batch.mask).sum(1)
        decoded = [decode_completion(tokenizer, a) for a in answers]
        proxy = score(rm_model, rm_tokenizer, [text for _, text, _ in chunk], [t for t, _ in decoded])
        for (person, _, _), (text, finished), p, k, a in zip(chunk, decoded, proxy, kl.tolist(), answers):
            g = gold_score(world, person, text, finished=finished)
            rows.append({"person": person, "answer": text, "finished": finished, "tokens": len(a), "proxy": p,
                         "gold": g.total, "kl": k, "refusal": g.refusal, "correct": g.correct, "wrong": g.wrong})
    return rows


def gold_at_kl(logs: list[dict], kl: float, smooth: int) -> float | None:
    """Gold on a training curve (moving average over `smooth` steps) where its KL first reaches `kl`, linearly
    interpolated; None if the curve never gets there."""
    rows = [r for r in logs if r.get("kl_seq") is not None and r.get("gold") is not None]
    points = []
    for i in range(len(rows)):
        window = rows[max(0, i - smooth + 1) : i + 1]
        points.append((sum(w["kl_seq"] for w in window) / len(window), sum(w["gold"] for w in window) / len(window)))
    for (k0, g0), (k1, g1) in zip(points, points[1:]):
        if k0 <= kl <= k1 and k1 > k0:
            return g0 + (g1 - g0) * (kl - k0) / (k1 - k0)
    return points[0][1] if points and kl <= points[0][0] else None


def _method_summary(run: Run, stage: str) -> dict:
    s = read_json(run.stage_dir(stage) / "summary.json")
    return {"seconds": s.get("seconds"), "steps": s.get("steps"), "memory_mb": (s.get("memory") or {}).get("state_mb"),
            "completions": s.get("completions"), "algo": s.get("algo", "dpo")}


def _logs(run: Run, stage: str) -> list[dict]:
    path = run.stage_dir(stage) / "logs" / "train.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def run_rlhf_methods(run: Run, preset, settings: RLHFMethodsSettings | None = None, source: str = "sft-idk",
                     rm_stage: str = "rm") -> dict:
    from evals.stats import mean_metric, paired_difference
    from lab.loading import load_model_and_tokenizer
    from lab.rlhf import rlhf_dataset
    from rewards.reward_model import check_tokenizers_match, load_reward_model
    from tasks.world import build_world

    settings = settings or RLHFMethodsSettings()
    train_missing(run, preset, source, rm_stage)
    reference, tokenizer = load_model_and_tokenizer(run.require(source))
    rm_model, rm_tokenizer = load_reward_model(run.require(rm_stage))
    check_tokenizers_match(rm_tokenizer, tokenizer)
    world = build_world(preset.data.world)
    dataset, prompts = rlhf_dataset(world, tokenizer, seed=10_000 + settings.seed)  # another order than training's
    if settings.prompts > len(prompts):
        raise LabError(f"rlhf_methods.prompts is {settings.prompts} but the world has {len(prompts)} RLHF prompts")
    asked = [(dataset[i]["person"], text, ids) for i, (text, ids) in enumerate(prompts[: settings.prompts])]

    out = run.stage_dir(OUT)
    (out / "samples").mkdir(parents=True, exist_ok=True)
    results: dict = {"settings": asdict(settings), "source": source, "methods": {}}
    scored = {}
    for stage in (source, *METHODS):
        policy = reference if stage == source else load_model_and_tokenizer(run.require(stage))[0]
        rows = sample_and_score(policy, reference, rm_model, rm_tokenizer, tokenizer, world, asked, settings)
        (out / "samples" / f"{stage}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        scored[stage] = rows
        entry = {k: mean_metric([r[k] for r in rows]) for k in ("proxy", "gold", "kl", "tokens")}
        entry["refusal_rate"] = sum(r["refusal"] for r in rows) / len(rows)
        if stage != source:
            entry["gold_vs_source"] = paired_difference([r["gold"] for r in scored[source]], [r["gold"] for r in rows])
            entry.update(_method_summary(run, stage))
        results["methods"][stage] = entry
    dpo_kl = results["methods"]["dpo"]["kl"]["value"]
    results["matched_kl"] = dpo_kl
    for stage in METHODS[:3]:
        results["methods"][stage]["gold_at_matched_kl"] = gold_at_kl(_logs(run, stage), dpo_kl, settings.smooth)
    results["plot"] = _plot(run, out, results, settings.smooth)
    (out / "table.md").write_text(table(results))
    write_json(out / "results.json", results)
    run.mark_complete(OUT, {m: results["methods"][m]["gold"]["value"] for m in METHODS})
    return results


def _f(x, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def table(results: dict) -> str:
    """The four methods and sft-idk: eval KL, proxy, gold (CI), gold vs sft-idk (paired), cost."""
    from evals.stats import format_ci

    lines = ["| policy | KL to sft-idk (nats/answer) | proxy (RM) | gold [95% CI] | gold - sft-idk [95% CI] | "
             f"gold at KL {results['matched_kl']:.2f} (curve) | refusals | length | answers sampled | wall s | "
             "memory MB |", "|" + "---|" * 11]
    for stage, m in results["methods"].items():
        diff = m.get("gold_vs_source")
        diff_text = (f"{diff['difference']:+.3f} [{diff['ci95'][0]:+.3f}, {diff['ci95'][1]:+.3f}]" if diff else "")
        matched = m.get("gold_at_matched_kl", m["gold"]["value"] if stage == "dpo" else None)
        lines.append(f"| {stage} | {_f(m['kl']['value'], 2)} | {_f(m['proxy']['value'])} | {format_ci(m['gold'], 3)} | "
                     f"{diff_text} | {_f(matched) if stage != results['source'] else ''} | "
                     f"{m['refusal_rate']:.2f} | {m['tokens']['value']:.1f} | {'' if m.get('completions') is None else m['completions']} | "
                     f"{_f(m.get('seconds'), 0) if 'seconds' in m else ''} | {_f(m.get('memory_mb'), 0) if 'seconds' in m else ''} |")
    return "\n".join(lines) + "\n"


def _plot(run: Run, out: Path, results: dict, smooth: int) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lab.overoptimization import rl_points

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    colours = dict(zip(results["methods"], ("black", "C0", "C1", "C2", "C3")))
    for stage, m in results["methods"].items():
        points = rl_points(_logs(run, stage), smooth) if stage.startswith("rlhf-") else []
        for i, key in enumerate(("gold", "proxy")):
            if points:
                ax[i].plot([p["kl"] for p in points], [p[key] for p in points], "-", alpha=0.45, color=colours[stage])
            low, high = m[key]["ci95"]
            ax[i].errorbar([m["kl"]["value"]], [m[key]["value"]], yerr=[[m[key]["value"] - low], [high - m[key]["value"]]],
                           fmt="o", color=colours[stage], capsize=3, label=stage)
    ax[0].axvline(results["matched_kl"], color="grey", ls=":", lw=1)
    ax[0].set(title="gold judge (never optimised)", xlabel="KL to sft-idk (nats per answer)", ylabel="gold reward")
    ax[1].set(title="proxy: the reward model", xlabel="KL to sft-idk (nats per answer)", ylabel="RM reward")
    ax[0].legend(fontsize=7, title=f"eval (points, 95% CI); training ({smooth}-step mean, lines)", title_fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "rlhf_methods.png", dpi=120)
    plt.close(fig)
    return "rlhf_methods.png"
