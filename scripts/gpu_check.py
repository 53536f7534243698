#!/usr/bin/env python3
"""The GPU check's Python half (scripts/gpu_check.sh installs what it needs, then runs it): every stage of the
gpu preset's pipeline, cut to 200 pretraining steps (of 1,200) and about 20 steps of each later stage, then
`lab bench train`, `generate` and `verify`, all written to ONE JSON (rewritten after every piece, so a run
cut short still leaves what it measured):

- per stage: seconds, steps, seconds per step, and the stage's time extrapolated to the gpu preset's full step
  counts (and full eval sizes); their sum is the whole pipeline's extrapolated time;
- pretraining: tokens/s and MFU after the first (compiling) interval, parameters, vocabulary;
- the benches, as `lab bench all` writes them (so `lab bench table` renders this file too): tokens/s, the
  labgpt/Llama training ratio and MFU, engine/HF-generate ratios at batch 1 and 16, the verifier's speed;
- torch, transformers, TRL and datasets versions, Python, the GPU's name.

    python3 scripts/gpu_check.py --out DIR               # on a GPU machine (what gpu_check.sh runs)
    .venv/bin/python scripts/gpu_check.py --out DIR --dry-run   # here: the same sequence on CPU at a tiny shape
    python3 scripts/gpu_check.py --table DIR/gpu_check.json     # Markdown rows from a finished check (README)

What the check cuts, and how it scales back: a trained stage's steps beyond those it ran cost its measured
seconds per step; the parts that only generate are timed on their own (PARTS) and scale with what was cut
(sft-idk's probe with its samples per question, rl-math's held-out grading with its answers, rlhf-methods with
its prompts and the policies it judges); evals scale per suite with the suite's sample count (the check
evaluates `evals.limit` of each). The rest (data, tokenizer, the knowledge probe, sampling the preferences,
the rm and dpo stages, the report) runs at full size and counts as measured. Stages stop starting when the
time budget (BUDGET_S, less the benches' reserve) is spent; the JSON names what was skipped.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import shutil
import sys
import time
import traceback
from pathlib import Path

from lab.presets import get_preset
from lab.runs import Run, package_versions
from lab.stage_names import BASE, KNOWLEDGE, RL_MATH, RLHF_METHODS, SFT_IDK
from lab.stages import STAGES, by_name, stage_settings
from lab.stages import eval_suites as evaluated

# torch and the modules that load it (lab.pipeline, evals.harness, lab.experiments.bench, lab.model.tokenizer) are
# imported inside the functions: main() first sets the offline variables transformers and datasets read at import.
from tasks.chat import conversation_count

STEPS = 20  # training steps of each stage after pretraining
# The parts of stages that generate (module, function), timed apart: where a stage's time goes.
PARTS = {
    KNOWLEDGE: ("evals.knowledge", "probe"),
    SFT_IDK: ("lab.train.sft", "probe_known"),
    RL_MATH: ("lab.train.rl_math", "heldout_accuracy"),
    "rm": ("rewards.preferences", "build_preferences"),
    RLHF_METHODS: ("lab.experiments.rlhf_methods", "sample_and_score"),
}
# The dry run: the gpu preset at a tiny shape with the data cut to the least every stage accepts
# (as tests/test_gpu_preset.py cuts it), a couple of steps a stage; the same code path, in about a minute.
# Sizes only: the steps come from DRY_STEPS, so the dry run extrapolates to the gpu preset's step counts too.
DRY_RUN = [
    "model.hidden_size=64", "model.num_hidden_layers=2", "model.num_attention_heads=4", "model.num_key_value_heads=2",
    "tokenizer.vocab_size=600", "data.world.people_per_exposure=2", "data.world.exposures=0,16",
    "data.corpus.narratives=20", "data.corpus.heldout_docs=4", "data.corpus.extra_sources=math:20,spelling:20",
    "pretrain.seq_len=32", "pretrain.batch_size=4", "pretrain.grad_accum=1", "pretrain.warmup_steps=2",
    "pretrain.eval_every=10", "pretrain.eval_batches=1", "pretrain.log_every=5",
    "pretrain.ckpt_every=10", "sample.max_new_tokens=4",
    "sft.batch_size=2", "sft.mixture.qa=4", "sft.mixture.math=1", "sft.mixture.spelling=1", "sft.mixture.tool_use=1",
    "sft.mixture.identity=1", "sft.mixture.context=1", "sft.probe_samples=1",
    "math_sft.batch_size=2", "rl.num_generations=2", "rl.batch_size=2", "rl.max_completion_length=4",
    "rl.train_problems=4", "rl.eval_problems=2", "rl.eval_samples=1",
    "rm.pairs=8", "rm.samples_per_prompt=2", "rm.max_new_tokens=4", "rm.heldout_share=0.5", "rm.epochs=1",
    "rm.batch_size=2", "dpo.epochs=1", "dpo.batch_size=2",
    "rlhf.num_generations=2", "rlhf.batch_size=2", "rlhf.max_completion_length=4", "rlhf.snapshot_every=1",
    "ppo.batch_size=2", "ppo.minibatch_size=2", "ppo.ppo_epochs=1", "ppo.max_completion_length=4",
    "ppo.snapshot_every=1", "rlhf_methods.prompts=2", "rlhf_methods.max_new_tokens=4", "rlhf_methods.batch_size=2",
    "evals.limit=2", "evals.max_new_tokens=4",
]
DRY_STEPS = {"pretrain": 20, "later": 2}
DRY_RUN_HIDES = ("wordfreq",)  # absent on the GPU machine: the dry run must do without it too
BENCH_RESERVE_S = {"gpu": 150, "dry": 20}  # time kept for the benches when the stages run late
BUDGET_S = {"gpu": 390, "dry": 600}  # gpu: scripts/gpu_check.sh promises 7 minutes wall, install included


def error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def overrides(dry: bool) -> list[str]:
    """The check's `--set` overrides of the gpu preset (the dry run's tiny shape and data last, so they win).
    Stages set by epochs or problem counts get what makes about STEPS steps at the gpu preset's batch sizes."""
    # each stage declares what the check cuts (lab/stages.py): step counts and sample counts only
    steps = DRY_STEPS["later"] if dry else STEPS
    cuts = {s.name: s.gpu_check for s in STAGES}
    if dry:
        cuts[BASE] = (f"pretrain.max_steps={DRY_STEPS['pretrain']}",)
    items = [item.format(n=steps) for cut in cuts.values() for item in cut] + (DRY_RUN if dry else [])
    gpu = get_preset("gpu", items)
    per_epoch = math.ceil(conversation_count(gpu.sft.mixture) / (gpu.sft.batch_size * gpu.sft.grad_accum))
    replay = steps * gpu.math_sft.batch_size // 4
    problems = math.ceil((steps * gpu.math_sft.batch_size - replay) / len(gpu.math_sft.forms))  # each in every form
    return items + [f"sft.epochs={steps / per_epoch:.4f}", f"math_sft.replay={replay}", f"math_sft.problems={problems}"]


