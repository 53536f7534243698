"""Settings of the stages that evaluate: the `evals` stage (`evals.*`, evals/harness.py) and the knowledge
stage's reading probes (`reading.*`, evals/reading.py). Torch-free, beside those modules (which load the
engine, so torch), so the presets and `lab --help` load without torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EvalSettings:
    """The pipeline's `evals` stage: every suite in full unless cut (a quick check, e.g. the gpu preset's CPU test)."""
    limit: int = 0  # samples per suite, drawn with the run's seed (0 = every sample)
    max_new_tokens: int = 0  # a cap on every suite's answer length (0 = each suite's own)


@dataclass
class ReadingSettings:
    induction_length: int = 32  # tokens in the random sequence that is repeated
    induction_rows: int = 16
    copy_lengths: tuple[int, ...] = (3, 5, 8, 12)  # characters
    copy_kinds: tuple[str, ...] = ("digits", "names")
    copy_per_cell: int = 40
    open_book_people: int = 30  # x 5 attributes = items per phrasing
    seed: int = 0
