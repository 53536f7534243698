"""The experiments/wording stage's settings (`wording.*`, lab/experiments/wording.py). Torch-free, beside that module
(which trains, so loads torch), so the presets and `lab --help` load without torch."""

from __future__ import annotations

from dataclasses import dataclass

from evals.wording import WELL_KNOWN_K
from lab.errors import LabError


@dataclass
class WordingSettings:
    """sft-idk against its canonical-wording twin on questions in held-out wordings (the twin trains with `sft.*`)."""
    min_k: int = WELL_KNOWN_K  # held-out people seen at least this often in pretraining are asked
    limit: int = 0  # questions asked of each model, each in every wording, drawn with the run's seed (0 = all)
    batch_size: int = 64  # prompts generated at once

    def __post_init__(self):
        for name, least in (("min_k", 0), ("limit", 0), ("batch_size", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < least:
                raise LabError(f"wording.{name} must be a whole number >= {least}, got {value!r}")
