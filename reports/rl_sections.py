"""The report's RL sections: math RL and its grid, RLHF (GRPO, PPO), the method comparison, Goodhart and
over-optimization experiments, and the reward model."""

from __future__ import annotations

import base64

from evals.math_checks import check_summary
from evals.stats import paired_difference
from lab.errors import LabError
from lab.runs import Run, read_json
from lab.stage_names import RL_MATH, RLHF_GRPO, RLHF_METHODS, RLHF_PPO, RLHF_RLOO, RM_GAMED
from lab.stages import STAGES
from reports.common import jsonl, png

RL_CURVES = (("reward", "reward (optimised)"), ("accuracy", "correct answers (sampled)"), ("kl", "KL to the start"),
             ("completions/mean_length", "response length (tokens)"), ("rewards/format/mean", "answer marked"),
             ("rewards/self_check/mean", "self-checking phrases"),
             ("rewards/verified_check/mean", "verified checks of the answer"),
             ("rewards/group_solved/mean", "groups with a correct answer (GRPO's signal)"))


RLHF_CURVES = (("proxy", "proxy reward (the RM, optimised)"), ("gold", "gold judge (never optimised)"),
               ("kl_seq", "KL to the start (per answer)"), ("length", "response length (tokens)"))
PPO_CURVES = (("explained_variance", "critic: explained variance"), ("clip_fraction", "share of tokens clipped"),
              ("entropy", "policy entropy (nats/token)"), ("kl_coef", "KL coefficient (adaptive)"))
RLHF_STAGES = {s.name: s.label for s in STAGES if s.label}  # the RL-against-the-RM stages, as the report names them


