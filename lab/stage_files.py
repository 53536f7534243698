"""What a complete stage wrote, and whether it is still all there: the manifest its COMPLETE records.

A stage's COMPLETE lists the size and sha256 of every file the stage left (its model, tokenizer, data,
summaries), so a half-copied or truncated output is found where it is loaded, in one line naming the stage,
the file and the command that redoes it, instead of as a traceback far from the cause. Loading checks sizes
always and digests while they are cheap (a stage's files up to CHEAP_BYTES); `lab status --verify` checks every
digest. Left out of the manifest: what other commands add to a stage folder after it completes (evals/,
timing.json), logs, resumable checkpoints, and stages or runs nested inside it (replicate's seed runs). A
COMPLETE written before manifests existed is accepted, and gains one when `lab status --verify` looks at it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from lab.errors import LabError
from lab.run_lock import LOCK_NAME

CHEAP_BYTES = 256 << 20  # digests are checked on every load of a stage whose files add up to at most this
_NOT_OUTPUTS = {"COMPLETE", "timing.json"}
_NOT_OUTPUT_DIRS = {"evals", "logs", "checkpoint"}


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _outputs(stage_dir: Path) -> list[Path]:
    """The stage's own files, relative to its folder (see the module docstring for what is left out)."""
    out = []
    for root, dirs, files in os.walk(stage_dir):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if d not in _NOT_OUTPUT_DIRS and not d.startswith(("checkpoint-", "."))
                         and not (here / d / "COMPLETE").exists() and not is_run(here / d))  # nested stages, runs
        out += [(here / f).relative_to(stage_dir) for f in sorted(files)
                if not (here == stage_dir and f in _NOT_OUTPUTS) and not f.startswith(".") and f != LOCK_NAME]
    return out


def manifest(stage_dir: Path) -> dict[str, dict]:
    """{relative path: {"size", "sha256"}} of the stage's files, for its COMPLETE."""
    stage_dir = Path(stage_dir)
    return {str(p): {"size": (stage_dir / p).stat().st_size, "sha256": _digest(stage_dir / p)}
            for p in _outputs(stage_dir)}


def damage(stage_dir: Path, files: object, digests: bool | None = None) -> str | None:
    """What is wrong with a complete stage's files against its manifest `files` ("model.safetensors is 1,024
    bytes, 2,048 were written"), or None when all is whole. digests: True checks every digest, False none,
    None (the default) those of stages up to CHEAP_BYTES."""
    if not isinstance(files, dict) or not all(isinstance(v, dict) and isinstance(v.get("size"), int)
                                              and isinstance(v.get("sha256"), str) for v in files.values()):
        return "its COMPLETE's file list does not parse"
    stage_dir = Path(stage_dir)
    for name, want in files.items():
        path = stage_dir / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != want["size"]:
            return f"{name} is {path.stat().st_size:,} bytes, {want['size']:,} were written"
    if digests is None:
        digests = sum(v["size"] for v in files.values()) <= CHEAP_BYTES
    for name, want in files.items() if digests else ():
        if _digest(stage_dir / name) != want["sha256"]:
            return f"{name} has changed since it was written (its sha256 differs)"
    return None


_whole: set[tuple[str, int]] = set()  # (COMPLETE, its mtime) found whole by this process: not hashed again


def stage_damage(stage_dir: Path, digests: bool | None = None) -> str | None:
    """damage() of a complete stage against the manifest in its COMPLETE; None also for a COMPLETE that has no
    manifest (written before manifests existed)."""
    try:
        info = json.loads((Path(stage_dir) / "COMPLETE").read_text())
    except (OSError, ValueError):
        return "its COMPLETE does not parse"
    if not isinstance(info, dict):
        return "its COMPLETE does not parse"
    return None if "files" not in info else damage(stage_dir, info["files"], digests)


def is_run(folder: Path) -> bool:
    """Whether `folder` is a run directory: its config.json records a run format (a model's or an experiment's
    config.json does not)."""
    try:
        return "run_format_version" in json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError, TypeError):
        return False


def run_root_of(path: Path) -> Path | None:
    """The run directory `path` lies in (it or the nearest folder above it that is_run), or None."""
    path = Path(path).resolve()
    return next((p for p in (path, *path.parents) if is_run(p)), None)


def check_whole(stage_dir: Path) -> None:
    """LabError, one line naming the stage, the file and the command that redoes it, when a complete stage's
    files no longer match what it wrote; checked once per process and COMPLETE."""
    stage_dir = Path(stage_dir)
    complete = stage_dir / "COMPLETE"
    key = (str(complete.resolve()), complete.stat().st_mtime_ns)
    if key in _whole:
        return
    what = stage_damage(stage_dir)
    if what:
        run = run_root_of(stage_dir.parent) or stage_dir.parent
        stage = stage_dir.resolve().relative_to(run.resolve()) if run != stage_dir.parent else stage_dir.name
        where = "" if run.parent.resolve() == Path("runs").resolve() else f" --runs-dir {run.parent}"
        raise LabError(f"stage '{stage}' of run {run} is damaged: {what}; redo it with `lab pipeline --name "
                       f"{run.name}{where} --redo {stage}` (or the command that made it)")
    _whole.add(key)


def refresh(stage_dir: Path, only_if_missing: bool = False) -> None:
    """Rewrite a COMPLETE's manifest from the files there now (atomically); with only_if_missing, only give one
    to a COMPLETE written before manifests existed (`lab status --verify`)."""
    complete = Path(stage_dir) / "COMPLETE"
    info = json.loads(complete.read_text())
    if only_if_missing and "files" in info:
        return
    tmp = complete.with_name(f".COMPLETE.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({**info, "files": manifest(stage_dir)}, indent=2) + "\n")
    os.replace(tmp, complete)
