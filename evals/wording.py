"""Held-out question wording: world questions asked in words no training source uses.

SFT practises each attribute in the wordings of tasks/world.py's TRAINING_QUESTION_TEMPLATES (or the canonical one
alone); HELDOUT_QUESTION_TEMPLATES are in no pretraining document and no SFT conversation. The hallucination and
context suites (evals/suites.py) ask questions in a held-out wording beside the canonical one, and the
experiments/wording stage asks every held-out wording of every question about the well-known held-out people.

A held-out-wording sample is graded like its canonical twin, its binary fields renamed with SUFFIX
(`correct_heldout_wording`), so each canonical metric keeps its name and its meaning; `wording_gap` pairs the
two wordings of the same item.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from evals.stats import paired_difference
from tasks.world import HELDOUT_QUESTION_TEMPLATES, Question

SUFFIX = "_heldout_wording"
# Held-out people seen at least this often in pretraining: the tiny base model recalls most of their facts
# (experiments/knowledge), so a wrong answer there is a failure to extract, not to know.
WELL_KNOWN_K = 8


def _pick(key: str, n: int) -> int:
    # A hash, not Python's hash() or an rng: the same item gets the same choice on every machine and run.
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % n


def heldout_texts(question: Question) -> list[str]:
    """The question in each held-out wording of its attribute."""
    return [t.format(n=question.person) for t in HELDOUT_QUESTION_TEMPLATES[question.attribute]]


def heldout_text(question: Question) -> str:
    """The question in one held-out wording, chosen by its id."""
    texts = heldout_texts(question)
    return texts[_pick(question.id, len(texts))]


def picked_attribute(person: str, attributes: tuple[str, ...]) -> str:
    """One attribute per person, chosen by name: the context suite's held-out-wording subsample."""
    return attributes[_pick(person, len(attributes))]


def worded(grades: dict, wording: str) -> dict:
    """A grader's fields for a sample asked in `wording`: held-out ones renamed (field + SUFFIX), "grade" kept."""
    if wording == "canonical":
        return grades
    return {k if k == "grade" else k + SUFFIX: v for k, v in grades.items()}


def with_heldout(metrics: tuple[str, ...]) -> tuple[str, ...]:
    """The metrics, then each again for held-out wording."""
    return metrics + tuple(m + SUFFIX for m in metrics)


def is_canonical(row: dict) -> bool:
    return row["extras"].get("wording", "canonical") == "canonical"


def wording_gap(rows: list[dict], field: str = "correct", where: Callable[[dict], bool] = lambda row: True) -> dict | None:
    """Mean of `field` asked in held-out wording minus asked canonically, paired by item (extras["item"]: the same
    question, and condition where the suite has several), over the items asked both ways; None when there are none."""
    canonical = {r["extras"]["item"]: float(r[field]) for r in rows if where(r) and field in r}
    heldout = {r["extras"]["item"]: float(r[field + SUFFIX]) for r in rows if where(r) and field + SUFFIX in r}
    items = sorted(i for i in heldout if i in canonical)
    if not items:
        return None
    d = paired_difference([canonical[i] for i in items], [heldout[i] for i in items])
    return {"value": d["difference"], "stderr": d["stderr"], "ci95": d["ci95"], "n": d["n"]}