# ---------------------------------------------------------------- what each stage did, and at full size


def read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def pretrain_speed(stage_dir: Path) -> dict:
    """Tokens/s and MFU from the training log, leaving out the first interval (compilation, warm-up)."""
    rows = [r for r in map(json.loads, (stage_dir / "logs" / "train.jsonl").read_text().splitlines())
            if "tokens_per_s" in r]
    steady = rows[1:] or rows
    tps = sorted(r["tokens_per_s"] for r in steady)
    mfu = sorted(r["mfu"] for r in steady if "mfu" in r)
    return {"tokens_per_s": tps[len(tps) // 2], "mfu": mfu[len(mfu) // 2] if mfu else None,
            "tokens_per_s_first_interval": rows[0]["tokens_per_s"] if rows else None}


def policies_judged(p) -> int:
    """Policies rlhf-methods evaluates: sft-idk, dpo, and along each RL stage its snapshots, then its end."""
    def path(steps: int, every: int) -> int:
        return len(range(every, steps, every)) + 1 if every else 1

    return 2 + 2 * path(p.rlhf.steps, p.rlhf.snapshot_every) + path(p.ppo.steps, p.ppo.snapshot_every)


def trained(name: str, preset):
    """A trained stage's settings (they know the steps the stage takes: planned_steps), or None."""
    stage = by_name().get(name)
    settings = stage_settings(stage, preset) if stage is not None else None
    return settings if hasattr(settings, "planned_steps") else None


def full_steps(name: str, summary: dict, full) -> int:
    """The steps a trained stage takes with the gpu preset's own settings."""
    return trained(name, full).planned_steps(summary)


def part_scale(name: str, preset, full) -> float:
    """How much more the timed part of a stage (PARTS) generates at full size than in the check."""
    if name == SFT_IDK:
        return full.sft.probe_samples / preset.sft.probe_samples
    if name == RL_MATH:
        def answers(rl):
            return rl.eval_problems * (1 + rl.eval_samples)
        return answers(full.rl) / answers(preset.rl)
    if name == RLHF_METHODS:
        return full.rlhf_methods.prompts / preset.rlhf_methods.prompts
    return 1.0  # run at full size


def stage_record(run, name: str, seconds: float, part_s: float | None, preset, full) -> dict:
    """What a finished stage did (steps, seconds per step, its generating part) and its time at full size."""
    out = run.stage_dir(name)
    summary = read(out / "summary.json")
    record: dict = {"seconds": round(seconds, 2)}
    extrapolated = seconds
    if part_s is not None:  # the generating part, scaled to what the full stage generates
        scale = part_scale(name, preset, full)
        record["parts"] = {".".join(PARTS[name]): {"seconds": round(part_s, 2), "full_scale": round(scale, 3)}}
        extrapolated += part_s * (scale - 1)
    if name == "base":
        cfg = preset.pretrain
        record.update(pretrain_speed(out), parameters=summary.get("parameters"),
                      tokens_per_step=cfg.batch_size * cfg.seq_len * cfg.grad_accum,
                      final_loss=summary.get("final_loss"), heldout_loss=summary.get("heldout_loss"))
        steps, per_step = cfg.max_steps, record["tokens_per_step"] / record["tokens_per_s"]
    elif trained(name, preset) is not None:
        steps, train_s = summary.get("steps") or 0, summary.get("seconds") or 0.0
        per_step = train_s / max(1, summary.get("steps_this_session", steps))
        record["train_seconds"] = round(train_s, 2)
    elif name == RLHF_METHODS:  # every judged policy costs alike
        record["policies_judged"] = policies_judged(preset)
        extrapolated *= policies_judged(full) / policies_judged(preset)
        steps = None
    elif name == "evals":
        record["suites"] = suites = eval_suites(run)
        extrapolated += sum(s["extrapolated_s"] - s["seconds"] for s in suites.values())
        steps = None
    else:
        steps = None
    if steps is not None:
        record.update(steps=steps, seconds_per_step=round(per_step, 4), full_steps=full_steps(name, summary, full))
        extrapolated += max(0, record["full_steps"] - steps) * per_step
    record["extrapolated_s"] = round(extrapolated, 2)
    return record


def eval_suites(run) -> dict:
    """Seconds and samples of every suite the evals stage ran, and its time on all of the suite's samples."""
    from evals.harness import SUITES, context_for
    out, sizes = {}, {}
    for stage in evaluated():
        for path in sorted((run.stage_dir(stage) / "evals").glob("*/results.json")):
            r = json.loads(path.read_text())
            if r["suite"] not in sizes:
                sizes[r["suite"]] = len(SUITES[r["suite"]].samples(context_for(run.stage_dir(stage))))
            per_sample = r["seconds"] / max(1, r["computed"])
            out[f"{stage}/{r['suite']}"] = {"seconds": round(r["seconds"], 2), "n": r["computed"],
                                            "full_n": sizes[r["suite"]],
                                            "extrapolated_s": round(per_sample * sizes[r["suite"]], 2)}
    return out


class timed_part:
    """Times one stage's PARTS function while the stage runs (the module attribute is wrapped, then restored)."""

    def __init__(self, stage: str):
        self.target, self.seconds = PARTS.get(stage), None

    def __enter__(self):
        if self.target:
            module = importlib.import_module(self.target[0])
            self.module, self.original = module, getattr(module, self.target[1])
            self.seconds = 0.0

            def wrapper(*args, **kwargs):
                t0 = time.perf_counter()
                try:
                    return self.original(*args, **kwargs)
                finally:
                    self.seconds += time.perf_counter() - t0

            setattr(module, self.target[1], wrapper)
        return self

    def __exit__(self, *exc):
        if self.target:
            setattr(self.module, self.target[1], self.original)


# ---------------------------------------------------------------- the check


class Check:
    """The run, the JSON being filled, and the clock."""

    def __init__(self, out: Path, dry: bool, budget_s: float):
        self.out, self.dry, self.t0 = out, dry, time.perf_counter()
        self.budget_s, self.reserve_s = budget_s, BENCH_RESERVE_S["dry" if dry else "gpu"]
        self.result: dict = {"mode": "dry-run (CPU, tiny shape)" if dry else "gpu", "started": time.strftime("%F %T"),
                             "extrapolation": "the dry run's sizes at the gpu preset's step counts: a check of the "
                                              "code, no estimate" if dry else "the gpu preset's full step counts "
                                              "and sample sizes (see scripts/gpu_check.py)",
                             "environment": environment(), "stages": {}, "errors": {}}
        self.save()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def save(self) -> None:
        self.result["elapsed_s"] = round(self.elapsed(), 1)
        path = self.out / "gpu_check.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.result, indent=2, default=str) + "\n")
        os.replace(tmp, path)

    def failed(self, what: str, e: BaseException) -> None:
        self.result["errors"][what] = f"{type(e).__name__}: {e}"
        print(f"  ! {what} failed: {type(e).__name__}: {e}", flush=True)
        traceback.print_exc()
        self.save()


def environment() -> dict:
    import torch

    env = {"python": platform.python_version(), **package_versions(), "cuda": torch.version.cuda,
           "cpu_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        env.update(gpu=torch.cuda.get_device_name(0), gpu_memory_gb=round(torch.cuda.get_device_properties(0).total_memory
                                                                           / 2**30, 1))
    return env


