"""What the pipeline did, in numbers: per-stage in / kept / dropped with reasons, PII counts, and
the documents that could not be read. Written as report.json (for tools) and report.md (for people).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

MAX_LISTED_BAD = 20  # the report lists this many unreadable documents; the count covers them all


@dataclass
class Stage:
    name: str
    description: str
    seen: int = 0
    kept: int = 0
    reasons: Counter = field(default_factory=Counter)

    def keep(self) -> None:
        self.seen += 1
        self.kept += 1

    def drop(self, reason: str) -> None:
        self.seen += 1
        self.reasons[reason] += 1

    def to_dict(self) -> dict:
        return {"description": self.description, "in": self.seen, "kept": self.kept,
                "dropped": self.seen - self.kept, "reasons": dict(self.reasons.most_common())}


@dataclass
class BadDocs:
    count: int = 0
    listed: list[str] = field(default_factory=list)

    def add(self, where: str, detail: str) -> None:
        self.count += 1
        if len(self.listed) < MAX_LISTED_BAD:
            self.listed.append(f"{where}: {detail}")


def render_markdown(report: dict) -> str:
    lines = ["# Web text pipeline report", "", f"Input `{report['in_dir']}` -> `{report['out_dir']}`: "
             f"{report['documents_in']} documents in, **{report['documents_kept']} kept**.", "",
             "| stage | in | kept | dropped | reasons |", "| --- | ---: | ---: | ---: | --- |"]
    for name, s in report["stages"].items():
        reasons = ", ".join(f"{r} {n}" for r, n in s["reasons"].items()) or "-"
        lines.append(f"| {name} | {s['in']} | {s['kept']} | {s['dropped']} | {reasons} |")
    lines += ["", "## PII replaced", "", "| kind | replacements |", "| --- | ---: |"]
    lines += [f"| {kind} | {n} |" for kind, n in report["pii"].items()]
    files = report["files"]
    lines += ["", "## Input files", "", ", ".join(f"{kind}: {n}" for kind, n in files.items())]
    bad = report["bad_documents"]
    lines += ["", f"## Unreadable documents ({bad['count']})", ""]
    if bad["count"]:
        lines += [f"- `{entry}`" for entry in bad["listed"]]
        if bad["count"] > len(bad["listed"]):
            lines.append(f"- ... and {bad['count'] - len(bad['listed'])} more")
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"


def write_reports(report: dict, out_dir: Path) -> None:
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(render_markdown(report), encoding="utf-8")
