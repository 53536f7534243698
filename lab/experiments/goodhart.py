"""`lab experiment goodhart`: how the reward model's quality decides whether optimising it helps or hurts.

Gao et al.'s over-optimization needs a proxy that agrees with the gold reward near the start and
disagrees further out. The run's main RM (400 comparisons) shares its optimum with the gold judge at the
tiny scale (refuse everything: the 1M model's facts are mostly wrong), so optimising it never turns gold
down (experiments/rlhf-methods). Here reward models of several sizes are trained on fresh comparisons
(`pairs` each, rewards/preferences.py), GRPO optimises each from sft-idk with snapshots every few steps,
and every snapshot is evaluated alike (lab/rlhf_methods.Judge: 192 fixed prompts, that RM's proxy score,
the gold judge, KL to sft-idk). Per RM: its held-out accuracy, gold's peak along the path and the drop
from the peak to the end, measured on prompts the peak was not chosen on (lab/experiments/rlhf_methods.turnover).
Writes experiments/goodhart/{results.json, table.md, goodhart.png, rm-<pairs>/, samples/}.

The pipeline's `experiments/rm-gamed` stage (`rm_gamed`) is one such run, sized so that it can show the turn: one
RM and a GRPO run long enough to pass gold's peak, chosen on the development world before the default world ran
(docs/settings-notes.md). It is what the claims table's "a learned reward model gets gamed" row reads; the
30-step rlhf-grpo stage stops before any turn.
"""

from __future__ import annotations

from dataclasses import asdict, replace

from evals.stats import format_ci
from lab.errors import LabError
from lab.experiments.rlhf_methods import Judge, describe_path, judged_point
from lab.experiments.settings import GoodhartSettings, RLHFMethodsSettings
from lab.runs import read_json, write_json
from lab.settings import from_settings
from lab.stage_names import RLHF_GRPO, RLHF_METHODS, RM, SFT_IDK
from lab.train.reward_model import train_reward_model
from lab.train.reward_model_settings import RewardModelSettings
from lab.train.rl_settings import RLHFSettings
from lab.train.rlhf import rlhf

OUT = "experiments/goodhart"


NEEDS = (SFT_IDK,)  # every RM's starting weights and every RL run's policy; the pipeline provides it


def check_goodhart_settings(settings: GoodhartSettings) -> None:
    if not settings.pairs or min(settings.pairs) < 8:
        raise LabError(f"goodhart.pairs needs reward-model sizes of at least 8 comparisons, got {settings.pairs}")


def run_goodhart(settings: GoodhartSettings, context, rm: RewardModelSettings, rl: RLHFSettings,
                 judging: RLHFMethodsSettings) -> dict:
    """RMs of each size and seed (`rm` with goodhart's pairs, seed and label noise), a GRPO run against each
    (`rl` with goodhart's steps), each path judged as rlhf-methods judges (`judging`), from `context.source`."""
    run, source, stage = context.run, context.source or SFT_IDK, context.stage or OUT
    check_goodhart_settings(settings)
    run.require(source)
    out = run.stage_dir(stage)
    results: dict = {"settings": asdict(settings), "source": source, "rms": {}}
    for pairs in settings.pairs:
        for seed in settings.seeds:
            name = f"rm-{pairs}-seed{seed}"
            rm_stage, rl_stage = f"{stage}/{name}", f"{stage}/{name}/rlhf-grpo"
            if not run.is_complete(rm_stage):
                train_reward_model(replace(rm, pairs=pairs, seed=seed, label_noise=settings.label_noise),
                                   context.at(rm_stage, source))
            if not run.is_complete(rl_stage):
                rlhf(replace(rl, algo="grpo", steps=settings.steps, snapshot_every=settings.snapshot_every),
                     context.at(rl_stage, source), rm_stage=rm_stage)
            judge = Judge.for_run(run, context.world, judging, source, rm_stage, out / "samples" / name)
            start = judge.rows(judge.reference, source)  # each RM scores sft-idk with its own proxy
            points, rows = judge.path(run, rl_stage, start)
            trained = read_json(run.stage_dir(rm_stage) / "summary.json")
            results["rms"][name] = {"pairs": pairs, "seed": seed, "rm_heldout_accuracy": trained["heldout"]["accuracy"],
                                    "rm_gold_agreement": trained["heldout"]["gold_agreement"], "start": judged_point(start),
                                    "final": points[-1], **describe_path(points, rows)}
    for pairs in settings.pairs:  # per size: how often, and how much, optimising the proxy turned gold down
        drops = [r["turnover"]["final_minus_peak"] for r in results["rms"].values() if r["pairs"] == pairs]
        results.setdefault("by_size", {})[str(pairs)] = {
            "runs": len(drops), "mean_end_minus_peak": sum(d["difference"] for d in drops) / len(drops),
            "significant_drops": sum(d["ci95"][1] < 0 for d in drops)}
    results["plot"] = _plot(out, results)
    (out / "table.md").write_text(table(results))
    write_json(out / "results.json", results)
    run.mark_complete(stage, {p: r["mean_end_minus_peak"] for p, r in results["by_size"].items()})
    return results


