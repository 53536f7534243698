"""Run directories: one folder an experiment, one sub-folder a stage, written so nothing is lost.

`runs/<name>/config.json` records the run-format version, the git commit, package versions, seeds and
every setting, so a report can be rebuilt and a run resumed. A stage is complete once its `COMPLETE`
file exists (written last); files and checkpoints are written to a temporary beside them and renamed into
place (atomic_file, atomic_dir), so a kill at any moment leaves either the old checkpoint or the new one,
never half of one, and what it left half-done is settled when the stage is next opened (settle_tree).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import platform
import re
import shutil
import subprocess
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

from lab.errors import LabError
from lab.stage_files import check_whole, manifest, refresh

RUN_FORMAT_VERSION = 1
PACKAGES = ("torch", "transformers", "trl", "peft", "datasets", "tokenizers", "accelerate", "sympy")


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_info(field: str) -> str | None:
    """A field of this machine's first /proc/cpuinfo entry (e.g. "model name", "flags"); None where there is
    no such file (not Linux) or field."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.split(":", 1)[0].strip() == field), None)
    except OSError:
        return None


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@contextlib.contextmanager
def atomic_file(path: Path):
    """Yield a temporary path beside `path`; once the block has written it, one rename puts it in place, so
    a reader never sees half a file. Temporaries that killed writers left beside it are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in _leftovers(path, "tmp"):
        _remove(stale)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, default=str) + "\n")


def write_train_log(stage_dir: Path, rows: list[dict]) -> None:
    """A stage's training log, logs/train.jsonl: one JSON object a line, written whole and atomically
    (trainers keep their history in memory and in checkpoints, so a resumed run rewrites it complete)."""
    write_text_atomic(Path(stage_dir) / "logs" / "train.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


def read_train_log(stage_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(stage_dir) / "logs" / "train.jsonl").read_text().splitlines()]


def read_json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise LabError(f"{path} does not exist") from None
    except json.JSONDecodeError as e:
        raise LabError(f"{path} is not valid JSON ({e})") from None


def last_trainer_checkpoint(folder: Path) -> str | None:
    """The newest complete `checkpoint-N` a transformers Trainer left in `folder` (highest N), or None.

    Complete means its trainer_state.json is there and whole: the Trainer writes it last, so a run killed
    while saving leaves a folder without it (or, killed mid-write of that file, with a torn one)."""
    steps = [step for step, complete in _trainer_checkpoints(folder) if complete]
    return str(Path(folder) / f"checkpoint-{max(steps)}") if steps else None


def tidy_trainer_checkpoints(folder: Path) -> str | None:
    """last_trainer_checkpoint, after removing every other `checkpoint-N` in `folder`: the half-written ones a
    kill left, and older ones a kill stopped the Trainer from rotating out (the lab keeps one)."""
    last = last_trainer_checkpoint(folder)
    for step, _ in _trainer_checkpoints(folder):
        path = Path(folder) / f"checkpoint-{step}"
        if str(path) != last:
            shutil.rmtree(path, ignore_errors=True)
    return last


def _trainer_checkpoints(folder: Path) -> list[tuple[int, bool]]:
    """(N, complete) for each `checkpoint-N` folder in `folder`."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.glob("checkpoint-*"):
        if p.is_dir() and p.name.split("-", 1)[1].isdigit():
            try:
                complete = isinstance(json.loads((p / "trainer_state.json").read_text()), dict)
            except (OSError, ValueError):
                complete = False
            found.append((int(p.name.split("-", 1)[1]), complete))
    return found


LEFTOVER = re.compile(r"^\.(?P<final>.+)\.(?P<kind>tmp|ready|old)-(?P<pid>\d+)$")  # what atomic writes leave


