"""The pretraining mix: world biographies by exposure, narratives, and registered extra sources.

Saved as a `datasets` DatasetDict ("train", "heldout") with a manifest of exactly what went in:
documents and characters per source, and for every person the exposure k realised in the corpus
(counted from the text itself and checked against the world). Held-out documents are fresh
narratives: held-out loss must not reward memorised biographies.

Users who bring their own text load it with `load_text_files`: a .txt file is ONE document (a web
page or a book chapter should not be cut at its blank lines), a .jsonl file has one document per
line in its "text" field, a .parquet file one per row of its "text" column.
"""

from __future__ import annotations

import importlib
import json
import random
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lab.errors import LabError
from tasks.world import World, WorldConfig, seeded_rng

# datasets and pyarrow are imported inside the functions that use them: the presets import this module (for
# DataSettings) and stay light.

# name -> fn(n, rng) -> n documents (strings, or {"text", "person"} dicts); math, spelling and reading
# sources register themselves here.
SOURCES: dict[str, Callable[[int, random.Random], list[str | dict]]] = {}
# Modules that register sources when imported: loaded on demand, so a config can name their sources
# without the caller importing them first.
SOURCE_MODULES = ("tasks.math", "tasks.spelling", "tasks.reading")
TEXT_SUFFIXES = (".txt", ".jsonl", ".parquet")


def register_source(name: str) -> Callable:
    """Decorator: make a document generator available as `CorpusConfig.extra_sources[name]`."""

    def wrap(fn: Callable[[int, random.Random], list[str]]) -> Callable[[int, random.Random], list[str]]:
        SOURCES[name] = fn
        return fn

    return wrap


@dataclass
class CorpusConfig:
    narratives: int = 300
    heldout_docs: int = 64  # narratives set aside for held-out loss
    seed: int = 0
    extra_sources: dict[str, int] = field(default_factory=dict)  # registered source name -> documents
    # registered source name -> documents generated once each for the "stream" split, which pretraining reads in
    # order, so none repeats (pretrain.stream_share); why, in docs/reading-notes.md
    stream_sources: dict[str, int] = field(default_factory=dict)


def _check(cfg: CorpusConfig) -> None:
    if cfg.narratives < 0:
        raise LabError(f"corpus.narratives must be >= 0, got {cfg.narratives}")
    if cfg.heldout_docs < 1:
        raise LabError(f"corpus.heldout_docs must be >= 1 (held-out loss needs documents), got {cfg.heldout_docs}")
    if (set(cfg.extra_sources) | set(cfg.stream_sources)) - set(SOURCES):
        for module in SOURCE_MODULES:
            try:
                importlib.import_module(module)
            except ImportError:  # a generator whose own dependency is missing simply offers no sources
                pass
    for field_name in ("extra_sources", "stream_sources"):
        for name, count in getattr(cfg, field_name).items():
            if name not in SOURCES:
                valid = ", ".join(sorted(SOURCES)) or "none registered"
                raise LabError(f"unknown corpus source '{name}' in corpus.{field_name}; valid: {valid}")
            if count < 0:
                raise LabError(f"corpus.{field_name}['{name}'] must be >= 0, got {count}")


def build_corpus(world: World, cfg: CorpusConfig) -> tuple[list[dict], list[dict], dict]:
    """(train_docs, heldout_docs, manifest); each doc is {"text", "source", "person"}."""
    _check(cfg)
    train = [{"text": world.biography(p, v), "source": "biography", "person": p.name}
             for p in world.people for v in range(p.k)]
    stories = world.narratives(cfg.narratives, seeded_rng("narratives", world.cfg.seed, cfg.seed))
    train += [{"text": t, "source": "narrative", "person": ""} for t in stories]
    for name in sorted(cfg.extra_sources):
        # One stream per source: adding a source never changes the documents of another.
        train += _source_documents(name, cfg.extra_sources[name], seeded_rng("source", name, cfg.seed))
    seeded_rng("shuffle", world.cfg.seed, cfg.seed).shuffle(train)

    seen_text = set(stories)
    heldout_rng = seeded_rng("heldout", world.cfg.seed, cfg.seed)
    heldout: list[dict] = []
    for _ in range(100 * cfg.heldout_docs):  # bounded: a tiny world may not have enough distinct stories
        if len(heldout) == cfg.heldout_docs:
            break
        text = world.narratives(1, heldout_rng)[0]
        if text not in seen_text:  # a held-out story also in train would measure memorisation
            seen_text.add(text)
            heldout.append({"text": text, "source": "narrative", "person": ""})

    exposure = _realised_exposure(world, train, heldout)
    return train, heldout, {
        "documents": _per_source(train, lambda d: 1),
        "characters": _per_source(train, lambda d: len(d["text"])),
        "total_documents": len(train),
        "total_characters": sum(len(d["text"]) for d in train),
        "heldout_documents": len(heldout),
        "heldout_characters": sum(len(d["text"]) for d in heldout),
        "exposure": exposure,
        "world": asdict(world.cfg),
        "corpus": asdict(cfg),
    }


