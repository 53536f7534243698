"""experiments/demonstrator: can RL with a verifier surpass the demonstrations it started from?

A fallible demonstrator (tasks/demonstrator.py) writes worked solutions of two-digit column addition and
subtraction: right on exactly `rate` of its problems and wrong on the rest by one fixed rule (the dropped carry,
smaller-from-larger subtraction), written as a consistent worked solution. The practice problems are drawn so
that a share 1 − rate is in its error class, so the demonstrator is right on exactly `rate` of what it shows.

  sft   sft-idk fine-tuned on the demonstrator's worked solutions (lab/train/math_practice's trainer, with a
        replay of sft-idk's own conversations against forgetting): imitation, which learns the rule with the rest
  rl    that SFT trained with RL on the verifier (lab/train/rl_math, the run's `rl.*` settings with this stage's
        steps and problems; reward: correctness + 0.1 format, as rl-math): paid for right answers, not for
        agreeing with the demonstrator

Both models answer, greedily and graded by the verifier, (a) held-out two-digit problems drawn with the
practice's share in the error class, so the demonstrator's own accuracy there is `rate` (measured per problem,
its column), and (b) held-out three-digit problems, a harder split no practice showed, drawn the same way (the
demonstrator's answer there is its rule applied to them). Reported, paired per problem with 95% CIs:
SFT-on-noisy − demonstrator, RL − demonstrator and RL − SFT-on-noisy on each split; accuracy in and out of the
error class; and how often a model's answer to a class problem is the demonstrator's wrong one (the rule learned).

How it could fail: SFT imitates the rule so faithfully that no sampled answer to a class problem is ever right,
so every group there is all wrong, has no advantage, and RL only polishes the problems the demonstrator already
gets right (RL − SFT-on-noisy > 0 while RL − demonstrator stays ≤ 0); or SFT falls so far short of its
demonstrator that RL cannot climb past it in its steps. On the development world the first happened
(lab/experiments/demonstrator_settings.py): RL perfected the problems outside the class, began writing the carry
in the class's additions but mostly kept the sums it had imitated ("tens: 7 + 8 + 1 = 15"), and never borrowed.

Writes experiments/demonstrator/{sft/, rl/, rl_problems.jsonl, samples/<split>.jsonl, results.json, table.md}.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace

from evals.math_heldout import EVAL_SEED, greedy_accuracy
from evals.stats import format_ci, format_difference, paired_difference, proportion
from evals.suites import grade_math
from lab.errors import LabError
from lab.experiments.demonstrator_settings import DemonstratorSettings
from lab.model.loading import load_model_and_tokenizer
from lab.model.tokenizer import load_tokenizer
from lab.runs import Run, read_json, write_json
from lab.settings import from_settings
from lab.stage_names import DEMONSTRATOR, SFT_IDK
from lab.train.math_practice import replay_records, solution_records, train_on_records, with_system_messages
from lab.train.rl_math import rl_math
from lab.train.rl_settings import RLSettings
from lab.train.sft import build_dataset
from tasks.demonstrator import RULES, demonstrate, operands, stratified
from tasks.math import MathConfig

SFT_ARM = f"{DEMONSTRATOR}/sft"
RL_ARM = f"{DEMONSTRATOR}/rl"
ARMS = {"demonstrator": None, "sft": SFT_ARM, "rl": RL_ARM}  # arm -> its stage (the demonstrator is a rule)
# split -> (band of column arithmetic, what it is)
SPLITS = {"heldout": (2, "held-out two-digit problems (the practised procedure)"),
          "harder": (3, "held-out three-digit problems (one more digit, never practised)")}
DIFFERENCES = {"sft_minus_demonstrator": ("demonstrator", "sft"), "rl_minus_demonstrator": ("demonstrator", "rl"),
               "rl_minus_sft": ("sft", "rl")}  # name -> (a, b): b − a, paired per problem


def practice_problems(settings: DemonstratorSettings, n: int, band: int = 2):
    """`n` training-split problems of column addition and subtraction with the stratified error-class share."""
    return stratified(MathConfig(seed=settings.seed, tasks=("arithmetic",), bands=(band,)), n, settings.rate, "train")


def eval_sets(settings: DemonstratorSettings) -> dict[str, list]:
    """Each split's held-out problems (distinct numbers, the error-class share of practice), fixed whatever the
    training seed, so arms and seeds are graded on the same problems."""
    return {split: stratified(MathConfig(seed=EVAL_SEED, tasks=("arithmetic",), bands=(band,)), settings.eval_problems,
                              settings.rate, "heldout", distinct=True) for split, (band, _) in SPLITS.items()}


def rl_settings(run: Run, settings: DemonstratorSettings) -> RLSettings:
    """The run's `rl.*` settings (its defaults where the run has no rl section) with this stage's steps, problems
    and seed, rl-math's reward (correctness + 0.1 format; group_solved logged at weight 0: the share of groups
    with a right answer, GRPO's signal) and no sampled grading of its own check (this stage grades greedily)."""
    recorded = run.settings().get("rl")
    base = from_settings(RLSettings, recorded) if recorded else RLSettings()
    return replace(base, steps=settings.rl_steps, train_problems=settings.rl_problems, seed=settings.seed,
                   rewards=("correctness", "format", "group_solved"), reward_weights=(1.0, 0.1, 0.0),
                   eval_problems=settings.rl_check_problems, eval_samples=0, eval_every=0)


