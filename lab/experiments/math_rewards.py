"""`lab experiment math-rewards`: which choices in RL on math matter, at matched compute, from one checkpoint.

Every arm starts from sft-math (sft-idk after math practice, lab/train/math_practice.py) and trains into
experiments/math-rewards/<arm>/ with the run's `rl` settings, changing one thing:

  baseline     the rl-math recipe: Dr. GRPO, the sympy verifier's correctness + a small format reward
  exact_match  (a) exact string match of the final answer instead of the verifier ("0.5" for "1/2" earns 0)
  no_format    (b) correctness alone, no format reward
  grpo, rloo   (c) the other policy-gradient estimators (Dr. GRPO is the baseline)
  sft          (d) no RL: more SFT on worked solutions of the same training problems, with the same optimizer
               steps, learning rate and schedule, and batches sized so it trains on as many tokens as the
               baseline's sampled completions

Every arm is graded greedily by the verifier on the same held-out problems (lab/train/rl_math.eval_problems), so arms
compare question by question: accuracy, and paired differences to the start and to the baseline. The
verifier's correctness is logged in every RL arm (at weight 0 where it is not the reward), so the
exact-match arm's training curve shows true accuracy too. Writes results.json, table.md, math_rewards.png.

`math_rewards.baseline_stage` names a stage already trained with the baseline recipe from the same source (the
pipeline's experiments/math-rewards stage: rl-math, whose extra rewards are tracked at weight 0): it is read as
the baseline arm (its held-out grades before and after, its trained tokens, its settings) and not trained again.
That stage runs the sft arm only (RL vs SFT at matched compute); `lab experiment math-rewards RUN` trains them all.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace

from evals.math_heldout import eval_problems, heldout_accuracy
from evals.stats import format_ci, mean_metric, paired_difference, proportion
from lab.errors import LabError
from lab.experiments.settings import MATH_REWARDS_ARMS, MathRewardsSettings
from lab.model.loading import load_model_and_tokenizer
from lab.runs import Run, read_json, read_train_log, write_json
from lab.settings import from_settings
from lab.stage_names import SFT_MATH
from lab.train.math_practice import answer_tokens, solution_records, train_on_records
from lab.train.rl_math import rl_math, write_heldout
from lab.train.rl_settings import RLSettings
from lab.train.sft import build_dataset
from tasks.math import MathConfig, generate

OUT = "experiments/math-rewards"


def _arm_settings(rl: RLSettings, arm: str):
    """The baseline is the run's rl settings with correctness and format only (trackers dropped)."""
    base = replace(rl, rewards=("correctness", "format"), reward_weights=(1.0, 0.1), eval_every=0)
    return replace(base, **MATH_REWARDS_ARMS[arm][1])


def _rl_tokens(out) -> int:
    """Completion tokens the RL arm trained on: per step, completions x their mean length."""
    logs = read_train_log(out)
    summary = read_json(out / "summary.json")
    batch = summary["settings"]["batch_size"]
    return round(sum(batch * r["completions/mean_length"] for r in logs if "completions/mean_length" in r))


def sft_arm(run: Run, max_length: int, rl, out_stage: str, tokens_to_match: int, source: str,
            before: dict | None = None) -> dict:
    """Supervised fine-tuning on the RL arms' training problems with their worked solutions, at RL's compute:
    the same steps, learning rate and schedule, batches sized to the baseline's trained tokens. `before`: the
    source's held-out grades where another arm already has them (heldout_accuracy's result, samples included)."""
    problems = generate(MathConfig(seed=rl.seed, tasks=tuple(rl.tasks), bands=tuple(rl.bands)), rl.train_problems,
                        split="train")  # exactly the RL arms' training problems
    model, tokenizer = load_model_and_tokenizer(run.require(source))
    dataset, too_long = build_dataset(solution_records(problems), tokenizer, max_length)
    batch_size = max(1, round(tokens_to_match / (rl.steps * answer_tokens(dataset))))
    held_out = eval_problems(rl)
    before = before or heldout_accuracy(model, tokenizer, held_out, rl)
    done = train_on_records(run, dataset, out_stage, rl.steps, batch_size, rl.lr, rl.seed, source,
                            rl.log_every, rl.ckpt_every, max_length)
    after = heldout_accuracy(done["model"], tokenizer, held_out, rl)
    out = run.stage_dir(out_stage)
    write_heldout(out, before, after)
    summary = {"algo": "sft", "source": source, "steps": done["steps"], "batch_size": batch_size,
               "tokens_trained": done["tokens_trained"], "tokens_to_match": tokens_to_match,
               "dropped_too_long": too_long, "seconds": done["seconds"], "heldout_before": before,
               "heldout_after": after, "settings": asdict(rl)}
    write_json(out / "summary.json", summary)
    run.mark_complete(out_stage, {"heldout_after": after["all"]["accuracy"]})
    return summary