def rl_curves(run: Run, stage: str, wanted=RL_CURVES):
    """Per-step training curves of an RL stage, smoothed over 10 steps (single steps are a few prompts)."""
    import matplotlib  # lazy: matplotlib is slow to import, and only the plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log = [r for r in jsonl(run.stage_dir(stage) / "logs" / "train.jsonl") if "reward" in r]
    curves = [(key, label) for key, label in wanted if any(key in r for r in log)]
    if not log or not curves:
        return None
    fig, axes = plt.subplots(1, len(curves), figsize=(3.2 * len(curves), 3))
    for ax, (key, label) in zip(axes, curves):
        points = [(r["step"], r[key]) for r in log if key in r]
        steps, values = zip(*points)
        smooth = [sum(values[max(0, i - 9): i + 1]) / len(values[max(0, i - 9): i + 1]) for i in range(len(values))]
        ax.plot(steps, values, alpha=0.25)
        ax.plot(steps, smooth)
        ax.set(title=label, xlabel="step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    data = png(fig)
    plt.close(fig)
    return data


def rl_math_sections(run: Run, stage: str = RL_MATH) -> list[tuple[str, list]]:
    path = run.stage_dir(stage) / "summary.json"
    if not path.exists():
        return []
    s = read_json(path)
    before = {r["id"]: r for r in jsonl(run.stage_dir(stage) / "heldout" / "before.jsonl")}
    after = {r["id"]: r for r in jsonl(run.stage_dir(stage) / "heldout" / "after.jsonl")}
    ids = [i for i in before if i in after]
    items = [("text", f"{s['algo']} from {s['source']} for {s['steps']} steps of {s['settings']['batch_size']} "
                      f"completions ({s['settings']['num_generations']} a prompt; {s['seconds']:.0f} s) on "
                      f"{', '.join(s['settings']['tasks'])} (bands {s['settings']['bands']}); rewards "
                      f"{dict(zip(s['settings']['rewards'], s['settings']['reward_weights']))} (weight 0: tracked, "
                      f"not optimised). Reward {s['reward_first']:.3f} -> {s['reward_last']:.3f} (first and last 10 "
                      "steps)." + (f" Groups with a correct answer (GRPO's signal) {s['groups_solved_first']:.2f} -> "
                                   f"{s['groups_solved_last']:.2f}." if s.get("groups_solved_first") is not None
                                   else ""))]
    rows = []
    k = s["settings"].get("eval_samples", 0)
    for key, what in (("correct", "greedy accuracy"), ("sampled_share", f"share of {k} sampled answers correct")):
        if ids and all(key in before[i] and key in after[i] for i in ids):
            d = paired_difference([float(before[i][key]) for i in ids], [float(after[i][key]) for i in ids])
            rows.append([f"{what}, the trained tasks and bands", f"{d['mean_a']:.3f}", f"{d['mean_b']:.3f}",
                         f"{d['difference']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]", d["n"]])
    checks = check_summary(list(before.values()), list(after.values())) if ids else {}
    for key, what in (("verified_rate", "greedy answers with a verified check"),
                      ("sampled_verified_share", f"share of {k} sampled answers with a verified check")):
        if key in checks:
            d = checks[key]
            rows.append([what, f"{d['mean_a']:.3f}", f"{d['mean_b']:.3f}",
                         f"{d['difference']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]", d["n"]])
    if rows:
        items.append(("table", (["held-out problems", "before", "after", "after − before [95% CI], paired", "n"],
                                rows)))
        items.append(("text", "These are held-out problems of the trained tasks and bands only; the math eval suite "
                              "spreads its problems over every task and band, so it sees little of this change."))
    if checks:
        items += check_items(checks)
    curves = rl_curves(run, stage)
    if curves:
        items.append(("figure", (f"rl_math_{run.name}", curves, "RL on math, per step (faint) and over 10 steps")))
    sections = [(f"RL with verifiable math rewards ({run.name})", items)]
    grid = run.stage_dir("experiments/math-rewards")
    if (grid / "table.md").exists() and (grid / "math_rewards.png").exists():
        data = base64.b64encode((grid / "math_rewards.png").read_bytes()).decode()
        source = _read(grid / "results.json").get("source", "the same start")
        sections.append((f"What matters in RL on math: the math-rewards grid ({run.name})", [
            ("text", f"`lab experiment math-rewards`: one change an arm, every arm from {source} with the same "
                     "steps, and the SFT arm sized to the baseline's trained tokens; all graded greedily on the same "
                     "held-out problems, differences paired by problem."),
            ("markdown", (grid / "table.md").read_text()),
            ("figure", (f"math_rewards_{run.name}", data, "Held-out accuracy by arm; sampled accuracy while training"))]))
    return sections


def check_items(checks: dict) -> list:
    """What the held-out answers' checks did (evals/math_checks.check_summary), in words: accuracy with and without
    a verified check, and checks that changed the answer, before and after RL."""
    def share(m: dict) -> str:
        return f"{m['value']:.2f} [{m['ci95'][0]:.2f}, {m['ci95'][1]:.2f}] (n {m['n']})" if m["n"] else "– (n 0)"

    said = []
    for when in ("after", "before"):
        for kind, prefix in (("sampled", "sampled_"), ("greedy", "")):
            acc, changed = checks.get(f"{prefix}accuracy_by_check_{when}"), checks.get(f"{prefix}changed_answer_{when}")
            if acc is None:
                continue
            d = acc["with_minus_without"]
            diff = (f", with − without {d['difference']:+.2f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]"
                    if acc["with_check"]["n"] and acc["without_check"]["n"] else "")
            right = f", {changed['ended_right']} then right" if "ended_right" in changed else ""
            said.append(f"{when} RL, {kind} answers with a verified check were right {share(acc['with_check'])}, those "
                        f"without {share(acc['without_check'])}{diff}; a failing check changed the answer in "
                        f"{round(changed['value'] * changed['n'])} of {changed['n']}{right}")
    return [("text", "A verified check is a 'Check:' line whose arithmetic is right and that checks the answer given "
                     "(rewards/math_checks.py); the reward never pays for one (correctness, format). "
                     + ". ".join(x[0].upper() + x[1:] for x in said) + ". With and without a check are different "
                     "problems (the model chooses when to check), compared with Newcombe's interval.")]


def rlhf_sections(run: Run, declared_by: str = RLHF_GRPO) -> list[tuple[str, list]]:
    """Every RL-against-the-RM stage's curves and the methods compared: `declared_by` (rlhf-grpo) declares them
    for all three."""
    out = []
    for stage, method in RLHF_STAGES.items():
        curves = rl_curves(run, stage, RLHF_CURVES) if run.is_complete(stage) else None
        if not curves:
            continue
        s = read_json(run.stage_dir(stage) / "summary.json")
        items = [("text", f"{method} from sft-idk on 'tell me about <SFT person>' prompts with the reward model as "
                          "the only optimised reward; the gold judge scores the same samples (logged, never trained "
                          "on). " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                                for k, v in s.items()
                                                if k.startswith(("proxy", "gold")) and not isinstance(v, dict))),
                 ("figure", (f"{stage.replace('-', '_')}_{run.name}", curves,
                             f"{stage} per step (faint) and over 10 steps"))]
        diagnostics = rl_curves(run, stage, PPO_CURVES) if stage == RLHF_PPO else None
        if diagnostics:
            items.append(("figure", (f"ppo_diagnostics_{run.name}", diagnostics,
                                     "PPO's own health: the critic, the trust region, entropy, the KL controller")))
        out.append((f"RLHF against the learned reward model: {stage} ({run.name})", items))
    if run.is_complete("dpo"):
        d = _read(run.stage_dir("dpo") / "summary.json")
        if d:
            loss, accuracy = d.get("final_loss"), d.get("final_reward_accuracy")
            logged = (f": final loss {loss:.3f}" if loss is not None else ": no loss logged") + (
                f", and on the last logged batch it ranks the chosen answer above the rejected one {accuracy:.0%} "
                "of the time (its own implicit reward)" if accuracy is not None else "")
            out.append((f"DPO on the reward model's comparisons ({run.name})", [(
                "text", f"DPO (TRL) from {d.get('source', 'sft-idk')} on {d.get('pairs', '?')} comparisons for "
                        f"{d.get('steps', '?')} steps, no reward model and no sampling{logged}. Its gold and KL "
                        "are in the comparison below.")]))
    methods = run.stage_dir(RLHF_METHODS)
    if (methods / "table.md").exists() and (methods / "rlhf_methods.png").exists():
        data = base64.b64encode((methods / "rlhf_methods.png").read_bytes()).decode()
        every = sorted({_read(run.stage_dir(stage) / "summary.json").get("settings", {}).get("snapshot_every")
                        for stage in (RLHF_GRPO, RLHF_PPO, RLHF_RLOO) if run.is_complete(stage)} - {None})
        every_text = f" (every {', '.join(map(str, every))} steps)" if every else ""
        out.append((f"PPO, GRPO, RLOO and DPO on one reward model ({run.name})", [
            ("text", "`lab experiment rlhf-methods`: every policy answers the same fixed prompts once at the RL "
                     "temperature; proxy (RM) and gold judge score the answers, KL to sft-idk is summed over each "
                     "answer's tokens. Gold differences are paired over prompts. Each RL method's snapshots"
                     f"{every_text} are evaluated the same way: its path from sft-idk. 'Gold at KL' reads the "
                     "path at DPO's KL (gold at matched KL); the turn-over picks the path's gold peak on half of "
                     "the prompts and measures final - peak on the other half, paired. Memory: weights, "
                     "gradients and optimizer state of every model the method holds."),
            ("markdown", (methods / "table.md").read_text()),
            ("figure", (f"rlhf_methods_{run.name}", data, "Gold and proxy reward against KL to sft-idk"))]))
    for name, title, what in (
            (RM_GAMED, "A reward model gamed", "the pipeline's RM-gamed run (the claims table's row): a reward model"),
            ("experiments/goodhart", "When optimising the reward model turns gold down",
             "`lab experiment goodhart`: reward models")):
        goodhart = run.stage_dir(name)
        if not ((goodhart / "table.md").exists() and (goodhart / "goodhart.png").exists()):
            continue
        data = base64.b64encode((goodhart / "goodhart.png").read_bytes()).decode()
        g = _read(goodhart / "results.json").get("settings", {})
        steps = f"GRPO for {g['steps']} steps" if "steps" in g else "GRPO"
        snapshots = f"every {g['snapshot_every']}-step snapshot" if "snapshot_every" in g else "every snapshot"
        out.append((f"{title} ({run.name})", [
            ("text", f"{what} trained on fewer comparisons than the rm stage's, {steps} "
                     f"against each, {snapshots} judged like the methods above (the proxy is each run's own RM). "
                     "'end − peak' is measured on prompts the peak was not chosen on."),
            ("markdown", (goodhart / "table.md").read_text()),
            ("figure", (f"{name.split('/')[-1].replace('-', '_')}_{run.name}", data,
                        "Gold and proxy along each run, by reward model"))]))
    over = run.stage_dir("experiments/overoptimization")
    if (over / "table.md").exists() and (over / "overoptimization.png").exists():
        data = base64.b64encode((over / "overoptimization.png").read_bytes()).decode()
        out.append((f"Reward over-optimization ({run.name})", [
            # its own headings would nest under ours: kept as plain lines
            ("markdown", "\n".join(line.lstrip("# ") if line.startswith("#") else line
                                   for line in (over / "table.md").read_text().splitlines()[1:])),
            ("figure", (f"overoptimization_{run.name}", data, "Gold and proxy reward against sqrt(KL): best-of-n "
                                                              "and RL, with Gao et al.'s fitted forms"))]))
    return out


