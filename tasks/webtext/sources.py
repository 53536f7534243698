"""Finding and reading the input folder: HTML files, WARC crawls, JSONL text and the URL manifest.

Everything is a generator of one document at a time, so raw HTML of the whole folder is never held.
A document that cannot be read (bad bytes, broken JSON, no `text`) comes out as a `BadDoc` with
its `file:line` (or `file:record N`) instead of stopping the run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabError
from tasks.webtext.warc import WarcError, iter_html_pages

HTML_SUFFIXES = (".html", ".htm")
WARC_SUFFIXES = (".warc", ".warc.gz")
JSONL_SUFFIXES = (".jsonl",)
MANIFESTS = ("manifest.tsv", "manifest.jsonl")


@dataclass
class RawDoc:
    source_file: str  # path relative to the input folder
    where: str  # "file", "file:LINE" or "file:record N"
    url: str | None
    html: str | None = None  # exactly one of html / text is set
    text: str | None = None


@dataclass
class BadDoc:
    where: str
    reason: str  # short counter key: not_utf8, not_json, missing_text, unreadable, bad_warc
    detail: str


def kind_of(path: Path) -> str | None:
    name = path.name.lower()
    for kind, suffixes in (("html", HTML_SUFFIXES), ("warc", WARC_SUFFIXES), ("jsonl", JSONL_SUFFIXES)):
        if name.endswith(suffixes):
            return kind
    return None


def find_inputs(in_dir: Path) -> list[Path]:
    """Input files anywhere under in_dir, in sorted order (the output's order depends on it). An
    output folder inside in_dir is harmless: it holds no .html/.warc/.jsonl files."""
    if not in_dir.exists():
        raise LabError(f"input folder {in_dir} does not exist")
    if not in_dir.is_dir():
        raise LabError(f"input {in_dir} is not a folder")
    files = []
    for path in in_dir.rglob("*"):
        if path.name in MANIFESTS or not path.is_file() or kind_of(path) is None:
            continue
        files.append(path)
    files.sort(key=lambda p: p.relative_to(in_dir).as_posix())
    if not files:
        raise LabError(f"no .html/.warc/.jsonl files in {in_dir}")
    return files


def load_manifest(in_dir: Path) -> dict[str, str]:
    """file name -> source URL from manifest.tsv (`file<TAB>url`) or manifest.jsonl
    ({"file": ..., "url": ...}). A broken manifest is an error rather than a skipped line: silently
    losing a URL would let a blocklisted page through the URL filter."""
    mapping: dict[str, str] = {}
    tsv, jsonl = in_dir / "manifest.tsv", in_dir / "manifest.jsonl"
    if tsv.is_file():
        for n, line in enumerate(_read_text(tsv).splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                raise LabError(f"{tsv.name}:{n}: expected 'file<TAB>url', got {line[:80]!r}")
            name, url = parts[0].strip(), parts[1].strip()
            if n == 1 and "://" not in url:
                continue  # a header row such as "file<TAB>url"
            mapping[name] = url
    if jsonl.is_file():
        for n, line in enumerate(_read_text(jsonl).splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                mapping[str(row["file"])] = str(row["url"])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise LabError(f'{jsonl.name}:{n}: expected a JSON object with "file" and "url"') from None
    return mapping


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise LabError(f"cannot read {path}: {e}") from None


def _manifest_url(manifest: dict[str, str], rel: str) -> str | None:
    return manifest.get(rel) or manifest.get(rel.rsplit("/", 1)[-1])


def _read_html_file(path: Path, rel: str, url: str | None) -> Iterator[RawDoc | BadDoc]:
    try:
        data = path.read_bytes()
    except OSError as e:
        yield BadDoc(rel, "unreadable", str(e))
        return
    try:
        yield RawDoc(rel, rel, url, html=data.decode("utf-8"))
    except UnicodeDecodeError as e:
        yield BadDoc(rel, "not_utf8", f"not UTF-8 at byte {e.start}")


def _read_jsonl_file(path: Path, rel: str, url: str | None) -> Iterator[RawDoc | BadDoc]:
    try:
        stream = open(path, "rb")
    except OSError as e:
        yield BadDoc(rel, "unreadable", str(e))
        return
    with stream:
        # bytes per line, so one bad line costs that line and not the rest of the file
        for n, raw in enumerate(stream, 1):
            where = f"{rel}:{n}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield BadDoc(where, "not_utf8", "line is not UTF-8")
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line.strip())
            except json.JSONDecodeError as e:
                yield BadDoc(where, "not_json", f"not JSON ({e.msg}, column {e.colno})")
                continue
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                yield BadDoc(where, "missing_text", 'no string field "text"')
                continue
            row_url = row.get("url") if isinstance(row.get("url"), str) else None
            yield RawDoc(rel, where, row_url or url, text=row["text"])


def _read_warc_file(path: Path, rel: str) -> Iterator[RawDoc | BadDoc]:
    try:
        for record, page in iter_html_pages(path):
            where = f"{rel}:record {record.index}"
            charset = page.charset or "utf-8"
            try:
                html = page.body.decode(charset)
            except LookupError:  # a charset name Python does not know
                try:
                    html = page.body.decode("utf-8")
                except UnicodeDecodeError:
                    yield BadDoc(where, "not_utf8", f"unknown charset {charset!r} and not UTF-8")
                    continue
            except UnicodeDecodeError:
                yield BadDoc(where, "not_utf8", f"body does not decode as {charset}")
                continue
            yield RawDoc(rel, where, record.target_uri, html=html)
    except WarcError as e:
        yield BadDoc(f"{rel}:record {e.index}", "bad_warc", str(e))
    except OSError as e:
        yield BadDoc(rel, "unreadable", str(e))


def iter_documents(in_dir: Path, files: list[Path], manifest: dict[str, str]) -> Iterator[RawDoc | BadDoc]:
    """Every document of every input file, in file order then position order."""
    for path in files:
        rel = path.relative_to(in_dir).as_posix()
        kind = kind_of(path)
        if kind == "html":
            yield from _read_html_file(path, rel, _manifest_url(manifest, rel))
        elif kind == "jsonl":
            yield from _read_jsonl_file(path, rel, _manifest_url(manifest, rel))
        else:
            yield from _read_warc_file(path, rel)