def _graded(path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}


def _grade_sampled(run: Run, rl: RLSettings, stage: str, which: str, model_stage: str) -> None:
    """Add each problem's sampled share to heldout/<which>.jsonl when it lacks one (graded: `model_stage`)."""
    path = run.stage_dir(stage) / "heldout" / f"{which}.jsonl"
    graded = _graded(path)
    if rl.eval_samples <= 0 or all("sampled_share" in r for r in graded.values()):
        return
    model, tokenizer = load_model_and_tokenizer(run.require(model_stage))
    result = heldout_accuracy(model, tokenizer, eval_problems(rl), rl)
    shares = {r["id"]: r["sampled_share"] for r in result["samples"]}
    path.write_text("".join(json.dumps({**r, "sampled_share": shares[i]}) + "\n" for i, r in graded.items()))
    run.refresh_manifest(stage)  # the arm's own grades, completed: its manifest records them


def check_math_rewards_settings(settings: MathRewardsSettings) -> None:
    """The section's own checks (MathRewardsSettings.__post_init__), for settings changed after they were made."""
    settings.__post_init__()


def math_rewards_stage(settings: MathRewardsSettings, context) -> None:
    """The pipeline's experiments/math-rewards stage: the arms against `settings.baseline_stage`, with that stage's
    own RL settings (so the compute matched and the problems graded are the baseline's)."""
    if not settings.baseline_stage:
        raise LabError("the experiments/math-rewards stage reads its baseline from math_rewards.baseline_stage "
                       "(the pipeline sets rl-math); `lab experiment math-rewards RUN` trains one instead")
    run_math_rewards(settings, context, from_settings(RLSettings, context.run.stage_settings(settings.baseline_stage)))


def _recorded_before(run: Run, stage: str) -> dict:
    """A finished arm's held-out grades of the source, as heldout_accuracy returned them (samples included)."""
    recorded = read_json(run.stage_dir(stage) / "summary.json")["heldout_before"]
    return {**recorded, "samples": list(_graded(run.stage_dir(stage) / "heldout" / "before.jsonl").values())}


def run_math_rewards(settings: MathRewardsSettings, context, rl: RLSettings) -> dict:
    """Train the missing arms from `context.source` (default sft-math) into `context.stage` (default
    experiments/math-rewards)/<arm>, each from the run's `rl` settings, then grade and tabulate them all.
    With `settings.baseline_stage` the baseline arm is that stage, read and never trained or regraded here."""
    run, source, out_stage = context.run, context.source or SFT_MATH, context.stage or OUT
    check_math_rewards_settings(settings)
    arms = ["baseline", *[a for a in settings.arms if a != "baseline"]]  # the baseline sets the compute to match
    stages = {arm: f"{out_stage}/{arm}" for arm in arms}
    if settings.baseline_stage:
        stages["baseline"] = settings.baseline_stage
        run.require(settings.baseline_stage)
    for arm in arms:
        stage = stages[arm]
        if run.is_complete(stage):
            continue
        if MATH_REWARDS_ARMS[arm][1] is None:
            tokens = _rl_tokens(run.stage_dir(stages["baseline"]))
            before = _recorded_before(run, stages["baseline"]) if settings.baseline_stage else None
            sft_arm(run, context.sft.max_length, _arm_settings(rl, "baseline"), stage, tokens, source, before)
        else:
            rl_math(_arm_settings(rl, arm), context.at(stage, source))

    trained = [arm for arm in arms if stages[arm].startswith(f"{out_stage}/")]  # a stage read is left as it is
    for arm in trained:  # arms graded before sampled grading existed get it now, from their saved models
        _grade_sampled(run, _arm_settings(rl, "baseline"), stages[arm], "after", stages[arm])
    if "baseline" in trained:
        _grade_sampled(run, _arm_settings(rl, "baseline"), stages["baseline"], "before", source)
    start = _graded(run.stage_dir(stages["baseline"]) / "heldout" / "before.jsonl")
    finals = {arm: _graded(run.stage_dir(stages[arm]) / "heldout" / "after.jsonl") for arm in arms}
    ids = sorted(start)
    sampled = all("sampled_share" in g[i] for g in (start, *finals.values()) for i in ids)

    def column(graded, key):
        return [float(graded[i][key]) for i in ids]

    results = {"source": source, "n": len(ids), "arms": {}, "baseline_stage": stages["baseline"]}
    results["arms"][source] = {"accuracy": proportion(sum(start[i]["correct"] for i in ids), len(ids))}
    if sampled:
        results["arms"][source]["sampled"] = mean_metric(column(start, "sampled_share"))
    for arm in arms:
        s = read_json(run.stage_dir(stages[arm]) / "summary.json")
        correct = column(finals[arm], "correct")
        changes = MATH_REWARDS_ARMS[arm][0] + ("" if arm in trained else f" (the {stages[arm]} stage)")
        entry = {"changes": changes, "accuracy": proportion(int(sum(correct)), len(ids)),
                 "vs_source": paired_difference(column(start, "correct"), correct),
                 "seconds": s["seconds"], "steps": s["steps"],
                 "tokens_trained": s.get("tokens_trained") or _rl_tokens(run.stage_dir(stages[arm]))}
        if sampled:
            entry["sampled"] = mean_metric(column(finals[arm], "sampled_share"))
            entry["sampled_vs_source"] = paired_difference(column(start, "sampled_share"),
                                                           column(finals[arm], "sampled_share"))
        if arm != "baseline":
            entry["vs_baseline"] = paired_difference(column(finals["baseline"], "correct"), correct)
            if sampled:
                entry["sampled_vs_baseline"] = paired_difference(column(finals["baseline"], "sampled_share"),
                                                                 column(finals[arm], "sampled_share"))
        if "reward_first" in s:
            entry["reward"] = [s["reward_first"], s["reward_last"]]
        results["arms"][arm] = entry
    out = run.stage_dir(out_stage)
    results["plot"] = _plot(run, out, results, arms, stages)
    (out / "table.md").write_text(table(results))
    write_json(out / "results.json", results)
    run.mark_complete(out_stage, {arm: results["arms"][arm]["accuracy"]["value"] for arm in arms})
    return results


