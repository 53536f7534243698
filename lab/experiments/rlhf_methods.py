"""PPO, GRPO, RLOO and DPO on the same reward model, scored by the same gold judge at their KL from sft-idk.

Each method trains into its own stage from sft-idk: rlhf-ppo (lab/train/ppo/loop.py), rlhf-grpo and rlhf-rloo (TRL,
lab/train/rlhf.py) on the same prompts, reward model and number of sampled answers (30 steps x 16), and dpo on
the reward model's own comparisons (no RM, no sampling). Then one evaluation treats them alike: each
policy (and sft-idk itself) answers the same fixed prompts, once each, at the RL sampling temperature
and seed; the answers get the proxy reward, the gold score, and their KL to sft-idk, summed over the
answer's tokens of log pi(token) - log pi_sft-idk(token) under the sampling distributions: an unbiased
estimate of KL(policy || sft-idk) per answer. Gold differences to sft-idk are paired over prompts.

The RL stages keep their policy every few steps (snapshots/), and every snapshot is evaluated the same
way, so each RL method has a measured path of (KL, proxy, gold) from sft-idk to where it ended. That
gives gold at matched KL (each path read at DPO's KL, linear between its points) and a fair test of
over-optimization: the path's peak is picked on half of the prompts and the drop from it to the end is
measured, paired, on the other half, so picking the best of several noisy points cannot fake a drop.
Writes experiments/rlhf-methods/{results.json, table.md, rlhf_methods.png, samples/}.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from evals.stats import format_ci, mean_metric, paired_difference
from lab.errors import LabError
from lab.experiments.settings import RLHFMethodsSettings
from lab.model.chat_format import answer_stops
from lab.model.engine import SamplingParams, generate
from lab.model.labgpt import LabGPTForCausalLM
from lab.model.loading import load_model_and_tokenizer
from lab.runs import Run, read_json, write_json
from lab.stage_names import RLHF_GRPO, RLHF_METHODS, RLHF_PPO, RLHF_RLOO, RM, SFT_IDK
from lab.train.ppo.loop import answer_logprobs, make_batch
from lab.train.rlhf import rlhf_dataset
from rewards.gold import decode_completion, gold_score
from rewards.proxy import check_tokenizers_match, load_reward_model, score

OUT = RLHF_METHODS
METHODS = (RLHF_PPO, RLHF_GRPO, RLHF_RLOO, "dpo")
NEEDS = METHODS  # the stages this experiment reads, provided by the pipeline


def sample_and_score(policy, reference, rm_model, rm_tokenizer, tokenizer, world, asked, settings) -> list[dict]:
    """One answer per prompt from `policy`, with its proxy reward, gold score and KL to `reference`."""
    stops = answer_stops(tokenizer)
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


def gold_at_kl(path: list[dict], kl: float) -> float | None:
    """Gold on a (KL, gold) path where its KL first reaches `kl`, linear between points; None if it never does."""
    points = [(p["kl"], p["gold"]) for p in path]
    for (k0, g0), (k1, g1) in zip(points, points[1:]):
        if k0 <= kl <= k1 and k1 > k0:
            return g0 + (g1 - g0) * (kl - k0) / (k1 - k0)
    return points[0][1] if points and kl <= points[0][0] else None


def turnover(path_rows: list[list[dict]]) -> dict:
    """Over-optimization on a path of evaluations (same prompts at each point): the peak is chosen on the
    even-numbered prompts, and final - peak is measured on the odd-numbered ones, paired."""
    def mean(rows, parity):
        values = [r["gold"] for i, r in enumerate(rows) if i % 2 == parity]
        return sum(values) / len(values)

    peak = max(range(len(path_rows)), key=lambda i: mean(path_rows[i], 0))
    final = path_rows[-1]
    drop = paired_difference([r["gold"] for i, r in enumerate(path_rows[peak]) if i % 2],
                             [r["gold"] for i, r in enumerate(final) if i % 2])
    return {"peak_index": peak, "final_minus_peak": drop}


def _method_summary(run: Run, stage: str) -> dict:
    s = read_json(run.stage_dir(stage) / "summary.json")
    return {"seconds": s.get("seconds"), "steps": s.get("steps"), "memory_mb": (s.get("memory") or {}).get("state_mb"),
            "completions": s.get("completions"), "algo": s.get("algo", "dpo")}


def snapshots(run: Run, stage: str) -> list[tuple[int, Path]]:
    """(step, folder) of a stage's kept policies, the finished model last (as its final step)."""
    folder = run.stage_dir(stage) / "snapshots"
    kept = sorted((int(d.name.split("-")[1]), d) for d in folder.glob("step-*")) if folder.exists() else []
    final = read_json(run.stage_dir(stage) / "summary.json")["steps"]
    return [(step, d) for step, d in kept if step < final] + [(final, run.stage_dir(stage))]