def train_sft(settings: DemonstratorSettings, context) -> dict:
    """sft-idk fine-tuned on the demonstrator's worked solutions, each seen once, with sft-idk's replay mixed in."""
    run, max_length = context.run, context.sft.max_length
    shown = [demonstrate(p) for p in practice_problems(settings, settings.problems)]
    records = (with_system_messages(solution_records(shown, tuple(settings.forms)), context.sft, settings.seed)
               + replay_records(context, SFT_IDK, settings.replay, settings.seed))
    dataset, too_long = build_dataset(records, load_tokenizer(run.require(SFT_IDK)), max_length)
    steps = max(1, len(records) // settings.batch_size)
    done = train_on_records(run, dataset, SFT_ARM, steps, settings.batch_size, settings.lr, settings.seed, SFT_IDK,
                            settings.log_every, settings.ckpt_every, max_length)
    right = sum(not p.extras["error_class"] for p in shown)
    summary = {"source": SFT_IDK, "problems": len(shown), "demonstrator_right": right,
               "demonstrator_accuracy": right / len(shown), "replayed": len(records) - len(shown) * len(settings.forms),
               "dropped_too_long": too_long, **{k: v for k, v in done.items() if k != "model"},
               "settings": asdict(settings)}
    write_json(run.stage_dir(SFT_ARM) / "summary.json", summary)
    run.mark_complete(SFT_ARM, {"steps": summary["steps"], "problems": len(shown)})
    return summary


def train_rl(settings: DemonstratorSettings, context) -> dict:
    """RL on the verifier from the SFT arm, on problems drawn as the practice's (written as a problem file for
    rl_math, which holds `rl_check_problems` of their questions out for its own before/after check)."""
    run = context.run
    problems = practice_problems(replace(settings, seed=settings.seed + 1), settings.rl_problems
                                 + settings.rl_check_problems)  # another draw than the practice's
    path = run.stage_dir(DEMONSTRATOR) / "rl_problems.jsonl"
    path.write_text("".join(json.dumps({"id": p.id, "question": p.question, "answer": p.answer}) + "\n"
                            for p in problems))
    return rl_math(rl_settings(run, settings), context.at(RL_ARM, SFT_ARM), data=path)


def grade(settings: DemonstratorSettings, run: Run, problems: dict[str, list], max_new_tokens: int) -> dict[str, list]:
    """Per split, one row a problem: its class, the demonstrator's answer and grade (its worked solution through the
    verifier), and each model's greedy response, grade, and whether it gave the demonstrator's answer."""
    rows = {}
    for split, ps in problems.items():
        shown = [demonstrate(p) for p in ps]
        verdicts = grade_math([(d.solution, p.answer) for d, p in zip(shown, ps)])
        rows[split] = [{"id": p.id, "question": p.question, "gold": p.answer, "op": operands(p)[1],
                        "error_class": d.extras["error_class"], "demonstrator_answer": d.answer,
                        "correct": {"demonstrator": v.equivalent}, "follows_rule": {"demonstrator": True},
                        "responses": {}} for p, d, v in zip(ps, shown, verdicts)]
    for arm, stage in ARMS.items():
        if stage is None:
            continue
        model, tokenizer = load_model_and_tokenizer(run.require(stage))
        for split, ps in problems.items():
            graded = greedy_accuracy(model, tokenizer, ps, max_new_tokens, batch_size=settings.eval_batch_size)
            responses = [s["response"] for s in graded["samples"]]
            rule = grade_math([(r, row["demonstrator_answer"]) for r, row in zip(responses, rows[split])])
            for row, sample, v in zip(rows[split], graded["samples"], rule):
                row["correct"][arm], row["follows_rule"][arm] = sample["correct"], v.equivalent
                row["responses"][arm] = sample["response"]
    return rows


def compare(rows: dict[str, list[dict]], rate: float) -> dict:
    """From graded rows (grade's shape): per split, each arm's accuracy overall and in / out of the error class, the
    share of class problems answered with the demonstrator's wrong answer, and the paired differences."""
    results: dict = {"rate": rate, "rules": RULES, "splits": {}}
    for split, split_rows in rows.items():
        if not split_rows:
            raise LabError(f"experiments/demonstrator: no {split} problem was graded")
        wrong = [r for r in split_rows if r["error_class"]]
        out = {"what": SPLITS.get(split, (0, split))[1], "n": len(split_rows), "error_class_share": len(wrong) /
               len(split_rows), "accuracy": {}, "by_class": {"error_class": {}, "other": {}}, "follows_rule": {}}
        for arm in ARMS:
            out["accuracy"][arm] = _share(split_rows, arm)
            out["by_class"]["error_class"][arm] = _share(wrong, arm)
            out["by_class"]["other"][arm] = _share([r for r in split_rows if not r["error_class"]], arm)
            out["follows_rule"][arm] = proportion(sum(r["follows_rule"][arm] for r in wrong), len(wrong))
        for name, (a, b) in DIFFERENCES.items():
            out[name] = paired_difference([float(r["correct"][a]) for r in split_rows],
                                          [float(r["correct"][b]) for r in split_rows])
        # within the class: did RL unlearn the rule it was shown? (paired on the class problems alone)
        out["rl_minus_sft_in_class"] = paired_difference([float(r["correct"]["sft"]) for r in wrong],
                                                         [float(r["correct"]["rl"]) for r in wrong]) if wrong else None
        results["splits"][split] = out
    return results


def _share(rows: list[dict], arm: str) -> dict:
    return proportion(sum(r["correct"][arm] for r in rows), len(rows))


def run_demonstrator(settings: DemonstratorSettings, context) -> dict:
    """Train the SFT arm and the RL arm (each unless complete), grade both and the demonstrator, write the comparison."""
    run, start = context.run, time.time()
    if context.sft is None:
        raise LabError("experiments/demonstrator practises from sft-idk and this pipeline has no sft settings section")
    out = run.open_stage(DEMONSTRATOR)
    seconds = {}
    for arm, train in ((SFT_ARM, train_sft), (RL_ARM, train_rl)):
        if not run.is_complete(arm):
            train(settings, context)
        seconds[arm.rsplit("/", 1)[1]] = read_json(run.stage_dir(arm) / "summary.json")["seconds"]
    graded_at = time.time()
    rows = grade(settings, run, eval_sets(settings), settings.eval_max_new_tokens)
    results = compare(rows, settings.rate)
    sft_summary, rl_summary = (read_json(run.stage_dir(a) / "summary.json") for a in (SFT_ARM, RL_ARM))
    results |= {"sft": {k: sft_summary[k] for k in ("problems", "demonstrator_accuracy", "replayed", "steps",
                                                     "batch_size", "seconds")},
                "rl": {k: rl_summary[k] for k in ("steps", "train_problems", "reward_first", "reward_last",
                                                  "groups_solved_first", "groups_solved_last", "seconds")},
                "seconds": {**seconds, "grading": time.time() - graded_at, "this_session": time.time() - start},
                "settings": asdict(settings)}
    (out / "samples").mkdir(exist_ok=True)
    for split, split_rows in rows.items():
        (out / "samples" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in split_rows))
    (out / "table.md").write_text(table(results))
    write_json(out / "results.json", results)
    heldout = results["splits"]["heldout"]
    run.mark_complete(DEMONSTRATOR, {d: heldout[d]["difference"] for d in DIFFERENCES})
    return results