def _d(d: dict | None) -> str:
    return "" if d is None else f"{d['difference']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"


def table(results: dict) -> str:
    sampled = "sampled" in results["arms"][results["source"]]
    start = f"− {results['source']}, paired"
    header = ["arm", "what changes", "greedy accuracy [95% CI]", start, "− baseline, paired"]
    header += ["sampled accuracy", start, "− baseline, paired"] if sampled else []
    header += ["train reward first → last", "tokens trained", "steps", "seconds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for arm, m in results["arms"].items():
        reward = f"{m['reward'][0]:.3f} → {m['reward'][1]:.3f}" if m.get("reward") else ""
        cells = [arm, m.get("changes", "the starting checkpoint"), format_ci(m["accuracy"], 3),
                 _d(m.get("vs_source")), _d(m.get("vs_baseline"))]
        if sampled:
            cells += [f"{m['sampled']['value']:.3f}", _d(m.get("sampled_vs_source")), _d(m.get("sampled_vs_baseline"))]
        cells += [reward, f"{m['tokens_trained']:,}" if "tokens_trained" in m else "", str(m.get("steps", "")),
                  f"{m['seconds']:.0f}" if "seconds" in m else ""]
        lines.append("| " + " | ".join(cells) + " |")
    note = f"\n\nn = {results['n']} held-out problems, graded by the verifier: greedy, "
    note += "and as the share of sampled answers accepted per problem (differences paired by problem, 95% CI).\n"
    return "\n".join(lines) + (note if sampled else f"\n\nn = {results['n']} held-out problems, graded greedily.\n")


def _plot(run: Run, out, results: dict, arms: list[str], stages: dict[str, str]) -> str:
    import matplotlib  # lazy: matplotlib is slow to import, and only the plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    names = list(results["arms"])
    values = [results["arms"][a]["accuracy"]["value"] for a in names]
    # at 0 or 1 the Wilson bound sits a rounding error inside the value: clipped, as a bar's error is never negative
    low = [max(0.0, v - results["arms"][a]["accuracy"]["ci95"][0]) for a, v in zip(names, values)]
    high = [max(0.0, results["arms"][a]["accuracy"]["ci95"][1] - v) for a, v in zip(names, values)]
    ax[0].bar(names, values, yerr=[low, high], capsize=3, color=["grey", *[f"C{i}" for i in range(len(arms))]])
    ax[0].set(title="held-out accuracy (greedy, 95% CI)", ylabel="accuracy")
    ax[0].tick_params(axis="x", rotation=30)
    for i, arm in enumerate(arms):
        path = run.stage_dir(stages[arm]) / "logs" / "train.jsonl"
        rows = [r for r in map(json.loads, path.read_text().splitlines()) if "accuracy" in r] if path.exists() else []
        if rows:
            values = [r["accuracy"] for r in rows]
            smooth = [sum(values[max(0, j - 9) : j + 1]) / len(values[max(0, j - 9) : j + 1]) for j in range(len(values))]
            ax[1].plot([r["step"] for r in rows], smooth, color=f"C{i}", label=arm)
    ax[1].set(title="sampled answers the verifier accepts (10-step mean)", xlabel="step", ylabel="share correct")
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "math_rewards.png", dpi=120)
    plt.close(fig)
    return "math_rewards.png"
