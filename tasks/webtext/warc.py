"""A small streaming WARC reader: just enough to pull HTML pages out of response records.

WARC (ISO 28500) is a sequence of records, each a version line, `Name: value` headers, a blank line,
exactly Content-Length bytes of block, then two CRLFs. `.warc.gz` files are a series of gzip members
(usually one per record); `gzip.open` reads them as one stream, so both variants share this reader.
Records are read one at a time, so a crawl file never has to fit in memory.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

HTML_TYPES = ("text/html", "application/xhtml+xml")


class WarcError(ValueError):
    """Record `index` (1-based) cannot be read: the file breaks the WARC format there, or its gzip
    stream is damaged. The reader cannot resynchronise, so the rest of the file is lost."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


@dataclass
class WarcRecord:
    index: int  # 1-based position in the file, for error reports
    headers: dict[str, str]  # header names lower-cased
    block: bytes

    @property
    def type(self) -> str:
        return self.headers.get("warc-type", "").lower()

    @property
    def target_uri(self) -> str | None:
        # some writers wrap the URI in <>, as the 0.x drafts did
        uri = self.headers.get("warc-target-uri", "").strip().strip("<>")
        return uri or None


@dataclass
class HttpPage:
    status: int
    content_type: str
    charset: str | None
    body: bytes


def open_warc(path: Path) -> BinaryIO:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _read_headers(stream: BinaryIO, index: int) -> dict[str, str]:
    headers: dict[str, str] = {}
    last = None
    while True:
        line = stream.readline()
        if not line:
            raise WarcError(index, "file ends inside a record header")
        if line in (b"\r\n", b"\n"):
            return headers
        text = line.decode("utf-8", errors="replace").rstrip("\r\n")
        if text[:1] in (" ", "\t") and last:  # folded continuation line
            headers[last] += " " + text.strip()
            continue
        name, sep, value = text.partition(":")
        if not sep:
            raise WarcError(index, f"header line without a colon: {text[:60]!r}")
        last = name.strip().lower()
        headers[last] = value.strip()


def iter_records(path: Path) -> Iterator[WarcRecord]:
    """Yield every record in a .warc or .warc.gz file, in order. Raises WarcError at the first record
    that cannot be read (OSError if the file cannot be opened); records already yielded stay valid."""
    index = 0
    with open_warc(path) as stream:
        try:
            while True:
                line = stream.readline()
                while line in (b"\r\n", b"\n"):  # tolerate stray blank lines between records
                    line = stream.readline()
                if not line:
                    return
                index += 1
                yield _read_record(stream, line, index)
        except (OSError, EOFError, zlib.error) as e:  # damaged or truncated gzip
            raise WarcError(index or 1, f"{type(e).__name__}: {e}") from None


def _read_record(stream: BinaryIO, version_line: bytes, index: int) -> WarcRecord:
    if not version_line.startswith(b"WARC/"):
        raise WarcError(index, f"expected a 'WARC/' version line, got {version_line[:40]!r}")
    headers = _read_headers(stream, index)
    try:
        length = int(headers.get("content-length", ""))
    except ValueError:
        raise WarcError(index, "missing or bad Content-Length") from None
    block = stream.read(length)
    if len(block) != length:
        raise WarcError(index, "file ends inside the record body")
    return WarcRecord(index=index, headers=headers, block=block)


def _dechunk(body: bytes) -> bytes:
    out, pos = bytearray(), 0
    while pos < len(body):
        end = body.find(b"\r\n", pos)
        if end < 0:
            break
        size_text = body[pos:end].split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return body  # not really chunked: keep what the crawler stored
        if size == 0:
            break
        out += body[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2
    return bytes(out)


def _charset(content_type: str) -> str | None:
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'").lower()
    return None


def parse_http_response(block: bytes) -> HttpPage | None:
    """Split an HTTP/1.x response into status, content type and (de-chunked, decompressed) body.
    None when the block is not an HTTP response at all."""
    head, sep, body = block.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = block.partition(b"\n\n")
    lines = head.decode("iso-8859-1").splitlines()
    if not sep or not lines or not lines[0].startswith("HTTP/"):
        return None
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return None
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    if "chunked" in fields.get("transfer-encoding", "").lower():
        body = _dechunk(body)
    if fields.get("content-encoding", "").lower() in ("gzip", "x-gzip", "deflate"):
        try:
            body = zlib.decompress(body, 47)  # 47: auto-detect gzip or zlib header
        except zlib.error:
            pass  # many crawlers store the decoded body but keep the header
    content_type = fields.get("content-type", "")
    return HttpPage(status, content_type.split(";")[0].strip().lower(), _charset(content_type), body)


def iter_html_pages(path: Path) -> Iterator[tuple[WarcRecord, HttpPage]]:
    """The successful HTML responses of a WARC file; requests, metadata, images and redirects are
    not documents and are passed over."""
    for record in iter_records(path):
        if record.type != "response":
            continue
        page = parse_http_response(record.block)
        if page is None or page.status != 200 or page.content_type not in HTML_TYPES:
            continue
        yield record, page
