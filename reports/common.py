"""Small helpers every report module uses."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path


def jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def suite_results(run, stage: str, suite: str) -> dict | None:
    """STAGE/evals/SUITE/results.json of a run (a lab.runs.Run), or None when that suite did not run there."""
    path = run.stage_dir(stage) / "evals" / suite / "results.json"
    return json.loads(path.read_text()) if path.exists() else None


def stage_results(run, stage: str) -> dict:
    """STAGE/results.json of a run (a lab.runs.Run) once the stage is complete, {} before (or when it wrote none)."""
    path = run.stage_dir(stage) / "results.json"
    return json.loads(path.read_text()) if run.is_complete(stage) and path.exists() else {}


def png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()