def _source_documents(name: str, n: int, rng: random.Random) -> list[dict]:
    docs = SOURCES[name](n, rng)
    # A document is its text, or {"text", "person"} when it is about one made-up person (tasks/reading.py).
    docs = [{"text": d, "person": ""} if isinstance(d, str) else d for d in docs]
    if not all(isinstance(d, dict) and isinstance(d.get("text"), str) and isinstance(d.get("person"), str)
               for d in docs):
        raise LabError(f"corpus source '{name}' must return a list of strings or of {{'text', 'person'}} dicts")
    return [{"text": d["text"], "source": name, "person": d["person"]} for d in docs]


def build_stream(world: World, cfg: CorpusConfig) -> tuple[list[dict], dict]:
    """(stream_docs, manifest part): `cfg.stream_sources`' documents, each generated once, interleaved by a seeded
    shuffle. Pretraining reads them in order (lab/train/pretrain.py), so a fresh person or a drill in the stream is
    presented once per pass, not once per epoch of the corpus: it can only be read, never memorised. No stream
    document may name a world person (that would change the exposure the world assigns)."""
    _check(cfg)
    stream: list[dict] = []
    for name in sorted(cfg.stream_sources):
        # Seeded apart from the corpus's own copy of a source: the stream never repeats a corpus document.
        stream += _source_documents(name, cfg.stream_sources[name], seeded_rng("stream", name, cfg.seed))
    seeded_rng("stream-order", world.cfg.seed, cfg.seed).shuffle(stream)
    for doc in stream:
        if named := world.names_in(doc["text"]):
            raise LabError(f"a '{doc['source']}' stream document names the world's {sorted(named)[0]}; "
                           "stream documents may name made-up people only")
    return stream, {"documents": _per_source(stream, lambda d: 1),
                    "characters": _per_source(stream, lambda d: len(d["text"])),
                    "total_documents": len(stream), "total_characters": sum(len(d["text"]) for d in stream)}


def _realised_exposure(world: World, train: list[dict], heldout: list[dict]) -> dict[str, int]:
    """Biographies naming each person, counted from the text; unseen people must be named nowhere."""
    exposure = {p.name: 0 for p in world.people}
    unseen = {p.name for p in world.unseen_people()}
    for doc in train + heldout:
        names = world.names_in(doc["text"])
        if names and doc["source"] not in ("biography", "narrative"):
            raise LabError(f"a '{doc['source']}' document names the world's {sorted(names)[0]}; only biographies "
                           "and narratives may name world people (any other mention would change what they expose)")
        if names & unseen:
            raise LabError(f"a '{doc['source']}' document names the unseen person {sorted(names & unseen)[0]}; "
                           "people with k = 0 must not appear anywhere in the corpus")
        if doc["source"] == "biography":
            for name in names:
                exposure[name] += 1
    wrong = [p.name for p in world.people if exposure[p.name] != p.k]
    if wrong:  # a bug here would silently corrupt the knowledge-vs-exposure curve
        raise RuntimeError(f"realised exposure differs from assigned k for {len(wrong)} people, e.g. {wrong[0]}")
    return exposure


