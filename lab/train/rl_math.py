"""RL on verifiable math rewards with TRL: the SFT model practises problems and is paid for right answers.

SFT shows the model worked solutions; RL lets it sample its own and reinforces the ones the verifier
(rewards/verifier.py, through the reward functions of rewards/registry.py) accepts. That only works
from partial competence: a group of samples where every answer is wrong (or every one right) has zero
advantage and teaches nothing. So the default task is the one the sft-math stage (lab/train/math_practice.py)
practises to partial competence, two-digit column addition and subtraction (band 2 arithmetic), and rl-math
starts there; the learning rate sits an order below SFT's (calibration notes: 10x the good rate collapsed
the policy). Its held-out questions (~1,200 distinct) are new combinations of the column steps every
training problem uses, so a held-out gain is a gain in carrying out the procedure. Watch held-out accuracy,
not the training reward: where
competence was ~5% (band 1 of every task, when SFT spread 300 problems over all of them) RL raised the
training reward on the few hundred distinct band-1 questions while held-out accuracy did not move.

The algorithm is one of lab/train/rl_algorithms.py's TRL-trained ones, run by the policy-gradient core shared
with RLHF (lab/train/policy_gradient.py). Before and after training, accuracy on a fixed set of held-out
problems is measured with our engine and the math suite's grading (evals/math_heldout.py), so arms are
comparable.

Your own problems instead of the generator (`lab rl math RUN --data FILE`, rl_math's `data`): any file
evals/custom.py's load_rows reads (JSONL, TSV/CSV, .json, parquet, a `datasets` folder), one problem a row
with a question and a gold answer field (evals/user_problems.py). A row that cannot be graded honestly is
skipped and listed in summary.json with its line and why: no question, an empty answer, an answer the
verifier cannot read as math ("see above"), a prompt the model's context cannot hold. A seeded share of the
questions is held out (split_user_problems) and replaces the generator's held-out set before and after.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from datasets import Dataset
from transformers import TrainerCallback

from evals.math_checks import check_summary
from evals.math_heldout import eval_problems, greedy_accuracy, heldout_accuracy, problem_prompts, sampled_correct
from evals.user_problems import SPLIT_SEED, load_user_problems, skip_list, split_user_problems
from lab.errors import LabError
from lab.runs import read_json, write_json, write_train_log
from lab.train.policy_gradient import check_prompts, check_rl_settings, load_policy, log_ends, prompt_faults, train_policy
from lab.train.rl_settings import RLSettings
from rewards.registry import get_rewards
from tasks.math import MathConfig, generate


def fit_prompts(tokenizer, model, problems, max_completion_length: int, skipped: list[dict]) -> list:
    """The problems whose prompt has no prompt_faults (check_prompts' conditions, row by row); the others are
    added to `skipped` with their fault."""
    kept = []
    for p, fault in zip(problems, prompt_faults(tokenizer, model, problem_prompts(tokenizer, problems), max_completion_length)):
        if fault:
            skipped.append({"line": p.extras["line"], "reason": fault})
        else:
            kept.append(p)
    skipped.sort(key=lambda s: s["line"])
    return kept


def solve_rate_filter(model, tokenizer, problems, settings: RLSettings, out: Path) -> tuple[list, dict]:
    """The training problems the start solves sometimes but not always, and what the probe found.

    Each problem gets `settings.solve_probe_samples` sampled answers at the training temperature, graded by the
    verifier. Saved as out/solve_probe.json, so a resumed run trains on the same problems without probing again.
    When fewer problems than one step's prompts qualify, every problem is kept and the summary says so."""
    k, cached = settings.solve_probe_samples, out / "solve_probe.json"
    if cached.exists():
        probe = read_json(cached)
    else:
        start = time.time()
        solved = sampled_correct(model, tokenizer, problems, settings, k, seed=settings.seed, batch_size=256)
        probe = {"samples": k, "solved": solved, "seconds": time.time() - start}
        write_json(cached, probe)
    solved = probe["solved"]
    if len(solved) != len(problems) or probe["samples"] != k:
        raise LabError(f"{cached} was probed with other settings; delete it (or the stage) to probe again")
    kept = [p for p, c in zip(problems, solved) if 0 < c < k]
    enough = len(kept) >= settings.batch_size // settings.num_generations
    report = {"samples": k, "problems": len(problems), "kept": len(kept) if enough else len(problems),
              "filtered": enough, "sampled_accuracy": sum(solved) / (k * len(problems)),
              "solved_histogram": {str(c): solved.count(c) for c in range(k + 1)}, "seconds": probe["seconds"]}
    return (kept if enough else problems), report


def write_heldout(out: Path, before: dict, after: dict) -> None:
    """heldout/before.jsonl and after.jsonl: each held-out problem's grades (the samples leave the dicts)."""
    (out / "heldout").mkdir(exist_ok=True)
    for name, result in (("before", before), ("after", after)):
        (out / "heldout" / f"{name}.jsonl").write_text("".join(json.dumps(s) + "\n" for s in result.pop("samples")))


def write_log(out, history: list[dict]) -> list[dict]:
    """logs/train.jsonl from the trainer's log history (restored from the checkpoint on resume, so complete)."""
    rows = [dict(r) for r in history]
    for r in rows:  # "accuracy": the share of sampled completions the verifier accepted
        if "rewards/correctness/mean" in r:
            r["accuracy"] = r["rewards/correctness/mean"]
    write_train_log(out, rows)
    return rows


def _eval_callback(settings: RLSettings, tokenizer, problems):
    class HeldoutEval(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if settings.eval_every and state.global_step % settings.eval_every == 0:
                acc = greedy_accuracy(model, tokenizer, problems, settings.max_completion_length)
                # log_history is saved in every checkpoint, so these rows survive a resume
                state.log_history.append({"step": state.global_step, "heldout_accuracy": acc["all"]["accuracy"]})

    return HeldoutEval()


def rl_math(settings: RLSettings, context, data: Path | None = None, question_field: str = "question",
            answer_field: str = "answer") -> dict:
    """Train `context.source` with RL on math into `context.stage` (a relative path such as experiments/x/arm works).

    `data`: a file of your own problems (load_user_problems) instead of the generator's rl.tasks and rl.bands;
    part of it is held out (split_user_problems) and summary["data"] says which rows trained, were held out,
    or were skipped and why."""
    run, source, out_stage = context.run, context.source, context.stage
    reward_funcs = get_rewards(list(settings.rewards))
    check_rl_settings(settings, len(settings.rewards))
    src = run.require(source)
    user = load_user_problems(data, question_field, answer_field) if data is not None else None  # before any write
    model, tokenizer = load_policy(src)
    data_report = None
    if user is not None:
        problems, data_report = user
        problems = fit_prompts(tokenizer, model, problems, settings.max_completion_length, data_report["skipped"])
        try:
            problems, held_out, unused = split_user_problems(problems, settings)
        except LabError as e:  # too few rows left: say which were skipped and why
            raise LabError(f"{data}: {e} (skipped {len(data_report['skipped'])}: "
                           f"{skip_list(data_report['skipped'])})") from None
        skipped = data_report.pop("skipped")  # kept last: the list can be long
        data_report |= {"usable": len(problems) + len(held_out) + len(unused), "trained": len(problems),
                        "held_out": len(held_out), "unused": len(unused), "split_seed": SPLIT_SEED,
                        "held_out_lines": [p.extras["line"] for p in held_out], "skipped": skipped}
    else:
        problems = generate(MathConfig(seed=settings.seed, tasks=tuple(settings.tasks), bands=tuple(settings.bands)),
                            settings.train_problems, split="train")
        held_out = eval_problems(settings)
    out = run.open_stage(out_stage)

    prompts = problem_prompts(tokenizer, problems)
    check_prompts(tokenizer, model, prompts, settings.max_completion_length)
    probe = None
    if settings.solve_probe_samples:
        problems, probe = solve_rate_filter(model, tokenizer, problems, settings, out)
        prompts = problem_prompts(tokenizer, problems)
    dataset = Dataset.from_dict({"prompt": [text for text, _ in prompts], "answer": [p.answer for p in problems],
                                 "task": [p.task for p in problems], "difficulty": [p.difficulty for p in problems]})
    before = heldout_accuracy(model, tokenizer, held_out, settings)

    done = train_policy(out, model, tokenizer, settings, dataset, reward_funcs, write_logs=write_log,
                        callbacks=[_eval_callback(settings, tokenizer, held_out)])
    last, trainer = done.resumed_from, done.trainer
    after = heldout_accuracy(done.model, tokenizer, held_out, settings)
    checks = check_summary(before["samples"], after["samples"])  # before write_heldout takes the samples out
    write_heldout(out, before, after)
    reward_first, reward_last = log_ends(done.logs, "reward")
    solved_first, solved_last = log_ends(done.logs, "rewards/group_solved/mean")
    summary = {
        "algo": settings.algo, "source": source, "steps": trainer.state.global_step,
        "resumed_from": Path(last).name if last else None, "steps_this_session": done.steps_this_session,
        "seconds": done.seconds, "seconds_per_step": done.seconds / max(1, done.steps_this_session),
        "reward_first": reward_first, "reward_last": reward_last,
        # the share of groups holding a correct answer: GRPO's signal (None when group_solved is not tracked)
        "groups_solved_first": solved_first, "groups_solved_last": solved_last,
        "heldout_before": before, "heldout_after": after, "train_problems": len(problems), "solve_probe": probe,
        "data": data_report,  # None: the generator's problems (rl.tasks, rl.bands)
        "checks": checks,  # verified checks in the held-out answers, before and after (evals/math_checks.py)
        "settings": asdict(settings),
    }
    write_json(out / "summary.json", summary)
    run.mark_complete(out_stage, {"algo": settings.algo, "steps": summary["steps"], "heldout_before":
                                  before["all"]["accuracy"], "heldout_after": after["all"]["accuracy"]}
                      | ({"data": data_report["path"]} if data_report else {}))
    return summary