def rm_gamed(settings: GoodhartSettings, context) -> dict:
    """The pipeline's RM-gamed run: run_goodhart with the recipes this run's rm, rlhf-grpo and rlhf-methods stages
    recorded (their summary settings), so the one reward model differs from the rm stage only in `settings`."""
    run = context.run
    rm = from_settings(RewardModelSettings, run.stage_settings(RM))
    rl = from_settings(RLHFSettings, run.stage_settings(RLHF_GRPO))
    judging = from_settings(RLHFMethodsSettings, run.stage_settings(RLHF_METHODS))
    return run_goodhart(settings, context, rm, rl, judging)


def table(results: dict) -> str:
    header = ["RM", "RM held-out accuracy", "proxy start → end", "gold peak (step, KL)", "gold at the end [95% CI]",
              "end − peak [95% CI], other half", "KL at the end", "refusals at the end"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, r in results["rms"].items():
        path, turn = r["path"], r["turnover"]
        peak = path[turn["peak_index"]]
        d = turn["final_minus_peak"]
        lines.append("| " + " | ".join([
            name, f"{r['rm_heldout_accuracy']:.2f}", f"{path[0]['proxy']:.2f} → {path[-1]['proxy']:.2f}",
            f"{peak['gold']:.3f} ({peak['step']}, {peak['kl']:.2f})", format_ci(r["final"]["gold"], 3),
            f"{d['difference']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]", f"{path[-1]['kl']:.2f}",
            f"{path[-1]['refusal_rate']:.2f}"]) + " |")
    start = next(iter(results["rms"].values()))["start"]["gold"]
    lines += ["", f"Gold of sft-idk's own answers: {format_ci(start, 3)}. By RM size:", "",
              "| comparisons | runs | mean end − peak | runs where gold fell significantly |", "|---|---|---|---|"]
    lines += [f"| {pairs} | {s['runs']} | {s['mean_end_minus_peak']:+.3f} | {s['significant_drops']} |"
              for pairs, s in results["by_size"].items()]
    return "\n".join(lines) + "\n"


def _plot(out, results: dict) -> str:
    import matplotlib  # lazy: matplotlib is slow to import, and only the plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    sizes = list(dict.fromkeys(r["pairs"] for r in results["rms"].values()))
    for name, r in results["rms"].items():
        path, colour = r["path"], f"C{sizes.index(r['pairs'])}"
        style = ["o-", "s--", "^:", "d-."][r["seed"] % 4]
        kl = [p["kl"] for p in path]
        ax[0].errorbar(kl, [p["gold"] for p in path], fmt=style, ms=3, capsize=2, color=colour, alpha=0.8,
                       yerr=[[p["gold"] - p["gold_ci95"][0] for p in path], [p["gold_ci95"][1] - p["gold"] for p in path]],
                       label=f"{name} (RM acc {r['rm_heldout_accuracy']:.2f})")
        ax[1].plot(kl, [p["proxy"] for p in path], style, ms=3, color=colour, label=name)
    ax[0].set(title="gold judge along each GRPO run (95% CI)", xlabel="KL to sft-idk (nats per answer)",
              ylabel="gold reward")
    ax[1].set(title="the proxy each run optimises", xlabel="KL to sft-idk (nats per answer)", ylabel="RM reward")
    ax[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "goodhart.png", dpi=120)
    plt.close(fig)
    return "goodhart.png"
