"""experiments/wording: does knowledge extraction need varied wording (Allen-Zhu & Li, "Physics of Language Models 3.1")?

The pipeline's sft-idk asks its questions about people in wordings drawn from tasks/world.py's
TRAINING_QUESTION_TEMPLATES (ChatMixture.question_wording="varied"). This stage trains its control into
experiments/wording/sft-idk-canonical: the same sft-idk (the run's `sft.*` settings, the same known questions from
sft-idk's probe, the same seed) with every question in the one canonical wording, so the two mixtures differ in
the questions' words alone. Both then answer every question about the held-out people with k >= `min_k`
(never in SFT data; the base model knows most of their facts), closed book with the tools off: canonically and in
each held-out wording (HELDOUT_QUESTION_TEMPLATES, in no training source). The effect is held-out-wording accuracy,
varied − canonical, paired over the same samples, with its 95% CI.

Writes experiments/wording/{results.json, table.md, samples/<arm>/wording/{samples.jsonl, results.json}}.
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
from functools import partial
from pathlib import Path

from evals.harness import context_for, model_fingerprint, run_suite
from evals.stats import format_ci, format_difference, paired_difference, proportion
from evals.suites import SUITES, EvalContext, Suite
from evals.wording import SUFFIX, heldout_texts, with_heldout
from lab.errors import LabError
from lab.experiments.wording_settings import WordingSettings
from lab.model.loading import load_model_and_tokenizer
from lab.runs import write_json
from lab.stage_names import BASE, SFT_IDK, WORDING
from lab.train.sft import sft
from lab.train.sft_settings import SFTSettings

CANONICAL_ARM = f"{WORDING}/sft-idk-canonical"
ARMS = {"varied": SFT_IDK, "canonical": CANONICAL_ARM}  # how each trained its questions -> its stage


def wording_samples(ctx: EvalContext, min_k: int, limit: int = 0, seed: int = 0) -> list[dict]:
    """Every question about the held-out people with k >= min_k (or `limit` of them, drawn with `seed`), closed
    book: canonically, then in each held-out wording (ids "<question>|<wording index>", 0 the canonical one)."""
    people = [p for p in ctx.world.heldout_people() if p.k >= min_k]
    if not people:
        raise LabError(f"experiments/wording asks held-out people with k >= {min_k}, and this world has none "
                       f"(world.exposures={ctx.world.cfg.exposures}); lower wording.min_k")
    questions = [q for p in people for q in ctx.world.questions(p)]
    if limit:  # whole questions, every wording of each: the comparison stays paired at any cut
        questions = random.Random(seed).sample(questions, min(limit, len(questions)))
    out = []
    for q in questions:
        asked = [("canonical", q.text)] + [("heldout", text) for text in heldout_texts(q)]
        out += [{"id": f"{q.id}|{i}", "messages": [{"role": "user", "content": text}], "gold": q.answer,
                 "tools_on": False, "extras": {"k": q.k, "aliases": q.aliases, "attribute": q.attribute, "item": q.id,
                                               "wording": wording, "condition": "closed_book"}}
                for i, (wording, text) in enumerate(asked)]
    return out


def wording_suite(settings: WordingSettings, seed: int = 0) -> Suite:
    """The hallucination suite's grading (held-out wording in fields of its own) on wording_samples."""
    return dataclasses.replace(SUITES["hallucination"], name="wording", version="1",
                               samples=partial(wording_samples, min_k=settings.min_k, limit=settings.limit, seed=seed),
                               metrics=with_heldout(("correct", "incorrect", "not_attempted")), group_by=("k",),
                               confidence=False, summarize=None, headline=())


def canonical_twin(cfg: SFTSettings) -> SFTSettings:
    """The sft settings with every question in the canonical wording, nothing else changed."""
    return dataclasses.replace(cfg, mixture=dataclasses.replace(cfg.mixture, question_wording="canonical"))