def run_stages(check: Check, runs_dir: Path) -> None:
    from lab.pipeline import run_stage

    items = overrides(check.dry)
    preset, full = get_preset("gpu", items), get_preset("gpu", DRY_RUN if check.dry else [])
    check.result["overrides"] = items
    shutil.rmtree(runs_dir / "gpu-check", ignore_errors=True)  # always a fresh run: complete stages would be skipped
    run = Run.create_or_open(runs_dir / "gpu-check", preset)
    for stage in STAGES:
        missing = [p for p in stage.parents if not run.is_complete(p)]
        if missing:
            check.result["stages"][stage.name] = {"skipped": f"parent stage(s) {', '.join(missing)} did not finish"}
            continue
        if check.elapsed() > check.budget_s - check.reserve_s:
            check.result["stages"][stage.name] = {"skipped": f"time budget ({check.budget_s:.0f} s) spent"}
            continue
        print(f"→ {stage.name}  ({check.elapsed():.0f} s so far)", flush=True)
        t0 = time.perf_counter()
        try:
            with timed_part(stage.name) as part:
                run_stage(stage, run, preset)
        except Exception as e:  # LabError or a bug: recorded, and the stages that need this one are skipped
            check.failed(stage.name, e)
            continue
        seconds = time.perf_counter() - t0
        try:
            check.result["stages"][stage.name] = stage_record(run, stage.name, seconds, part.seconds, preset, full)
        except Exception as e:  # the stage ran; only its record could not be read
            check.result["stages"][stage.name] = {"seconds": round(seconds, 2)}
            check.failed(f"{stage.name} (record)", e)
        print(f"✓ {stage.name}  {seconds:.1f} s", flush=True)
        if stage.name == "tokenizer":
            from lab.model.tokenizer import load_tokenizer

            check.result["vocab_size"] = len(load_tokenizer(run.stage_dir("tokenizer")))
        check.save()
    done = check.result["stages"]
    check.result["pipeline_extrapolated_s"] = round(sum(s.get("extrapolated_s", 0) for s in done.values()), 1)
    check.result["stages_missing"] = [s.name for s in STAGES if "extrapolated_s" not in done.get(s.name, {})]
    check.result["pipeline_complete"] = not check.result["stages_missing"]  # else the sum leaves those out
    check.save()


