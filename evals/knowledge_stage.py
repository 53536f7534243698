"""The `experiments/knowledge` stage: what the base model knows (knowledge vs exposure, evals/knowledge.py) and
whether it reads its context (the reading probes, evals/reading.py), written to the stage folder.

Run: `lab pipeline` (it follows `base`); the report's knowledge and reading sections read its files.
"""

from __future__ import annotations

from evals.eval_settings import ReadingSettings
from evals.knowledge import run_probe
from evals.reading import copy_accuracy, induction_heads, induction_score, open_book
from lab.model.loading import load_model_and_tokenizer
from lab.runs import write_json
from lab.stage_names import DATA
from tasks.corpus import load_corpus


def knowledge_stage(settings: ReadingSettings, context) -> None:
    """The knowledge stage: what the base model knows (knowledge vs exposure) and whether it reads its context
    (reading.json: the induction score, per head, copy accuracy by kind and length, and open-book completion
    about people it never saw; evals/reading.py). A user corpus gets only the probes that need no world."""
    run, out = context.run, context.run.stage_dir(context.stage)
    model, tokenizer = load_model_and_tokenizer(run.require(context.source))
    reading = {"induction": induction_score(model, settings), "induction_heads": induction_heads(model, settings),
               "copy": copy_accuracy(model, tokenizer, settings)}
    summary = {"induction_score": reading["induction"]["score"],
               "copy_digits_8": next((r["accuracy"]["value"] for r in reading["copy"]
                                      if (r["kind"], r["length"]) == ("digits", 8)), None)}
    if context.data.source == "world":
        rows = run_probe(model, tokenizer, context.world, out)
        acc = {r["k"]: r["accuracy"]["value"] for r in rows if r["phrasing"] == "corpus"}
        top = max(acc)
        corpus = load_corpus(run.require(DATA))["train"]
        fresh = frozenset(p for p, source in zip(corpus["person"], corpus["source"]) if source == "fresh_people")
        reading["open_book"] = open_book(model, tokenizer, settings, exclude=fresh)
        summary.update({"accuracy_k0": acc.get(0), f"accuracy_k{top}": acc[top],
                        **{f"open_book_{p}": v["accuracy"]["value"] for p, v in reading["open_book"].items()}})
    else:
        reading["skipped"] = ("Knowledge vs exposure and open-book completion are skipped: they ask about the "
                              "generated world's people, and this run pretrained on the user's own corpus "
                              "(data.source=files).")
    write_json(out / "reading.json", reading)
    run.mark_complete(context.stage, summary)
