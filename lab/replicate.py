"""Seed replicates: is a headline number a property of the recipe, or of one lucky seed?

`lab experiment replicate RUN --seeds 2` reruns every stage after pretraining (sft, sft-idk, ..., their
evals) with other seeds, from the same base model and the same world, into
`experiments/replicate/seed-<s>/` (a run folder of its own whose data, tokenizer and base are links to
the parent's). `--full` reruns the whole pipeline instead, world and corpus included, into
`experiments/replicate-full/seed-<s>/`: the perturbation a researcher's re-run is.

A replicate's seed moves every seed of the preset that decides how a model trains (initialisation, corpus
order, SFT data and order, probe samples, RL and RM sampling; with `--full` the world and the corpus too),
found by walking the preset so a new stage's seed is never forgotten. Seeds that choose what is measured
(the reading probes' items, the experiments outside the pipeline) stay put. `--seeds` counts the seeds
added: the run's own seed is the first of 1 + N.

The summary (summary.json) has two tables, also written as claims.md and table.md. For every claim of
the report's claims table: the effect with its 95% CI in each seed, their mean and standard deviation,
how many seeds agree in sign with a CI that excludes no effect, and the verdict across seeds (shown only
when every seed shows it). For every headline metric: the spread across seeds next to the confidence
interval over eval items. A CI says how precisely one model was measured; the seed spread says how much
another training run of the same recipe would differ.
"""

from __future__ import annotations

import dataclasses
import math
import os

from evals.suites import headline_metrics
from lab import pipeline  # called as pipeline.run_pipeline: tests swap it for a fake
from lab.errors import LabError
from lab.presets import Preset
from lab.runs import Run, read_json, write_json
from lab.stage_names import BASE, DATA, KNOWLEDGE, SFT, SFT_IDK, TOKENIZER
from reports.claims import FULL_REPLICATE as FULL_STAGE  # the report reads the replicates back from these folders
from reports.claims import REPLICATE as STAGE
from reports.claims import claims_across, claims_across_markdown

SHARED = (DATA, TOKENIZER, BASE, KNOWLEDGE)  # reused as they are: pretraining is not replicated
EVAL_STAGES = (SFT, SFT_IDK)
# Seeds that choose what is measured, not how a model trains: every replicate asks the same probe items.
MEASURE_SEEDS = ("reading.", "overoptimization.", "goodhart.")
PRETRAINING_SEEDS = ("data.",)  # the world and the corpus: moved only by a full replicate


def reseeded(settings, offset: int, full: bool, path: str = ""):
    """The settings (a dataclass tree) with every training seed moved by `offset`: each int field named `seed`
    except MEASURE_SEEDS, and PRETRAINING_SEEDS only when `full`."""
    changes = {}
    for f in dataclasses.fields(settings):
        name, value = path + f.name, getattr(settings, f.name)
        if dataclasses.is_dataclass(value):
            changes[f.name] = reseeded(value, offset, full, name + ".")
        elif f.name == "seed" and isinstance(value, int) and not name.startswith(MEASURE_SEEDS) \
                and (full or not name.startswith(PRETRAINING_SEEDS)):
            changes[f.name] = value + offset
    return dataclasses.replace(settings, **changes)


def replicate(run: Run, preset: Preset, seeds: int, full: bool = False) -> list[dict]:
    """`seeds` more runs of the recipe (after pretraining, or with `full` the whole pipeline), then the spread
    table of their headline metrics. Resumable: each child is a run the pipeline resumes."""
    if seeds < 1:
        raise LabError(f"--seeds must be at least 1, got {seeds}")
    for stage in ("base", "evals"):
        run.require(stage)
    stage_name = FULL_STAGE if full else STAGE
    root = run.stage_dir(stage_name)
    extra = {preset.seed + i: reseeded(preset, i, full) for i in range(1, seeds + 1)}
    for seed, child_preset in extra.items():
        child = root / f"seed-{seed}"
        for stage in () if full else SHARED:
            link = child / stage
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(os.path.relpath(run.stage_dir(stage), link.parent), target_is_directory=True)
        pipeline.run_pipeline(child_preset, root, f"seed-{seed}", until="evals")
    runs = {preset.seed: run} | {seed: Run.open_existing(root / f"seed-{seed}") for seed in extra}
    rows = spread(runs)
    claims = claims_across(runs)
    write_json(root / "summary.json", {"seeds": list(runs), "full": full, "rows": rows, "claims": claims})
    (root / "claims.md").write_text(claims_across_markdown(runs, claims) + "\n")
    (root / "table.md").write_text(table_markdown(rows, list(runs)) + "\n")
    run.mark_complete(stage_name, {"seeds": list(runs)})
    return rows


def spread(runs: dict[int, Run]) -> list[dict]:
    """For each (stage, suite, headline metric): the value per seed, their mean and standard deviation, and
    the first run's 95% CI half-width over items, for comparison."""
    rows = []
    for stage in EVAL_STAGES:
        for suite, metrics in headline_metrics().items():
            results = {s: r.stage_dir(stage) / "evals" / suite / "results.json" for s, r in runs.items()}
            if not all(p.exists() for p in results.values()):
                continue
            loaded = {s: read_json(p)["metrics"] for s, p in results.items()}
            for metric in metrics:
                values = {s: m[metric]["value"] for s, m in loaded.items() if metric in m and m[metric]["n"]}
                if len(values) != len(runs) or any(v is None or math.isnan(v) for v in values.values()):
                    continue
                mean = sum(values.values()) / len(values)
                sd = math.sqrt(sum((v - mean) ** 2 for v in values.values()) / (len(values) - 1)) if len(values) > 1 else 0.0
                first = next(iter(loaded.values()))[metric]
                low, high = first["ci95"]
                rows.append({"stage": stage, "suite": suite, "metric": metric, "values": values, "mean": mean,
                             "sd": sd, "item_ci_half_width": (high - low) / 2 if low is not None else None})
    return rows


def table_markdown(rows: list[dict], seeds: list[int]) -> str:
    head = ["stage", "suite", "metric", *(f"seed {s}" for s in seeds), "mean ± sd (seeds)", f"± item CI (seed {seeds[0]})"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        ci = f"±{r['item_ci_half_width']:.3f}" if r["item_ci_half_width"] is not None else "–"
        lines.append(f"| {r['stage']} | {r['suite']} | {r['metric']} | "
                     + " | ".join(f"{r['values'][s]:.3f}" for s in seeds) + f" | {r['mean']:.3f} ± {r['sd']:.3f} | {ci} |")
    return "\n".join(lines)