def _per_source(docs: list[dict], weight: Callable[[dict], int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for d in docs:
        counts[d["source"]] = counts.get(d["source"], 0) + weight(d)
    return counts


def save_corpus(directory: Path, train_docs: list[dict], heldout_docs: list[dict], manifest: dict,
                stream_docs: list[dict] | None = None) -> None:
    """`directory/corpus` (a DatasetDict with "train", "heldout" and, when given, "stream") and
    `directory/manifest.json`."""
    from datasets import Dataset, DatasetDict, Features, Value

    if not train_docs:
        raise LabError("the corpus is empty: no training documents")
    if not heldout_docs:  # `datasets` cannot save an empty split, and held-out loss needs one document
        raise LabError("the corpus has no held-out documents")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # Explicit string features: the schema never depends on what the first documents happen to hold.
    features = Features({"text": Value("string"), "source": Value("string"), "person": Value("string")})

    def table(docs: list[dict]) -> Dataset:
        return Dataset.from_dict({k: [str(d.get(k, "")) for d in docs] for k in features}, features=features)

    splits = {"train": table(train_docs), "heldout": table(heldout_docs)}
    if stream_docs:
        splits["stream"] = table(stream_docs)
    DatasetDict(splits).save_to_disk(str(directory / "corpus"))
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def load_corpus(directory: Path):
    """The DatasetDict written by `save_corpus`."""
    from datasets import load_from_disk

    path = Path(directory) / "corpus"
    if not path.is_dir():
        raise LabError(f"{directory} holds no corpus (missing {path}); run the data stage first")
    return load_from_disk(str(path))


def read_text_files(paths: Iterable[Path]) -> tuple[list[dict], list[str]]:
    """(documents, bad JSONL lines as "file:line"); folders are searched recursively for .txt/.jsonl/.parquet."""
    files: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise LabError(f"corpus path {path} does not exist")
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)
        elif path.suffix not in TEXT_SUFFIXES:
            raise LabError(f"{path} is not a .txt, .jsonl or .parquet file")
        else:
            files.append(path)
    docs: list[dict] = []
    bad: list[str] = []
    for path in map(Path, paths):  # a `datasets` folder saved by `lab data` (or save_to_disk) is one source
        if path.is_dir() and (path / "dataset_info.json").exists():
            from datasets import load_from_disk

            dataset = load_from_disk(str(path))
            if "text" not in dataset.column_names:
                raise LabError(f"dataset {path} has no 'text' column")
            docs += [{"text": t, "source": path.name, "person": ""} for t in dataset["text"] if t and t.strip()]
            files = [f for f in files if path not in f.parents]
    for f in files:
        if f.suffix == ".parquet":
            docs += [{"text": t, "source": f.name, "person": ""} for t in _parquet_texts(f)]
            continue
        try:
            content = f.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise LabError(f"{f} is not UTF-8 text") from None
        if f.suffix == ".txt":
            if content.strip():
                docs.append({"text": content, "source": f.name, "person": ""})
            continue
        for i, line in enumerate(content.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            text = record.get("text") if isinstance(record, dict) else None
            if not isinstance(text, str):
                bad.append(f"{f}:{i}")
            elif text.strip():
                docs.append({"text": text, "source": f.name, "person": ""})
    return docs, bad


def _parquet_texts(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise LabError(f"{path} is not a readable parquet file ({type(e).__name__})") from None
    if "text" not in table.column_names:
        raise LabError(f"{path} has no 'text' column (columns: {', '.join(table.column_names)})")
    return [t for t in table.column("text").to_pylist() if isinstance(t, str) and t.strip()]


def load_text_files(paths: Iterable[Path]) -> list[dict]:
    """Documents from the user's own files; bad JSONL lines are skipped and reported, never fatal."""
    paths = list(paths)
    docs, bad = read_text_files(paths)
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        print(f"warning: skipped {len(bad)} JSONL lines without a string 'text' field or with invalid JSON: "
              f"{', '.join(bad[:5])}{more}", file=sys.stderr)
    if not docs:
        raise LabError("the corpus is empty: no text found in " + ", ".join(map(str, paths)))
    return docs


@dataclass
class DataSettings:
    """What the data stage pretrains on (lab/pipeline.py's stage_data builds it from these)."""

    # "world": the generated world corpus; "files": the user's own text (corpus_paths), e.g. `lab data` output.
    source: str = "world"
    corpus_paths: tuple[str, ...] = ()
    world: WorldConfig = field(default_factory=WorldConfig)
    # the world text plus registered sources (documents each): math and spelling walkthroughs, and documents in
    # which reading the context pays (tasks/reading.py), some of them in the never-repeating stream; why, in
    # docs/settings-notes.md
    corpus: CorpusConfig = field(default_factory=lambda: CorpusConfig(
        extra_sources={"math": 300, "spelling": 300, "fresh_people": 2000, "copy_drills": 1000},
        stream_sources={"fresh_people": 38000, "copy_drills": 20000, "tool_transcripts": 10000}))


def data_stage(settings: DataSettings, context) -> None:
    """The `data` stage: the generated world's corpus, or the user's own files (data.source=files), split into
    train and held-out documents in the run's data folder."""
    stream: list[dict] = []
    if settings.source == "world":
        train, heldout, manifest = build_corpus(context.world, settings.corpus)
        stream, manifest["stream"] = build_stream(context.world, settings.corpus)
    elif settings.source == "files":
        if not settings.corpus_paths:
            raise LabError("data.source=files needs data.corpus_paths (files or folders of .txt/.jsonl/.parquet, "
                           "or a `lab data` output folder)")
        user_docs = load_text_files([Path(p) for p in settings.corpus_paths])
        split = max(1, len(user_docs) // 50)  # 2% of the user's documents for held-out loss
        train, heldout = user_docs[split:], user_docs[:split]
        manifest = {"source": "files", "paths": list(settings.corpus_paths), "documents": len(user_docs)}
    else:
        raise LabError(f"unknown data.source '{settings.source}'; valid: world, files")
    save_corpus(context.run.stage_dir(context.stage), train, heldout, manifest, stream)
    context.run.mark_complete(context.stage, {"train_docs": len(train), "heldout_docs": len(heldout),
                                              "stream_docs": len(stream)})