def run_benches(check: Check) -> None:
    """`lab bench train`, `lab bench generate` and `lab bench verify`, through the functions those commands call,
    kept in `lab bench all`'s shape (machine, preset, train, generate by batch, verify): `lab bench table` renders
    the README's performance rows from this JSON as from its own."""
    from lab.experiments.bench import bench_generate, bench_train, bench_verify, machine
    preset = get_preset("gpu", DRY_RUN if check.dry else [])
    device = "cpu" if check.dry else "auto"
    steps, batches, checks = (2, (1, 2), 50) if check.dry else (20, (1, 16), 2000)
    r = check.result
    r.update(machine=machine(), preset=preset.name, generate={})
    pieces = [("train", "lab bench train", lambda: bench_train(preset, steps=steps, device=device))]
    pieces += [(str(b), f"lab bench generate, batch {b}",
                lambda b=b: bench_generate(preset=preset, batch=b, new_tokens=8 if check.dry else 128, device=device))
               for b in batches]
    pieces += [("verify", "lab bench verify", lambda: bench_verify(checks))]
    for key, what, bench in pieces:
        print(f"→ {what}  ({check.elapsed():.0f} s so far)", flush=True)
        t0 = time.perf_counter()
        try:
            result = bench()
        except Exception as e:
            check.failed(what, e)
            continue
        result["seconds"] = round(time.perf_counter() - t0, 1)
        if key in ("train", "verify"):
            r[key] = result
        else:
            r["generate"][key] = result
        check.save()


