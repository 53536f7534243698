"""The pipeline's `evals` stage settings (`evals.*`). Torch-free, beside evals/harness.py (which loads the
engine, so torch), so the presets and `lab --help` load without torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EvalSettings:
    """The pipeline's `evals` stage: every suite in full unless cut (a quick check, e.g. the gpu preset's CPU test)."""
    limit: int = 0  # samples per suite, drawn with the run's seed (0 = every sample)
    max_new_tokens: int = 0  # a cap on every suite's answer length (0 = each suite's own)
