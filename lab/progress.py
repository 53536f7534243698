"""Training logs: JSONL (the source of truth for reports), TensorBoard, and a rich progress bar."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from transformers import TrainerCallback

from lab.runs import write_text_atomic


class TrainLogger:
    def __init__(self, log_dir: Path, enabled: bool, total: int, start: int = 0, title: str = "train", quiet=False):
        self.enabled, self.records, self.last = enabled, [], {}
        self.last_logged_step = start if start else None
        if not enabled:
            return
        log_dir.mkdir(parents=True, exist_ok=True)
        _keep_rows_up_to(log_dir / "train.jsonl", start)
        self.file = open(log_dir / "train.jsonl", "a")
        try:  # optional: imported where it is used, so a machine without it logs all the same
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(log_dir / "tensorboard"))
        except ImportError:  # tensorboard is optional at run time
            self.tb = None
        self.progress = Progress(
            TextColumn(f"[bold]{title}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=Console(stderr=True), disable=quiet, transient=False,
        )
        self.task = self.progress.add_task(title, total=total, completed=start, status="")
        self.progress.start()

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        self.records.append(record)
        self.last.update(record)
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        step = record["step"]
        if self.tb:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                    self.tb.add_scalar(key, value, step)
        if "loss" in record or "reward" in record:
            self.last_logged_step = step
            self.progress.update(self.task, completed=step, status=self._status(record))

    def _status(self, record: dict) -> str:
        parts = [f"loss {record['loss']:.3f}"] if "loss" in record else []
        if "reward" in record:
            parts.append(f"reward {record['reward']:.3f}")
        if "tokens_per_s" in record:
            parts.append(f"{record['tokens_per_s']:,.0f} tok/s")
        if "mfu" in record:
            parts.append(f"MFU {record['mfu']:.1%}")
        if "heldout_loss" in self.last:
            parts.append(f"held-out {self.last['heldout_loss']:.3f}")
        return "  ".join(parts)

    def advance(self, step: int) -> None:
        if self.enabled:
            self.progress.update(self.task, completed=step)

    def mean(self, key: str) -> float | None:
        values = [r[key] for r in self.records if key in r]
        return sum(values) / len(values) if values else None

    def close(self) -> None:
        if self.enabled:
            self.progress.stop()
            self.file.close()
            if self.tb:
                self.tb.close()


def trainer_progress(log_dir: Path, title: str, quiet: bool = False):
    """A transformers TrainerCallback that gives TRL trainers (SFT, RL, reward model) the same live progress
    bar, JSONL and TensorBoard logs as our own pretraining loop."""
    class Progress(TrainerCallback):
        logger = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.logger = TrainLogger(log_dir, enabled=state.is_world_process_zero, total=state.max_steps,
                                      start=state.global_step, title=title, quiet=quiet)

        def on_step_end(self, args, state, control, **kwargs):
            self.logger.advance(state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            numbers = {k: v for k, v in (logs or {}).items() if isinstance(v, (int, float))}
            self.logger.log({"step": state.global_step, **numbers})

        def on_train_end(self, args, state, control, **kwargs):
            self.logger.close()

    return Progress()


def _keep_rows_up_to(path: Path, step: int) -> None:
    """Cut a log back to the rows of steps <= `step`, the checkpoint a run resumes from: the steps a kill lost
    are trained and logged again, so they must not also stay from before (nor a row the kill tore in half)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
            kept.append(line + "\n")
    write_text_atomic(path, "".join(kept))
