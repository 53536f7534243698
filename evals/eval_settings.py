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
    """The reading probes (evals/reading.py): the knowledge stage runs them in full, pretraining's snapshot cut."""
    induction_length: int = 32  # tokens in the repeated random sequence of the uniform draw (every non-special id)
    induction_lengths: tuple[int, ...] = (16, 32, 64)  # tokens, the draw from ids the corpus uses (given their ids)
    induction_rows: int = 32  # random sequences per draw and length
    copy_lengths: tuple[int, ...] = (3, 5, 8, 12)  # characters, the original probe ("X\nX\n")
    copy_kinds: tuple[str, ...] = ("digits", "names")  # the original probe's kinds
    copy_per_cell: int = 40  # strings per kind and length, the original probe
    layout_kinds: tuple[str, ...] = ("digits", "names", "codes")  # kinds of the frozen-layout copy probe
    layout_per_cell: int = 100  # strings per kind and layout, the frozen-layout copy probe
    open_book_people: int = 30  # x 5 attributes = items per phrasing
    two_people_pairs: int = 30  # x 5 attributes = two-people open-book items
    seed: int = 0  # every probe's draw