def _train_twin(context) -> None:
    run = context.run
    if context.sft is None:
        raise LabError("experiments/wording retrains sft-idk and this pipeline has no sft settings section")
    out = run.open_stage(CANONICAL_ARM)
    probe = run.require(SFT_IDK) / "probe.json"
    if probe.exists() and not (out / "probe.json").exists():  # sft-idk's known questions, not probed again
        shutil.copyfile(probe, out / "probe.json")
    sft(canonical_twin(context.sft), context.at(CANONICAL_ARM, BASE), variant=SFT_IDK)


def _rows(folder: Path) -> dict[str, dict]:
    lines = (folder / "wording" / "samples.jsonl").read_text().splitlines()
    return {r["id"]: r for r in map(json.loads, lines)}


def run_wording(settings: WordingSettings, context) -> dict:
    """Train the canonical-wording twin of sft-idk (unless complete), ask both, write the paired comparison."""
    run = context.run
    out = run.open_stage(WORDING)
    if not run.is_complete(CANONICAL_ARM):
        _train_twin(context)
    ctx = context_for(run.stage_dir(SFT_IDK))
    suite = wording_suite(settings, context.seed)
    rows = {}
    for arm, stage in ARMS.items():
        model, tokenizer = load_model_and_tokenizer(run.require(stage))
        run_suite(model, tokenizer, suite, ctx, out / "samples" / arm, seed=context.seed, batch_size=settings.batch_size,
                  model_name=f"{run.name}/{stage}", fingerprint=model_fingerprint(run.stage_dir(stage)))
        rows[arm] = _rows(out / "samples" / arm)
    results = compare_arms(rows, settings.min_k)
    results["sft_idk_question_wording"] = context.sft.mixture.question_wording if context.sft else None
    (out / "table.md").write_text(table(results))
    write_json(out / "results.json", results)
    run.mark_complete(WORDING, {"varied_minus_canonical": results["varied_minus_canonical"]["difference"]})
    return results


def compare_arms(rows: dict[str, dict[str, dict]], min_k: int) -> dict:
    """Each arm's accuracy by wording, and varied − canonical paired over the samples both answered: on the held-out
    wordings (the effect), and on the canonical one (both arms trained it)."""
    results: dict = {"min_k": min_k, "arms": {}}
    for arm, stage in ARMS.items():
        graded = rows[arm].values()
        results["arms"][arm] = {"stage": stage, **{
            wording: proportion(sum(r[field] for r in graded if field in r), sum(field in r for r in graded))
            for wording, field in (("canonical", "correct"), ("heldout", "correct" + SUFFIX))}}
    for name, field in (("varied_minus_canonical", "correct" + SUFFIX), ("varied_minus_canonical_on_canonical", "correct")):
        ids = sorted(i for i in rows["varied"] if i in rows["canonical"] and field in rows["varied"][i]
                     and field in rows["canonical"][i])
        if not ids:
            raise LabError("experiments/wording: no sample was answered by both models; raise wording.limit")
        results[name] = paired_difference([float(rows["canonical"][i][field]) for i in ids],
                                          [float(rows["varied"][i][field]) for i in ids])
    return results


def table(results: dict) -> str:
    """The arms' accuracy by wording and the paired differences, as Markdown."""
    def cell(m: dict) -> str:
        return f"{format_ci(m)} (n {m['n']})"

    trained = {"varied": "varied wordings", "canonical": "the canonical wording only"}
    lines = ["| sft-idk asked in SFT | stage | correct, canonical wording | correct, held-out wordings |",
             "|---|---|---|---|"]
    lines += [f"| {trained[arm]} | {r['stage']} | {cell(r['canonical'])} | {cell(r['heldout'])} |"
              for arm, r in results["arms"].items()]
    lines.append(f"| varied − canonical, paired | | {format_difference(results['varied_minus_canonical_on_canonical'])} | "
                 f"{format_difference(results['varied_minus_canonical'])} |")
    return "\n".join(lines) + "\n"