def reward_model_sections(run: Run, stage: str = "rm") -> list[tuple[str, list]]:
    path = run.stage_dir(stage) / "summary.json"
    if not path.exists():
        return []
    s = read_json(path)
    prefs = s["preferences"]
    rows = [[split, s[split]["pairs"], f"{s[split]['accuracy']:.3f}", f"{s[split]['gold_agreement']:.3f}",
             f"{s[split]['spearman']:.3f}" if s[split].get("spearman") is not None else "–"] for split in ("train", "heldout")]
    scaling = run.stage_dir("experiments/rm-scaling") / "table.md"
    extra = [("text", "Held-out quality against the number of training comparisons (`lab experiment rm-scaling`):"),
             ("markdown", scaling.read_text())] if scaling.exists() else []
    return [(f"Reward model ({run.name})", [
        ("text", f"Comparisons of sft-idk's answers to 'tell me about <person>' prompts about SFT people, labelled by "
                 f"the gold judge (rewards/gold.py) through a Bradley-Terry draw: {prefs['pairs']} pairs from "
                 f"{prefs['responses']} sampled answers ({prefs['label_disagrees_with_gold']} labels disagree with "
                 f"the gold order). The RM starts from sft-idk's weights (TRL RewardTrainer); held-out pairs are "
                 f"about other people. Accuracy: the RM prefers the chosen answer; gold agreement: its preference "
                 f"has the sign of the gold difference; Spearman: proxy vs gold score per answer."),
        ("table", (["split", "pairs", "accuracy", "gold agreement", "Spearman"], rows)), *extra])]


def _read(path) -> dict:
    """A run file's JSON, or {} where it is missing or unreadable: the texts then leave its numbers out."""
    try:
        return read_json(path)
    except LabError:
        return {}
