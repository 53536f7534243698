"""What pretraining actually saw, read from a run's token files: how often each token id occurs (the reading
probes draw their random sequences from the ids the corpus uses) and how many epochs pretraining made over the
corpus (so an exposure of k biographies is about k x epochs presentations).

Use: `corpus_used_ids(RUN/base/data)` once per run (None: no draw to make), passed to evals/reading.py's probes
as `allowed_ids`; `corpus_epochs(run)` where the knowledge stage and the report state exposure. Torch-free
(numpy only).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lab.errors import LabError
from lab.runs import Run, read_json
from lab.stage_names import BASE

# An id "the corpus uses" occurs at least this often in the training tokens (frozen with the probe design: the
# tiny run's 446k tokens have 632 such ids, of 2,041 non-special ones; 520 never occur).
USED_MIN_COUNT = 100
# The lab's tokenizers put their special tokens (pad, bos, eos, chat tokens) below this id.
FIRST_ID = 7
HELDOUT_FILE = "heldout.bin"
CHUNK = 1 << 24  # tokens counted at once (128 MiB as int64)


def _meta(data_dir: Path) -> dict:
    path = Path(data_dir) / "meta.json"
    if not path.exists():
        raise LabError(f"{data_dir} holds no tokenized corpus (missing {path}); run the base stage first")
    return json.loads(path.read_text())


def token_counts(data_dir: Path) -> np.ndarray:
    """Occurrences of each id over every training token file in `data_dir` (each `*.bin` but heldout.bin), read
    with meta.json's dtype; index i counts id i."""
    data_dir = Path(data_dir)
    dtype = np.dtype(_meta(data_dir).get("dtype", "uint16"))
    files = sorted(p for p in data_dir.glob("*.bin") if p.name != HELDOUT_FILE)
    if not files:
        raise LabError(f"{data_dir} holds no training token files (*.bin other than {HELDOUT_FILE})")
    counts = np.zeros(0, dtype=np.int64)
    for path in files:
        tokens = np.memmap(path, dtype=dtype, mode="r") if path.stat().st_size else np.zeros(0, dtype)
        for start in range(0, len(tokens), CHUNK):  # bincount copies its input as int64: a chunk at a time
            found = np.bincount(tokens[start : start + CHUNK], minlength=len(counts))
            counts = np.pad(counts, (0, len(found) - len(counts))) + found
    return counts


def _frequent(counts: np.ndarray, min_count: int, first_id: int) -> list[int]:
    return [int(i) for i in np.flatnonzero(counts >= min_count) if i >= first_id]


def used_token_ids(data_dir: Path, min_count: int = USED_MIN_COUNT, first_id: int = FIRST_ID) -> list[int]:
    """The non-special ids that occur at least `min_count` times in the run's training tokens, ascending: what
    the reading probes' corpus-used draw samples from (evals/reading.py, `allowed_ids`)."""
    ids = _frequent(token_counts(data_dir), min_count, first_id)
    if len(ids) < 2:
        raise LabError(f"the training tokens in {data_dir} hold {len(ids)} ids used {min_count}+ times; a random "
                       "sequence needs at least 2")
    return ids


def corpus_used_ids(data_dir: Path, min_count: int = USED_MIN_COUNT) -> list[int] | None:
    """used_token_ids, or None where there is no draw to make: the folder holds no tokenized corpus, or a toy
    corpus uses fewer than 2 ids that often. What pretraining and the knowledge stage call: uniform only, then."""
    if not (Path(data_dir) / "meta.json").exists():
        return None
    ids = _frequent(token_counts(data_dir), min_count, FIRST_ID)
    return ids if len(ids) >= 2 else None


def corpus_epochs(run: Run) -> float | None:
    """Epochs pretraining made over the corpus: RUN/base/summary.json's `epochs.corpus` where pretraining wrote
    it, else tokens_trained / meta.json's training tokens. None while the base stage has not run."""
    base = run.stage_dir(BASE)
    summary = read_json(base / "summary.json") if (base / "summary.json").exists() else {}
    epochs = summary.get("epochs")
    if isinstance(epochs, dict) and isinstance(epochs.get("corpus"), (int, float)):
        return float(epochs["corpus"])
    meta_path = base / "data" / "meta.json"
    if "tokens_trained" not in summary or not meta_path.exists():
        return None
    train = json.loads(meta_path.read_text()).get("tokens", {}).get("train")
    return summary["tokens_trained"] / train if train else None
