"""Run directories: one folder an experiment, one sub-folder a stage, written so nothing is lost.

`runs/<name>/config.json` records the run-format version, the git commit, package versions, seeds and
every setting, so a report can be rebuilt and a run resumed. A stage is complete once its `COMPLETE`
file exists (written last); checkpoints are written to a temporary folder and renamed into place, so
a kill at any moment leaves either the old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

from lab.errors import LabError

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


def write_text_atomic(path: Path, text: str) -> None:
    """Write a file atomically (a temporary beside it, then one rename): a reader never sees half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


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

    Complete means its trainer_state.json is there: the Trainer needs it to resume, and a run killed
    while saving may leave a folder without it."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    steps = [int(p.name.split("-", 1)[1]) for p in folder.glob("checkpoint-*")
             if p.name.split("-", 1)[1].isdigit() and (p / "trainer_state.json").is_file()]
    return str(folder / f"checkpoint-{max(steps)}") if steps else None


@contextlib.contextmanager
def atomic_dir(final: Path):
    """Yield a temporary folder beside `final`; on success it replaces `final` in one rename."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
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
        return out

    def is_complete(self, stage: str) -> bool:
        return (self.stage_dir(stage) / "COMPLETE").exists()

    def mark_complete(self, stage: str, info: dict | None = None) -> None:
        write_json(self.stage_dir(stage) / "COMPLETE", {"finished": time.strftime("%Y-%m-%d %H:%M:%S"), **(info or {})})

    def completion(self, stage: str) -> dict:
        return read_json(self.stage_dir(stage) / "COMPLETE") if self.is_complete(stage) else {}

    def require(self, stage: str) -> Path:
        """The folder of a parent stage, which must be complete."""
        if not self.is_complete(stage):
            raise LabError(f"stage '{stage}' of run {self.root} is not complete; run `lab pipeline` (or that stage) first")
        return self.stage_dir(stage)

    def settings(self) -> dict:
        return read_json(self.config_path)["settings"]

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
