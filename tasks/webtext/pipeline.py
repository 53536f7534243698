"""`run_pipeline`: turn a folder of user-supplied HTML, WARC and JSONL into a clean, deduplicated
`datasets` Dataset, with a report of what every stage kept and why it dropped the rest.

Stages, in order: read -> url filter -> extract -> language id -> quality -> PII scrub -> dedup.
Documents stream through all stages one at a time, so only the extracted text of kept documents is
held, never the raw HTML of the folder. Files are read in sorted order, so the same folder always
gives the same dataset.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from datasets import Dataset, Features, Value

from lab.errors import LabError
from tasks.webtext.dedup import Deduplicator
from tasks.webtext.extract import extract_text
from tasks.webtext.langid import known_languages, language_reason
from tasks.webtext.pii import KINDS, scrub
from tasks.webtext.quality import QualityConfig, quality_reason
from tasks.webtext.report import BadDocs, Stage, write_reports
from tasks.webtext.sources import BadDoc, find_inputs, iter_documents, kind_of, load_manifest
from tasks.webtext.urls import block_reason, normalise_domains


@dataclass
class PipelineConfig:
    blocked_domains: list[str] = field(default_factory=list)  # each also blocks its subdomains
    builtin_blocklist: bool = True  # adult/spam words in the host name
    languages: list[str] = field(default_factory=lambda: ["en"])
    min_lang_confidence: float = 0.65
    quality: QualityConfig = field(default_factory=QualityConfig)
    scrub_pii: bool = True
    near_dup_threshold: float = 0.8  # estimated Jaccard of word 5-gram sets
    num_perm: int = 128
    shingle_size: int = 5

    def __post_init__(self):
        if isinstance(self.quality, dict):  # from a JSON/YAML config
            try:
                self.quality = QualityConfig(**self.quality)
            except TypeError as e:
                raise LabError(f"bad quality config: {e}") from None
        if isinstance(self.languages, str) or isinstance(self.blocked_domains, str):
            raise LabError("languages and blocked_domains are lists, e.g. ['en'], not a single string")
        if not self.languages:
            raise LabError("languages is empty: name at least one language to keep, e.g. ['en']")
        if not 0 <= self.min_lang_confidence <= 1:
            raise LabError(f"min_lang_confidence must be in [0, 1], got {self.min_lang_confidence}")
        if not 0 < self.near_dup_threshold <= 1:
            raise LabError(f"near_dup_threshold must be in (0, 1], got {self.near_dup_threshold}")


STAGES = {
    "read": "documents found; unreadable ones dropped",
    "url_filter": "blocklisted domains dropped",
    "extract": "main text extracted from HTML (JSONL passes through)",
    "langid": "kept languages above the confidence threshold",
    "quality": "Gopher-style quality rules (reason = first rule failed)",
    "pii": "emails, phones, IPs, Luhn-valid cards replaced (never drops)",
    "dedup": "exact then MinHash near-duplicates dropped, first kept",
}


def _check_languages(languages: list[str]) -> None:
    unknown = sorted(set(languages) - known_languages())
    if unknown:
        raise LabError(f"unknown language code(s) {unknown}: use ISO 639-1 codes py3langid knows, e.g. 'en', 'de'")


def _save_dataset(rows: dict[str, list], path: Path) -> None:
    if (path / "state.json").is_file():  # our own earlier output: stale shards must not linger
        shutil.rmtree(path)
    features = Features({"text": Value("string"), "url": Value("string"), "source_file": Value("string")})
    Dataset.from_dict(rows, features=features).save_to_disk(str(path))


def run_pipeline(in_dir: str | Path, out_dir: str | Path, cfg: PipelineConfig | None = None) -> dict:
    """Filter every document under in_dir; write out_dir/dataset (text, url, source_file),
    out_dir/report.json and out_dir/report.md; return the report."""
    cfg = cfg or PipelineConfig()
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    files = find_inputs(in_dir)
    manifest = load_manifest(in_dir)
    _check_languages(cfg.languages)
    blocked = normalise_domains(cfg.blocked_domains)

    stages = {name: Stage(name, desc) for name, desc in STAGES.items()}
    bad = BadDocs()
    pii: Counter = Counter({kind: 0 for kind in KINDS})
    dedup = Deduplicator(cfg.near_dup_threshold, cfg.num_perm, cfg.shingle_size)
    rows: dict[str, list] = {"text": [], "url": [], "source_file": []}

    for doc in iter_documents(in_dir, files, manifest):
        if isinstance(doc, BadDoc):
            stages["read"].drop(doc.reason)
            bad.add(doc.where, doc.detail)
            continue
        stages["read"].keep()

        reason = block_reason(doc.url, blocked, cfg.builtin_blocklist)
        if reason:
            stages["url_filter"].drop(reason)
            continue
        stages["url_filter"].keep()

        if doc.html is not None:
            try:
                text = extract_text(doc.html, doc.url)
            except Exception as e:  # noqa: BLE001 - one pathological page must not cost the whole run
                stages["extract"].drop("extraction_error")
                bad.add(doc.where, f"extraction failed ({type(e).__name__}: {e})")
                continue
            doc.html = None
            empty_reason = "no_main_text"
        else:
            text, empty_reason = (doc.text or "").strip(), "empty_text"
        if not text:
            stages["extract"].drop(empty_reason)
            continue
        stages["extract"].keep()

        reason, _, _ = language_reason(text, cfg.languages, cfg.min_lang_confidence)
        if reason:
            stages["langid"].drop(reason)
            continue
        stages["langid"].keep()

        reason = quality_reason(text, cfg.quality)
        if reason:
            stages["quality"].drop(reason)
            continue
        stages["quality"].keep()

        if cfg.scrub_pii:
            text, found = scrub(text)
            pii.update(found)
        stages["pii"].keep()

        reason = dedup.check(text)
        if reason:
            stages["dedup"].drop(reason)
            continue
        stages["dedup"].keep()

        rows["text"].append(text)
        rows["url"].append(doc.url)
        rows["source_file"].append(doc.source_file)

    out_dir.mkdir(parents=True, exist_ok=True)
    _save_dataset(rows, out_dir / "dataset")
    report = {
        "in_dir": str(in_dir),
        "out_dir": str(out_dir),
        "files": dict(Counter(kind_of(p) for p in files)),
        "documents_in": stages["read"].seen,
        "documents_kept": len(rows["text"]),
        "stages": {name: stage.to_dict() for name, stage in stages.items()},
        "pii": dict(pii),
        "bad_documents": {"count": bad.count, "listed": bad.listed},
        "config": json.loads(json.dumps(asdict(cfg))),  # tuples as lists: returned == report.json
    }
    write_reports(report, out_dir)
    return report