def _leftovers(final: Path, kind: str) -> list[Path]:
    """What killed writers left beside `final`: `.NAME.KIND-PID` entries whose process is gone (or is us),
    newest first. A live writer's entries are not touched."""
    found = []
    for p in final.parent.glob(f".{glob.escape(final.name)}.{kind}-*"):
        match = LEFTOVER.match(p.name)
        if match and match["final"] == final.name and (int(match["pid"]) == os.getpid() or not _alive(int(match["pid"]))):
            found.append(p)
    return sorted(found, key=lambda p: p.lstat().st_mtime, reverse=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def settle_dir(final: Path) -> None:
    """Finish what an atomic_dir that was killed left beside `final`, so `final` is the newest complete
    version: a complete new version (`.ready-`) is moved in; if the kill came between the two renames
    (`final` gone, the previous version waiting as `.old-`), the previous one is put back; half-written
    temporaries (`.tmp-`) and superseded versions are removed. Idempotent; a no-op after a clean write."""
    final = Path(final)
    if not final.parent.is_dir():
        return
    for tmp in _leftovers(final, "tmp"):
        _remove(tmp)
    ready = _leftovers(final, "ready")
    if ready:
        if final.exists():
            os.replace(final, final.with_name(f".{final.name}.old-{os.getpid()}"))
        os.replace(ready.pop(0), final)
    old = _leftovers(final, "old")
    if old and not final.exists():
        os.replace(old.pop(0), final)
    for leftover in ready + old:
        _remove(leftover)


def settle_tree(folder: Path) -> None:
    """settle_dir for everything atomic writes left anywhere under `folder` (a stage settles its folder when
    it opens): after a kill, no temporary lingers and no checkpoint is missing."""
    finals = {Path(root) / match["final"] for root, dirs, files in os.walk(folder)
              for name in dirs + files if (match := LEFTOVER.match(name))}
    for final in sorted(finals):
        settle_dir(final)


@contextlib.contextmanager
def atomic_dir(final: Path):
    """Yield a temporary folder beside `final`; on success it replaces `final`.

    A folder cannot be renamed over a non-empty one, so replacing takes renames: the finished temporary
    becomes `.ready-` (complete, named so), the old `final` steps aside as `.old-`, the ready one takes its
    place, the old one is removed. A kill at any point leaves a state settle_dir (called here first, and by
    whoever resumes from `final`) turns into the newest complete version: never none, never half of one."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    settle_dir(final)
    pid = os.getpid()
    tmp, ready, old = (final.with_name(f".{final.name}.{kind}-{pid}") for kind in ("tmp", "ready", "old"))
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.replace(tmp, ready)
    if final.exists():
        os.replace(final, old)
    os.replace(ready, final)
    shutil.rmtree(old, ignore_errors=True)


class Run:
    """A run directory. Stages read their parents' folders and write their own."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    def open_stage(self, stage: str) -> Path:
        """The stage's folder, made if missing, and not complete until this run of it marks it so again:
        every stage starts this way, so a rerun killed halfway is never mistaken for a finished one."""
        out = self.stage_dir(stage)
        out.mkdir(parents=True, exist_ok=True)
        (out / "COMPLETE").unlink(missing_ok=True)
        settle_tree(out)  # what a kill of the last attempt left half-renamed or half-written
        return out

    def is_complete(self, stage: str) -> bool:
        return (self.stage_dir(stage) / "COMPLETE").exists()

    def mark_complete(self, stage: str, info: dict | None = None) -> None:
        """Written last: the stage's COMPLETE, with the manifest of its files (lab/stage_files.py)."""
        write_json(self.stage_dir(stage) / "COMPLETE", {"finished": time.strftime("%Y-%m-%d %H:%M:%S"), **(info or {}),
                                                        "files": manifest(self.stage_dir(stage))})

    def refresh_manifest(self, stage: str) -> None:
        """Record a complete stage's files as they are now, after a command that owns them changed them."""
        refresh(self.stage_dir(stage))

    def completion(self, stage: str) -> dict:
        return read_json(self.stage_dir(stage) / "COMPLETE") if self.is_complete(stage) else {}

    def require(self, stage: str) -> Path:
        """The folder of a parent stage, which must be complete and whole."""
        if not self.is_complete(stage):
            raise LabError(f"stage '{stage}' of run {self.root} is not complete; run `lab pipeline` (or that stage) first")
        check_whole(self.stage_dir(stage))
        return self.stage_dir(stage)

    def settings(self) -> dict:
        """The settings the run was created with (config.json): every stage's section of the preset."""
        return read_json(self.config_path)["settings"]

    def stage_settings(self, stage: str) -> dict:
        """The settings a complete stage ran with, overrides included (its summary.json, or results.json for an
        experiment that writes no summary)."""
        folder = self.require(stage)
        return read_json(folder / "summary.json" if (folder / "summary.json").exists() else folder / "results.json")["settings"]

    @classmethod
    def create_or_open(cls, root: Path, settings_obj) -> Run:
        """Open the run at `root`, or create it with these settings (a dataclass).

        Re-opening with different settings is refused: a run's results must come from one configuration."""
        run = cls(root)
        settings = json.loads(json.dumps(asdict(settings_obj), default=list))
        if run.config_path.exists():
            stored = read_json(run.config_path)
            version = stored.get("run_format_version")
            if version != RUN_FORMAT_VERSION:
                raise LabError(
                    f"{root} was written by run format {version}, this lab reads format {RUN_FORMAT_VERSION}; "
                    "use another --name"
                )
            diff = sorted(_diff_keys(stored["settings"], settings))
            if diff:
                raise LabError(
                    f"run {root} exists with different settings ({', '.join(diff[:5])}); "
                    "use another --name or the same --set options"
                )
            if stored["settings"] != settings:  # settings added by a newer lab take their defaults
                stored["settings"] = settings
                write_json(run.config_path, stored)
            return run
        run.root.mkdir(parents=True, exist_ok=True)
        write_json(
            run.config_path,
            {
                "run_format_version": RUN_FORMAT_VERSION,
                "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                "git_commit": git_commit(),
                "packages": package_versions(),
                "python": platform.python_version(),
                "machine": platform.machine(),
                "seed": settings.get("seed"),
                "settings": settings,
            },
        )
        return run

    @classmethod
    def open_existing(cls, root: Path) -> Run:
        run = cls(root)
        if not run.config_path.exists():
            raise LabError(f"{root} is not a run directory (no config.json); create one with `lab pipeline`")
        version = read_json(run.config_path).get("run_format_version")
        if version != RUN_FORMAT_VERSION:
            raise LabError(f"{root} was written by run format {version}, this lab reads format {RUN_FORMAT_VERSION}")
        return run


def _diff_keys(stored: dict, new: dict, prefix: str = "") -> set[str]:
    """Settings whose stored value differs from the new one (keys new since the run was created don't count)."""
    keys = set()
    for k in stored:
        a, b = stored[k], new.get(k)
        if isinstance(a, dict) and isinstance(b, dict) and k not in ("extra_sources",):
            keys |= _diff_keys(a, b, f"{prefix}{k}.")
        elif a != b:
            keys.add(f"{prefix}{k}")
    return keys


def resolve_stage(path: str | Path) -> tuple[Run, str]:
    """`runs/tiny/base` → (Run('runs/tiny'), 'base'), checking that the stage is complete."""
    path = Path(path)
    if not path.exists():
        raise LabError(f"{path} does not exist")
    run = Run.open_existing(path.parent)
    if not run.is_complete(path.name):
        raise LabError(f"stage '{path.name}' of run {run.root} is not complete")
    return run, path.name