def table(path: Path) -> str:
    """Markdown rows for the README from a finished check's JSON (never typed by hand): the benches as
    `lab bench table` renders them, then pretraining, each stage's seconds per step and the whole pipeline."""
    from lab.experiments.bench import perf_rows

    r = json.loads(path.read_text())
    if "stages" not in r:
        error(f"{path} is not a gpu_check.json (it has no stages)")
    env = r["environment"]
    where = f"{env.get('gpu') or 'CPU'}, torch {env.get('torch')}, transformers {env.get('transformers')}"
    lines = [perf_rows([r]), ""] if "train" in r and r.get("generate") else []
    lines += ["| gpu preset, measured by scripts/gpu_check.sh | value | hardware, versions |", "|---|---|---|"]
    base = r["stages"].get("base", {})
    if "tokens_per_s" in base:
        mfu = f", MFU {base['mfu']:.1%}" if base.get("mfu") else ""
        lines.append(f"| pretraining ({base.get('parameters', 0) / 1e6:.1f}M parameters, "
                     f"{base['tokens_per_step']:,} tokens a step) | {base['tokens_per_s']:,.0f} tokens/s{mfu} | {where} |")
    for name, s in r["stages"].items():
        if "seconds_per_step" in s:
            lines.append(f"| {name}: seconds per step ({s['steps']} of {s['full_steps']} steps run) "
                         f"| {s['seconds_per_step']:.3f} s | {where} |")
    if "pipeline_extrapolated_s" in r:
        missing = f" (without {', '.join(r['stages_missing'])})" if r.get("stages_missing") else ""
        lines.append(f"| the whole pipeline, extrapolated to the preset's full steps{missing} "
                     f"| {r['pipeline_extrapolated_s'] / 60:.1f} min | {where} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="folder for gpu_check.json (the device tool's $OUT)")
    parser.add_argument("--dry-run", action="store_true", help="on CPU at a tiny shape (checks the script here)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="the check's run goes to RUNS_DIR/gpu-check")
    parser.add_argument("--budget-s", type=float, default=None, help="stop starting stages after this many seconds")
    parser.add_argument("--table", type=Path, help="print Markdown rows from a finished check's JSON, and stop")
    args = parser.parse_args()
    if args.table:
        if not args.table.is_file():
            error(f"{args.table} does not exist")
        print(table(args.table))
        return
    if args.out is None:
        error("--out DIR is required (the folder gpu_check.json goes to)")
    if args.dry_run:
        for name in DRY_RUN_HIDES:
            sys.modules[name] = None  # `import wordfreq` raises ImportError, as on the GPU machine
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded; the GPU machine has no network
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        error("no CUDA GPU found; run with --dry-run for the CPU check")
    args.out.mkdir(parents=True, exist_ok=True)
    mode = "dry" if args.dry_run else "gpu"
    check = Check(args.out, args.dry_run, args.budget_s or BUDGET_S[mode])
    run_stages(check, args.runs_dir)
    run_benches(check)
    check.result["finished"] = time.strftime("%F %T")
    check.save()
    print(f"wrote {args.out / 'gpu_check.json'} after {check.elapsed():.0f} s; "
          f"whole pipeline extrapolated: {check.result.get('pipeline_extrapolated_s', 0) / 60:.1f} min; "
          f"errors: {len(check.result['errors'])}")
    print(table(args.out / "gpu_check.json"))
    sys.exit(1 if check.result["errors"] else 0)


if __name__ == "__main__":
    main()
