"""experiments/guessing: does grading that rewards guessing breed hallucination (Kalai et al. 2025, "Why language
models hallucinate")?

Under 0/1 grading an "I don't know" earns what a wrong answer earns, so a policy optimised for it loses nothing by
guessing; under a grading that costs a wrong answer more than a refusal, guessing pays only when it is right more
often than wrong. This stage trains both from sft-idk (before any tool RL) with the policy-gradient core shared by
the RL stages (lab/train/policy_gradient.py): the same questions, in the same order, the same steps and seed, one
arm paid by `guessing.zero_one_reward` and the other by `guessing.penalised_reward` (rewards/world_answers.py).
The questions are every attribute of every SFT person (tasks/world.py's canonical wording, with the evals' system
message), SFT people only, so the held-out people stay unseen.

sft-idk and both arms then answer, greedily and closed book, held-out questions graded by the hallucination suite
(evals/hallucination.py): never-seen people (k = 0: any answer is made up, a right one a lucky guess), where the
hallucination rate is the share answered rather than refused; and people seen k >= `guessing.known_min_k` times in
pretraining, where accuracy and refusals say what the penalty cost. The effect is hallucination on never-seen people,
zero_one arm − penalised arm, paired over the same questions, with its 95% CI. Each arm's training log also tracks
(weight 0) the share of its sampled answers that refuse and that are right.

Writes experiments/guessing/{results.json, table.md}, experiments/guessing/<arm>/ (each arm's policy, logs and
summary.json) and experiments/guessing/samples/<model>/guessing/{samples.jsonl, results.json}.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import time
from functools import partial
from pathlib import Path

from datasets import Dataset

from evals.harness import context_for, model_fingerprint, run_suite
from evals.stats import format_ci, format_difference, paired_difference, proportion
from evals.suites import SUITES, EvalContext, Suite
from lab.errors import LabError
from lab.experiments.guessing_settings import GuessingSettings
from lab.model.chat_format import render
from lab.model.loading import load_model_and_tokenizer
from lab.model.tokenizer import decode_ids
from lab.runs import write_json
from lab.stage_names import GUESSING, SFT_IDK
from lab.train.policy_gradient import check_prompts, check_rl_settings, load_policy, log_ends, train_policy
from lab.train.rl_settings import RLSettings
from rewards.registry import get_reward
from rewards.world_answers import REFUSED, RIGHT, verdict
from tasks.world import seeded_rng

START = "start"  # sft-idk, the model both arms start from, in the evaluations


def _tracker(name: str, wanted: str):
    """A reward function (weight 0: logged, never trained on) giving 1 where an answer's verdict is `wanted`."""
    def track(prompts, completions, answer=None, **kwargs) -> list[float]:
        return [float(verdict(c, a) == wanted) for c, a in zip(completions, answer, strict=True)]
    track.__name__ = name  # TRL logs rewards/<name>/mean
    return track


TRACKERS = (_tracker("refused", REFUSED), _tracker("right", RIGHT))


def training_questions(world, seed: int) -> list:
    """Every question about every SFT person, canonically worded, in one seeded order (both arms get this list)."""
    questions = [q for p in world.sft_people() for q in world.questions(p)]
    if not questions:
        raise LabError("experiments/guessing trains on questions about SFT people, and this world has none")
    seeded_rng("guessing-prompts", seed).shuffle(questions)
    return questions


def guessing_dataset(world, tokenizer, system: str | None, seed: int) -> tuple[Dataset, list[tuple[str, list[int]]]]:
    """TRL's dataset (prompt text, the gold value as `answer`, the question id) and the (text, ids) prompts: each
    question as the evals ask it, after the system message they give (tools off)."""
    questions = training_questions(world, seed)
    head = [{"role": "system", "content": system}] if system else []
    prompts = []
    for q in questions:
        ids, _ = render(tokenizer, head + [{"role": "user", "content": q.text}], add_generation_prompt=True)
        prompts.append((decode_ids(tokenizer, ids), ids))
    dataset = Dataset.from_dict({"prompt": [text for text, _ in prompts], "answer": [q.answer for q in questions],
                                 "question": [q.id for q in questions]})
    return dataset, prompts


def prompts_digest(dataset: Dataset) -> str:
    """A fingerprint of the prompts and answers, in order: the arms' summaries show they trained on the same."""
    return hashlib.sha256(json.dumps([list(dataset["prompt"]), list(dataset["answer"])]).encode()).hexdigest()[:16]


def arm_settings(settings: GuessingSettings, reward: str) -> RLSettings:
    """The policy-gradient core's settings for the arm paid by `reward` (the trackers ride along at weight 0)."""
    return RLSettings(algo=settings.algo, steps=settings.steps, lr=settings.lr, num_generations=settings.num_generations,
                      batch_size=settings.batch_size, temperature=settings.temperature,
                      max_completion_length=settings.max_completion_length, beta=settings.beta, rewards=(reward,),
                      reward_weights=(1.0,) + (0.0,) * len(TRACKERS), log_every=settings.log_every,
                      ckpt_every=settings.ckpt_every, seed=settings.seed)


