"""`lab pipeline`: every stage of lab/stages.py into one run directory, resumable.

Each stage's function gets its own preset section and the run's StageContext, reads its parents' folders,
writes its own and marks itself complete last. Complete stages are skipped; a stage that fails stops the pipeline with
its name and the reason in one line, keeping every completed stage (and its own last checkpoint).
"""

from __future__ import annotations

import contextlib
import time
import traceback
from pathlib import Path

from rich.console import Console

from evals.eval_settings import EvalSettings
from evals.harness import SUITES, context_for, model_fingerprint, run_suite, sized
from lab.errors import LabError, disk_full
from lab.model.loading import load_model_and_tokenizer
from lab.presets import Preset, stage_context
from lab.run_lock import run_lock
from lab.runs import Run, write_json
from lab.stage_files import check_whole
from lab.stage_names import EVALS, REPORT
from lab.stages import STAGES, Stage, StageContext, by_name, check_stages, eval_suites, stage_names, stage_settings
from reports.report import write_report

console = Console(stderr=True)


def evals_stage(settings: EvalSettings, context: StageContext) -> None:
    """The eval suites on every policy stage that declares some (lab/stages.py), cut by `settings`."""
    run, summary = context.run, {}
    for stage, names in eval_suites(STAGES).items():
        if not run.is_complete(stage):
            continue
        model, tokenizer = load_model_and_tokenizer(run.stage_dir(stage))
        suite_context = context_for(run.stage_dir(stage))
        for suite in (SUITES[n] for n in names) if names else SUITES.values():
            results = run_suite(model, tokenizer, sized(suite, settings), suite_context, run.stage_dir(stage) / "evals",
                                limit=settings.limit or None, seed=context.seed, model_name=f"{run.name}/{stage}",
                                fingerprint=model_fingerprint(run.stage_dir(stage)))
            summary[f"{stage}/{suite.name}"] = {k: m["value"] for k, m in results["metrics"].items()}
    write_json(run.stage_dir(EVALS) / "summary.json", summary)
    run.mark_complete(EVALS)


def report_stage(settings: None, context: StageContext) -> None:
    write_report([context.run], context.run.stage_dir(REPORT), STAGE_NAMES)
    context.run.mark_complete(REPORT)


STAGE_NAMES = stage_names(STAGES)


def _newer_parent(run: Run, stage: Stage) -> str | None:
    if not stage.refresh:
        return None
    done = (run.stage_dir(stage.name) / "COMPLETE").stat().st_mtime
    return next((p for p in stage.parents if run.is_complete(p)
                 and (run.stage_dir(p) / "COMPLETE").stat().st_mtime > done), None)


def run_stage(stage: Stage, run: Run, preset: Preset) -> None:
    """One stage's function on its own settings and the run's context."""
    context = stage_context(run, preset).at(stage.name, stage.source)
    stage.function()(stage_settings(stage, preset), context)


def provide(run: Run, preset: Preset, needs, stages: list[Stage] = STAGES) -> None:
    """Train whichever of the stages an experiment `needs` is not complete, and the missing stages those
    stand on, in pipeline order with the pipeline's own stage functions: an experiment run on its own sees
    exactly the stages the pipeline would have made."""
    named = by_name(stages)
    unknown = set(needs) - set(named)
    if unknown:
        raise LabError(f"unknown stage(s) {sorted(unknown)}; stages: {', '.join(named)}")
    missing, todo = set(), list(needs)
    while todo:
        name = todo.pop()
        if name not in missing and not run.is_complete(name):
            missing.add(name)
            todo.extend(named[name].parents)
    for stage in stages:
        if stage.name in missing:
            console.print(f"  [cyan]→[/cyan] {stage.name} (needed)")
            run_stage(stage, run, preset)


def run_pipeline(preset: Preset, runs_dir: Path = Path("runs"), name: str | None = None,
                 until: str | None = None, force: tuple[str, ...] = (), stages: list[Stage] = STAGES) -> Run:
    """Run `stages` (default: the lab's) in order into runs_dir/name, skipping complete ones."""
    check_stages(stages)
    names = stage_names(stages)
    for stage in (until, *force):
        if stage is not None and stage not in names:
            raise LabError(f"unknown stage '{stage}'; stages: {', '.join(names)}")
    root = Path(runs_dir) / (name or preset.name)
    with run_lock(root):  # a second pipeline on this run, or any other writer, is refused in one line
        run = Run.create_or_open(root, preset)
        console.print(f"[bold]run[/bold] {run.root}  (preset {preset.name})")
        _run_stages(run, preset, until, force, stages)
    return run


def _run_stages(run: Run, preset: Preset, until: str | None, force: tuple[str, ...], stages: list[Stage]) -> None:
    for stage in stages:
        newer = _newer_parent(run, stage) if run.is_complete(stage.name) else None
        if run.is_complete(stage.name) and stage.name not in force and not stage.always and not newer:
            check_whole(run.stage_dir(stage.name))  # skipped only if its files are what it wrote
            console.print(f"  [green]✓[/green] {stage.name} (complete, skipped)")
        else:
            console.print(f"  [cyan]→[/cyan] {stage.name}" + (f" (again: {newer} is newer)" if newer else ""))
            t0 = time.perf_counter()
            try:
                run_stage(stage, run, preset)
            except LabError as e:
                raise LabError(f"stage '{stage.name}' stopped: {e}") from None
            except KeyboardInterrupt:
                raise
            except Exception as e:
                log = run.stage_dir(stage.name) / "logs" / "error.log"
                with contextlib.suppress(OSError):  # on a full disk even this may fail; the message stands alone
                    log.parent.mkdir(parents=True, exist_ok=True)
                    log.write_text(traceback.format_exc())
                if disk_full(e):
                    raise LabError(f"stage '{stage.name}' failed: the disk is full (or a file-size limit was hit) "
                                   f"writing under {run.stage_dir(stage.name)} ({type(e).__name__}: {e}); free some "
                                   "space and run the same command: completed stages and the stage's last "
                                   "checkpoint are kept") from None
                raise LabError(f"stage '{stage.name}' failed: {type(e).__name__}: {e} (traceback in {log}); "
                               "completed stages are kept, run the same command to continue") from None
            timing = run.stage_dir(stage.name) / "timing.json"
            write_json(timing, {"seconds": time.perf_counter() - t0})
            console.print(f"  [green]✓[/green] {stage.name} ({time.perf_counter() - t0:.1f} s)")
        if stage.name == until:
            break
