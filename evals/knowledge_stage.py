"""The `experiments/knowledge` stage: what the base model knows (knowledge vs exposure, evals/knowledge.py) and
whether it reads its context (the reading probes, evals/reading.py), written to the stage folder.

Run: `lab pipeline` (it follows `base`); the report's knowledge and reading sections read its files.
"""

from __future__ import annotations

from evals.corpus_stats import USED_MIN_COUNT, corpus_epochs, corpus_used_ids
from evals.eval_settings import ReadingSettings
from evals.knowledge import run_probe
from evals.reading import (
    copy_accuracy,
    induction_by_length,
    induction_heads,
    induction_score,
    layout_copy,
    open_book,
    open_book_two,
)
from lab.model.loading import load_model_and_tokenizer
from lab.runs import write_json
from lab.stage_names import BASE, DATA
from tasks.corpus import load_corpus


def _pooled(rows: list[dict]) -> float | None:
    """The share of every row's items that succeeded (rows of proportions)."""
    n = sum(r["accuracy"]["n"] for r in rows)
    return sum(r["accuracy"]["value"] * r["accuracy"]["n"] for r in rows) / n if n else None


def knowledge_stage(settings: ReadingSettings, context) -> None:
    """The knowledge stage: what the base model knows (knowledge vs exposure) and whether it reads its context
    (reading.json: the induction score on the uniform draw and on ids the corpus uses, by length, per head,
    copy accuracy by kind and length and in the frozen layouts, and open-book completion about people it never
    saw, by phrasing and with two people; evals/reading.py). A user corpus gets only the probes that need no
    world. The summary also records the epochs pretraining made over the corpus (presentations = k x epochs)."""
    run, out = context.run, context.run.stage_dir(context.stage)
    model, tokenizer = load_model_and_tokenizer(run.require(context.source))
    allowed = corpus_used_ids(run.stage_dir(BASE) / "data")
    reading = {"induction": induction_score(model, settings), "induction_heads": induction_heads(model, settings),
               "copy": copy_accuracy(model, tokenizer, settings), "copy_layouts": layout_copy(model, tokenizer, settings)}
    if allowed is not None:  # the draw from ids the corpus uses (a base stage that kept its token files)
        reading["induction_used"] = induction_by_length(model, settings, allowed)
        reading["induction_used_min_count"] = USED_MIN_COUNT
        reading["induction_heads_used"] = induction_heads(model, settings, allowed_ids=allowed)
    used_32 = next((r["score"] for r in reading.get("induction_used", []) if r["length"] == 32), None)
    summary = {"induction_score": reading["induction"]["score"], "induction_used_32": used_32,
               "copy_digits_8": next((r["accuracy"]["value"] for r in reading["copy"]
                                      if (r["kind"], r["length"]) == ("digits", 8)), None),
               "copy_layouts": _pooled(reading["copy_layouts"]), "corpus_epochs": corpus_epochs(run)}
    if context.data.source == "world":
        rows = run_probe(model, tokenizer, context.world, out)
        acc = {r["k"]: r["accuracy"]["value"] for r in rows if r["phrasing"] == "corpus"}
        top = max(acc)
        corpus = load_corpus(run.require(DATA))["train"]
        fresh = frozenset(p for p, source in zip(corpus["person"], corpus["source"]) if source == "fresh_people")
        reading["open_book"] = open_book(model, tokenizer, settings, exclude=fresh)
        reading["open_book_two"] = open_book_two(model, tokenizer, settings, exclude=fresh)
        summary.update({"accuracy_k0": acc.get(0), f"accuracy_k{top}": acc[top],
                        **{f"open_book_{p}": v["accuracy"]["value"] for p, v in reading["open_book"].items()},
                        "open_book_two": reading["open_book_two"]["accuracy"]["value"],
                        "open_book_two_other": reading["open_book_two"]["other"]["value"]})
    else:
        reading["skipped"] = ("Knowledge vs exposure and open-book completion are skipped: they ask about the "
                              "generated world's people, and this run pretrained on the user's own corpus "
                              "(data.source=files).")
    write_json(out / "reading.json", reading)
    run.mark_complete(context.stage, summary)