def judged_point(rows: list[dict]) -> dict:
    point = {k: mean_metric([r[k] for r in rows]) for k in ("proxy", "gold", "kl", "tokens")}
    point["refusal_rate"] = sum(r["refusal"] for r in rows) / len(rows)
    return point


@dataclass
class Judge:
    """One evaluation protocol for every policy: fixed prompts, one answer each, scored by a proxy RM and the
    gold judge, KL to a reference; samples kept under `samples`."""

    reference: object
    tokenizer: object
    rm_model: object
    rm_tokenizer: object
    world: object
    asked: list  # (person, prompt text, prompt ids)
    settings: RLHFMethodsSettings
    samples: Path

    @classmethod
    def for_run(cls, run: Run, world, settings: RLHFMethodsSettings, source: str, rm_stage: str, samples: Path):
        reference, tokenizer = load_model_and_tokenizer(run.require(source))
        rm_model, rm_tokenizer = load_reward_model(run.require(rm_stage))
        check_tokenizers_match(rm_tokenizer, tokenizer)
        dataset, prompts = rlhf_dataset(world, tokenizer, seed=10_000 + settings.seed)  # not training's order
        if settings.prompts > len(prompts):
            raise LabError(f"rlhf_methods.prompts is {settings.prompts} but the world has {len(prompts)} RLHF prompts")
        asked = [(dataset[i]["person"], text, ids) for i, (text, ids) in enumerate(prompts[: settings.prompts])]
        samples.mkdir(parents=True, exist_ok=True)
        return cls(reference, tokenizer, rm_model, rm_tokenizer, world, asked, settings, samples)

    def rows(self, policy, name: str) -> list[dict]:
        rows = sample_and_score(policy, self.reference, self.rm_model, self.rm_tokenizer, self.tokenizer, self.world,
                                self.asked, self.settings)
        (self.samples / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return rows

    def path(self, run: Run, stage: str, start: list[dict]) -> tuple[list[dict], list[list[dict]]]:
        """(points, rows) along an RL stage's snapshots, `start` (the reference's rows) first."""
        points, all_rows = [{"step": 0, **judged_point(start)}], [start]
        for step, folder in snapshots(run, stage):
            policy = LabGPTForCausalLM.from_pretrained(folder).to(next(self.reference.parameters()).device)
            name = stage.replace("/", "-") if folder == run.stage_dir(stage) else f"{stage.replace('/', '-')}-step-{step}"
            all_rows.append(self.rows(policy, name))
            points.append({"step": step, **judged_point(all_rows[-1])})
        return points, all_rows


def describe_path(points: list[dict], rows: list[list[dict]]) -> dict:
    """The path as plain numbers, and the held-out-half turn-over test."""
    result = {"path": [{"step": p["step"], "kl": p["kl"]["value"], "gold": p["gold"]["value"],
                        "gold_ci95": p["gold"]["ci95"], "proxy": p["proxy"]["value"],
                        "refusal_rate": p["refusal_rate"]} for p in points],
              "turnover": turnover(rows)}
    result["turnover"]["peak_step"] = points[result["turnover"]["peak_index"]]["step"]
    return result


def run_rlhf_methods(settings: RLHFMethodsSettings, context) -> dict:
    """The four methods' final policies and RL paths, judged alike from sft-idk. Their stages (NEEDS) must be
    complete: the pipeline runs this after them, and `lab experiment rlhf-methods` has lab.pipeline.provide
    train any that are missing."""
    run = context.run
    source = context.source or SFT_IDK  # the stages' start, as the pipeline trains them
    out = run.stage_dir(OUT)
    judge = Judge.for_run(run, context.world, settings, source, RM, out / "samples")
    start = judge.rows(judge.reference, source)
    results: dict = {"settings": asdict(settings), "source": source, "methods": {source: judged_point(start)}}
    for stage in METHODS:
        if stage == "dpo":  # no sampling, no path: its final policy only
            policy = LabGPTForCausalLM.from_pretrained(run.require(stage)).to(next(judge.reference.parameters()).device)
            final = judge.rows(policy, stage)
            points, rows = [judged_point(final)], None
        else:
            points, rows = judge.path(run, stage, start)
            final = rows[-1]
        entry = {**points[-1], "gold_vs_source": paired_difference([r["gold"] for r in start],
                                                                  [r["gold"] for r in final])}
        entry.update(_method_summary(run, stage))
        if rows is not None:
            entry.update(describe_path(points, rows))
        entry.pop("step", None)
        results["methods"][stage] = entry
    results["matched_kl"] = results["methods"]["dpo"]["kl"]["value"]
    for stage in METHODS[:3]:
        results["methods"][stage]["gold_at_matched_kl"] = gold_at_kl(results["methods"][stage]["path"],
                                                                     results["matched_kl"])
    results["plot"] = _plot(out, results)
    (out / "table.md").write_text(table(results))
    write_json(out / "results.json", results)
    run.mark_complete(OUT, {m: results["methods"][m]["gold"]["value"] for m in METHODS})
    return results


def _f(x, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _ci(d: dict) -> str:
    return f"{d['difference']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"


def table(results: dict) -> str:
    """sft-idk and the four methods: KL, proxy, gold (CI), paired gold gain, gold at DPO's KL, the turn-over, cost."""
    header = ["policy", "KL to sft-idk (nats/answer)", "proxy (RM)", "gold [95% CI]", "gold - sft-idk [95% CI]",
              f"gold at KL {results['matched_kl']:.2f}".replace("-0.00", "0.00"), "gold peak on the path (step)",
              "final - peak [95% CI], other half", "refusals", "length", "answers sampled", "wall s", "memory MB"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for stage, m in results["methods"].items():
        cells = [stage, _f(m["kl"]["value"], 2), _f(m["proxy"]["value"]), format_ci(m["gold"], 3)]
        if stage == results["source"]:
            cells += ["", "", "", ""]
        else:
            matched = m["gold"]["value"] if stage == "dpo" else m.get("gold_at_matched_kl")
            turn = m.get("turnover")
            peak = (f"{m['path'][turn['peak_index']]['gold']:.3f} ({turn['peak_step']})" if turn else "")
            cells += [_ci(m["gold_vs_source"]), _f(matched), peak, _ci(turn["final_minus_peak"]) if turn else ""]
        cells += [f"{m['refusal_rate']:.2f}", f"{m['tokens']['value']:.1f}",
                  "" if m.get("completions") is None else str(m["completions"]),
                  _f(m.get("seconds"), 0) if "seconds" in m else "", _f(m.get("memory_mb"), 0) if "seconds" in m else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plot(out: Path, results: dict) -> str:
    import matplotlib  # lazy: matplotlib is slow to import, and only the plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    colours = dict(zip(results["methods"], ("black", "C0", "C1", "C2", "C3")))
    for stage, m in results["methods"].items():
        path = m.get("path")
        if path:  # the evaluated snapshots, sft-idk first
            kl = [p["kl"] for p in path]
            ax[0].errorbar(kl, [p["gold"] for p in path], fmt="o-", ms=3, capsize=2, alpha=0.8, color=colours[stage],
                           yerr=[[p["gold"] - p["gold_ci95"][0] for p in path], [p["gold_ci95"][1] - p["gold"] for p in path]],
                           label=f"{stage} (every {path[1]['step']} steps)")
            ax[1].plot(kl, [p["proxy"] for p in path], "o-", ms=3, color=colours[stage], label=stage)
        else:
            low, high = m["gold"]["ci95"]
            ax[0].errorbar([m["kl"]["value"]], [m["gold"]["value"]], fmt="s", ms=6, capsize=3, color=colours[stage],
                           yerr=[[m["gold"]["value"] - low], [high - m["gold"]["value"]]], label=stage)
            ax[1].plot([m["kl"]["value"]], [m["proxy"]["value"]], "s", ms=6, color=colours[stage], label=stage)
    ax[0].axvline(results["matched_kl"], color="grey", ls=":", lw=1)
    ax[0].set(title="gold judge (never optimised), 95% CI", xlabel="KL to sft-idk (nats per answer)",
              ylabel="gold reward")
    ax[1].set(title="proxy: the reward model (optimised)", xlabel="KL to sft-idk (nats per answer)",
              ylabel="RM reward")
    ax[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "rlhf_methods.png", dpi=120)
    plt.close(fig)
    return "rlhf_methods.png"
