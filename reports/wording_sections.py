"""The report's section on question wording: experiments/wording's comparison, and per exposure k how sft and sft-idk
answer held-out people asked canonically and in a held-out wording (the hallucination suite's samples)."""

from __future__ import annotations

from evals.stats import format_ci
from evals.wording import SUFFIX, WELL_KNOWN_K, wording_gap
from lab.runs import Run
from lab.stage_names import SFT, SFT_IDK, WORDING
from reports.common import jsonl, suite_results

STAGES = (SFT, SFT_IDK)


def _gap(d: dict | None) -> str:
    if d is None:
        return "–"
    low, high = d["ci95"]
    return f"{d['value']:+.3f} [{low:+.3f}, {high:+.3f}]"


def _cell(metrics: dict, name: str) -> str:
    m = metrics.get(name)
    return format_ci(m) if m and m["n"] else "–"


def wording_by_k(run: Run) -> list[list]:
    """stage | k | correct asked canonically | in a held-out wording | held-out − canonical, paired | n, and a row for
    every k >= WELL_KNOWN_K together."""
    rows = []
    for stage in STAGES:
        results = suite_results(run, stage, "hallucination")
        samples = jsonl(run.stage_dir(stage) / "evals" / "hallucination" / "samples.jsonl")
        if results is None or not any("correct" + SUFFIX in r for r in samples):
            continue
        for k, m in sorted(results["by_group"].get("k", {}).items(), key=lambda kv: int(kv[0])):
            gap = wording_gap(samples, where=lambda r, k=int(k): r["extras"]["k"] == k)
            rows.append([stage, k, _cell(m, "correct"), _cell(m, "correct" + SUFFIX), _gap(gap), gap["n"] if gap else 0])
        known = wording_gap(samples, where=lambda r: r["extras"]["k"] >= WELL_KNOWN_K)
        rows.append([stage, f">= {WELL_KNOWN_K}", "", "", _gap(known), known["n"] if known else 0])
    return rows


def wording_sections(run: Run, stage: str = WORDING) -> list[tuple[str, list]]:
    """The stage's table (when it ran) and the per-k wording table (when the evals asked held-out wordings)."""
    items = []
    table = run.stage_dir(stage) / "table.md"
    if run.is_complete(stage) and table.exists():
        items += [("text", "sft-idk asks its SFT questions about people in varied wordings (tasks/world.py's "
                           "TRAINING_QUESTION_TEMPLATES); its twin, trained the same way with every question in the "
                           "one canonical wording, is the control. Both answer the held-out people with k >= "
                           f"{WELL_KNOWN_K} closed book, canonically and in held-out wordings no training source uses "
                           "(HELDOUT_QUESTION_TEMPLATES)."),
                  ("markdown", table.read_text())]
    rows = wording_by_k(run)
    if rows:
        items += [("text", "The hallucination suite's held-out people by exposure k, each question asked canonically "
                           "and in one held-out wording: held-out − canonical is paired by question."),
                  ("table", (["stage", "k", "correct, canonical", "correct, held-out wording",
                              "held-out − canonical, paired", "n"], rows))]
    return [(f"Question wording: knowledge extraction ({run.name})", items)] if items else []
