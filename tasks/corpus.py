"""The pretraining mix: world biographies by exposure, narratives, and registered extra sources.

Saved as a `datasets` DatasetDict with a manifest of exactly what went in: documents and characters
per source, and for every person the exposure k realised in the corpus (checked against the world).
Users who bring their own text load it with `load_text_files`.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from lab.errors import LabError
from tasks.world import World

# name -> fn(n, rng) -> list of documents; math and spelling walkthroughs register here.
SOURCES: dict[str, Callable[[int, random.Random], list[str]]] = {}


def register_source(name: str):
    def wrap(fn):
        SOURCES[name] = fn
        return fn

    return wrap


@dataclass
class CorpusConfig:
    narratives: int = 300
    heldout_docs: int = 64
    seed: int = 0
    extra_sources: dict[str, int] = field(default_factory=dict)


def build_corpus(world: World, cfg: CorpusConfig) -> tuple[list[dict], list[dict], dict]:
    rng = random.Random(cfg.seed)
    train = [{"text": world.biography(p, v), "source": "biography", "person": p.name}
             for p in world.people for v in range(p.k)]
    train += [{"text": t, "source": "narrative", "person": ""} for t in world.narratives(cfg.narratives, rng)]
    for name, count in cfg.extra_sources.items():
        if name not in SOURCES:
            raise LabError(f"unknown corpus source '{name}'; valid: {', '.join(sorted(SOURCES)) or 'none registered'}")
        train += [{"text": t, "source": name, "person": ""} for t in SOURCES[name](count, random.Random(cfg.seed + 1))]
    rng.shuffle(train)
    # Held-out documents are fresh narratives: held-out loss must not reward memorised biographies.
    heldout = [{"text": t, "source": "narrative", "person": ""}
               for t in world.narratives(cfg.heldout_docs, random.Random(cfg.seed + 10_000))]
    exposure = {p.name: 0 for p in world.people}
    for doc in train:
        if doc["source"] == "biography":
            exposure[doc["person"]] += 1
    manifest = {
        "documents": _count(train, lambda d: 1),
        "characters": _count(train, lambda d: len(d["text"])),
        "heldout_documents": len(heldout),
        "exposure": exposure,
        "world": asdict(world.cfg),
        "corpus": asdict(cfg),
    }
    return train, heldout, manifest


def _count(docs: list[dict], weight) -> dict[str, int]:
    counts: dict[str, int] = {}
    for d in docs:
        counts[d["source"]] = counts.get(d["source"], 0) + weight(d)
    return counts


def save_corpus(directory: Path, train: list[dict], heldout: list[dict], manifest: dict) -> None:
    from datasets import Dataset, DatasetDict

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if not train:
        raise LabError("the corpus is empty: no training documents")
    columns = lambda docs: {k: [d.get(k, "") for d in docs] for k in ("text", "source", "person")}  # noqa: E731
    DatasetDict({"train": Dataset.from_dict(columns(train)), "heldout": Dataset.from_dict(columns(heldout))}
                ).save_to_disk(str(directory / "corpus"))
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def load_corpus(directory: Path):
    from datasets import load_from_disk

    path = Path(directory) / "corpus"
    if not path.exists():
        raise LabError(f"{directory} holds no corpus (missing {path})")
    return load_from_disk(str(path))


def load_text_files(paths: list[Path]) -> list[dict]:
    """Documents from .txt (a whole file is one document), .jsonl (field "text") and .parquet (column "text").

    Folders are searched recursively. Bad JSONL lines are skipped and reported with file:line."""
    files: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise LabError(f"corpus path {path} does not exist")
        files += sorted(p for p in path.rglob("*") if p.suffix in (".txt", ".jsonl", ".parquet")) if path.is_dir() else [path]
    docs, bad = [], []
    for f in files:
        if f.suffix == ".parquet":
            import pandas as pd

            frame = pd.read_parquet(f)
            if "text" not in frame:
                raise LabError(f"{f} has no 'text' column")
            docs += [{"text": t, "source": f.name, "person": ""} for t in frame["text"] if isinstance(t, str) and t.strip()]
            continue
        try:
            content = f.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise LabError(f"{f} is not UTF-8 text") from None
        if f.suffix == ".jsonl":
            for i, line in enumerate(content.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    text = json.loads(line).get("text")
                except (json.JSONDecodeError, AttributeError):
                    text = None
                if isinstance(text, str) and text.strip():
                    docs.append({"text": text, "source": f.name, "person": ""})
                else:
                    bad.append(f"{f}:{i}")
        elif content.strip():
            docs.append({"text": content, "source": f.name, "person": ""})
    if bad:
        print(f"skipped {len(bad)} bad JSONL lines (no 'text' field or invalid JSON), first: {', '.join(bad[:5])}")
    if not docs:
        raise LabError("the corpus is empty: no text found in " + ", ".join(map(str, paths)))
    return docs