ARM_NAMES = {"demonstrator": "demonstrator", "sft": "SFT on its traces", "rl": "RL from that SFT"}
DIFF_NAMES = {"sft_minus_demonstrator": "SFT-on-noisy − demonstrator", "rl_minus_demonstrator": "RL − demonstrator",
              "rl_minus_sft": "RL − SFT-on-noisy"}


def _cell(m: dict) -> str:
    return format_ci(m) if m["n"] else "–"


def table(results: dict) -> str:
    """Each arm's accuracy on each split (overall, in and out of the error class, answers that follow the rule) and
    the paired differences, as Markdown."""
    splits = results["splits"]
    head = ["", *(f"{s}: {splits[s]['what']} (n {splits[s]['n']})" for s in splits)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arm, name in ARM_NAMES.items():
        lines.append(f"| {name}, correct | " + " | ".join(_cell(splits[s]["accuracy"][arm]) for s in splits) + " |")
    for arm, name in ARM_NAMES.items():
        lines.append(f"| {name}, correct in the error class | " + " | ".join(
            _cell(splits[s]["by_class"]["error_class"][arm]) for s in splits) + " |")
    for arm, name in ARM_NAMES.items():
        lines.append(f"| {name}, correct outside it | " + " | ".join(
            _cell(splits[s]["by_class"]["other"][arm]) for s in splits) + " |")
    for arm in ("sft", "rl"):
        lines.append(f"| {ARM_NAMES[arm]}: error-class answers equal to the demonstrator's wrong one | " + " | ".join(
            _cell(splits[s]["follows_rule"][arm]) for s in splits) + " |")
    named = {**DIFF_NAMES, "rl_minus_sft_in_class": "RL − SFT-on-noisy in the error class"}
    for name, said in named.items():
        lines.append(f"| {said}, paired | " + " | ".join(
            format_difference(splits[s][name], n=False) if splits[s][name] else "–" for s in splits) + " |")
    return "\n".join(lines) + "\n"