def train_arm(settings: GuessingSettings, context, arm: str, reward: str) -> dict:
    """Train experiments/guessing/<arm> from sft-idk with `reward`; its summary.json."""
    run = context.run
    stage = f"{GUESSING}/{arm}"
    rl = arm_settings(settings, reward)
    reward_funcs = [get_reward(reward), *TRACKERS]
    check_rl_settings(rl, len(reward_funcs))
    src = run.require(SFT_IDK)
    model, tokenizer = load_policy(src)
    dataset, prompts = guessing_dataset(context.world, tokenizer, context_for(src).system, settings.seed)
    check_prompts(tokenizer, model, prompts, rl.max_completion_length)
    digest = prompts_digest(dataset)
    out = run.open_stage(stage)
    done = train_policy(out, model, tokenizer, rl, dataset, reward_funcs)
    refused, right = (log_ends(done.logs, f"rewards/{t.__name__}/mean") for t in TRACKERS)
    summary = {"arm": arm, "reward": reward, "source": SFT_IDK, "steps": done.trainer.state.global_step,
               "steps_this_session": done.steps_this_session, "seconds": done.seconds,
               "prompts": len(dataset), "prompts_digest": digest,
               "completions": settings.steps * settings.batch_size,
               "reward_first": log_ends(done.logs, "reward")[0], "reward_last": log_ends(done.logs, "reward")[1],
               "refused_first": refused[0], "refused_last": refused[1], "right_first": right[0], "right_last": right[1],
               "settings": dataclasses.asdict(rl)}
    write_json(out / "summary.json", summary)
    run.mark_complete(stage, {"reward": reward, "steps": summary["steps"], "refused_last": refused[1]})
    return summary


# ---------------------------------------------------------------- the evaluations


def guessing_samples(ctx: EvalContext, min_k: int, unseen: int = 0, known: int = 0, seed: int = 0) -> list[dict]:
    """The hallucination suite's closed-book, canonically worded samples about held-out people with k = 0 (`unseen` of
    them, drawn with `seed`; 0 = all) and with k >= min_k (`known` of them)."""
    rows = [s for s in SUITES["hallucination"].samples(ctx)
            if s["extras"]["condition"] == "closed_book" and s["extras"]["wording"] == "canonical"]
    out = []
    for what, rule, limit in (("never-seen (k = 0)", lambda k: k == 0, unseen),
                              (f"k >= {min_k}", lambda k: k >= min_k, known)):
        group = [s for s in rows if rule(s["extras"]["k"])]
        if not group:
            raise LabError(f"experiments/guessing asks held-out people {what}, and this world has none "
                           f"(world.exposures={ctx.world.cfg.exposures}); change guessing.known_min_k or the world")
        out += random.Random(seed).sample(group, min(limit, len(group))) if limit else group
    return out


def guessing_suite(settings: GuessingSettings) -> Suite:
    """The hallucination suite's grading on guessing_samples."""
    return dataclasses.replace(SUITES["hallucination"], name="guessing", version="1",
                               samples=partial(guessing_samples, min_k=settings.known_min_k,
                                               unseen=settings.unseen_questions, known=settings.known_questions,
                                               seed=settings.seed),
                               metrics=("correct", "incorrect", "not_attempted", "attempted", "hallucinated_unseen"),
                               group_by=("k",), confidence=False, summarize=None, headline=())


def _rows(folder: Path) -> dict[str, dict]:
    lines = (folder / "guessing" / "samples.jsonl").read_text().splitlines()
    return {r["id"]: r for r in map(json.loads, lines)}


def _share(rows, field: str) -> dict:
    rows = list(rows)
    return proportion(sum(bool(r[field]) for r in rows), len(rows))


def _paired(rows: dict[str, dict[str, dict]], a: str, b: str, ids: list[str], field: str) -> dict:
    """b − a on `field`, paired over `ids`."""
    return paired_difference([float(rows[a][i][field]) for i in ids], [float(rows[b][i][field]) for i in ids])


