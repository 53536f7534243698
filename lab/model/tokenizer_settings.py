"""The tokenizer stage's settings: the byte-level BPE's vocabulary size and the least frequency a merge needs.

Torch- and transformers-free, beside lab/model/tokenizer.py (which imports transformers at load), so the
presets and `lab --help` load fast.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TokenizerSettings:
    vocab_size: int = 2048
    min_frequency: int = 2