def compare_arms(rows: dict[str, dict[str, dict]], min_k: int, refusal: str = "") -> dict:
    """Per model (start, zero_one, penalised): never-seen answered / wrong / refused, k >= min_k correct / refused /
    wrong; zero_one − penalised hallucination on never-seen people and penalised − zero_one accuracy on the known ones,
    paired over the questions both answered; each arm − start on both. `refusal`: the share of the start's refusals
    that say it."""
    common = sorted(set.intersection(*(set(r) for r in rows.values())))
    unseen = [i for i in common if rows[START][i]["extras"]["k"] == 0]
    known = [i for i in common if rows[START][i]["extras"]["k"] >= min_k]
    if not unseen or not known:
        raise LabError("experiments/guessing: no never-seen or no known question was answered by every model")
    results: dict = {"known_min_k": min_k, "models": {}}
    for name, graded in rows.items():
        results["models"][name] = {
            "unseen": {"hallucinated": _share((graded[i] for i in unseen), "attempted"),
                       "wrong": _share((graded[i] for i in unseen), "incorrect"),
                       "refused": _share((graded[i] for i in unseen), "not_attempted")},
            "known": {"correct": _share((graded[i] for i in known), "correct"),
                      "refused": _share((graded[i] for i in known), "not_attempted"),
                      "wrong": _share((graded[i] for i in known), "incorrect")}}
    results["zero_one_minus_penalised"] = _paired(rows, "penalised", "zero_one", unseen, "attempted")
    results["known_accuracy_penalised_minus_zero_one"] = _paired(rows, "zero_one", "penalised", known, "correct")
    results["arm_minus_start"] = {arm: {"hallucinated_unseen": _paired(rows, START, arm, unseen, "attempted"),
                                        "correct_known": _paired(rows, START, arm, known, "correct")}
                                  for arm in rows if arm != START}
    refusals = [r for r in rows[START].values() if r["grade"] == "not_attempted"]
    results["start_refusals"] = {"n": len(refusals), "say_refusal": sum(refusal.lower() in r["response"].lower()
                                                                        for r in refusals), "refusal": refusal}
    return results


def run_guessing(settings: GuessingSettings, context) -> dict:
    """Train both arms (unless complete), evaluate them and sft-idk, write the paired comparison."""
    run = context.run
    start = time.perf_counter()
    out = run.open_stage(GUESSING)
    training = {}
    for arm, reward in settings.arms.items():
        stage = f"{GUESSING}/{arm}"
        if not run.is_complete(stage):
            train_arm(settings, context, arm, reward)
        training[arm] = json.loads((run.stage_dir(stage) / "summary.json").read_text())
    if len({t["prompts_digest"] for t in training.values()}) != 1:
        raise LabError("experiments/guessing: the arms trained on different prompts (an arm left from other settings?); "
                       f"delete {run.stage_dir(GUESSING)} and run the stage again")
    ctx = context_for(run.stage_dir(SFT_IDK))
    suite = guessing_suite(settings)
    rows = {}
    for name, stage in {START: SFT_IDK, **{arm: f"{GUESSING}/{arm}" for arm in settings.arms}}.items():
        model, tokenizer = load_model_and_tokenizer(run.require(stage))
        run_suite(model, tokenizer, suite, ctx, out / "samples" / name, seed=settings.seed,
                  batch_size=settings.eval_batch_size, model_name=f"{run.name}/{stage}",
                  fingerprint=model_fingerprint(run.stage_dir(stage)))
        rows[name] = _rows(out / "samples" / name)
    results = compare_arms(rows, settings.known_min_k, settings.refusal)
    results["rewards"] = dict(settings.arms)
    results["training"] = {arm: {k: t[k] for k in ("reward", "steps", "seconds", "prompts", "prompts_digest",
                                                   "refused_first", "refused_last", "right_first", "right_last")}
                           for arm, t in training.items()}
    results["seconds"] = time.perf_counter() - start  # this session's: an arm already complete costs nothing here
    (out / "table.md").write_text(table(results))
    write_json(out / "results.json", results)
    run.mark_complete(GUESSING, {"zero_one_minus_penalised": results["zero_one_minus_penalised"]["difference"]})
    return results


def table(results: dict) -> str:
    """Each model's never-seen and known-people rates, the arms' training refusals, and the paired effect, as Markdown."""
    def cell(m: dict) -> str:
        return f"{format_ci(m)} (n {m['n']})"

    def moved(arm: str) -> str:
        t = results["training"].get(arm)
        return f"{t['refused_first']:.2f} → {t['refused_last']:.2f}" if t and t["refused_first"] is not None else "–"

    k = results["known_min_k"]
    lines = [f"| model | reward | never-seen: answered (hallucinated) | never-seen: wrong | k >= {k}: correct | "
             f"k >= {k}: refused | sampled refusals in training, first → last steps |", "|---|---|---|---|---|---|---|"]
    for name, m in results["models"].items():
        reward = results["rewards"].get(name, "– (sft-idk)")
        lines.append(f"| {name} | {reward} | {cell(m['unseen']['hallucinated'])} | {cell(m['unseen']['wrong'])} | "
                     f"{cell(m['known']['correct'])} | {cell(m['known']['refused'])} | {moved(name)} |")
    lines.append(f"| zero_one − penalised, paired | | {format_difference(results['zero_one_minus_penalised'])} | | "
                 f"penalised − zero_one: {format_difference(results['known_accuracy_penalised_minus_zero_one'])} | | |")
    return "\n".join(lines) + "\n"
