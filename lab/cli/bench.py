"""`lab bench`: speed and memory as ratios against the field's reference code."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from lab.cli.options import PresetOpt, SetOpt, console, preset_named
from lab.errors import LabError

bench_app = typer.Typer(no_args_is_help=True, help="Speed as ratios against the field's reference code.")


@bench_app.command("train")
def bench_train(preset: str = PresetOpt, set: list[str] = SetOpt, steps: int = 20,
                device: str = typer.Option("auto", help="auto, cpu or cuda")):
    """Training tokens/s: labgpt vs transformers' LlamaForCausalLM of the same shape (goal >= 1.0)."""
    from lab.experiments.bench import bench_train as run

    result = run(preset_named(preset, set), steps=steps, device=device)
    tps = result["tokens_per_s"]
    console.print(f"{result['device']}  {result['parameters']:,} parameters  batch {result['batch']} x {result['seq_len']}")
    for name, value in tps.items():
        mem = result["memory"][name]
        console.print(f"  {name:8s} {value:12,.0f} tokens/s   activations {mem['activation_mb']:.0f} MB"
                      + (f"   peak {mem['peak_allocated_mb']:.0f} MB" if "peak_allocated_mb" in mem else ""))
    console.print(f"  ratio labgpt/llama = {result['ratio']:.2f}  (goal >= 1.0)")
    if result["mfu"]:
        console.print("  MFU " + ", ".join(f"{k} {v:.1%}" for k, v in result["mfu"].items()))


@bench_app.command("generate")
def bench_generate(preset: str = PresetOpt, set: list[str] = SetOpt,
                   model: Optional[Path] = typer.Option(None, help="RUN/STAGE (default: a random model of the preset's shape)"),
                   batches: str = typer.Option("1,16", help="batch sizes, e.g. 1,16"), new_tokens: int = 128,
                   device: str = typer.Option("auto")):
    """Generation tokens/s: our engine vs HF generate on the exported Llama of the same weights (what a user
    would pick instead; goal >= 2 at batch 16), with HF generate on labgpt itself beside it."""
    from lab.experiments.bench import bench_generate as run

    sizes = _batch_sizes(batches)
    loaded = None
    if model is not None:
        from lab.model.loading import load_model_and_tokenizer

        loaded, _ = load_model_and_tokenizer(model)
    for batch in sizes:
        result = run(model=loaded, preset=preset_named(preset, set), batch=batch, new_tokens=new_tokens, device=device)
        console.print(f"{result['device']}  batch {batch}, {result['prompt_len']}-token prompts, {new_tokens} new tokens")
        for name, value in result["tokens_per_s"].items():
            console.print(f"  {name:20s} {value:12,.0f} tokens/s")
        console.print(f"  ratio engine / HF generate on Llama = {result['ratio']:.2f}  (goal >= 2); "
                      f"engine / HF generate on labgpt = {result['ratio_vs_labgpt_hf']:.2f}; "
                      f"identical greedy tokens: {result['same_greedy_tokens']}")


@bench_app.command("all")
def bench_all(preset: str = PresetOpt, set: list[str] = SetOpt,
              out: Path = typer.Option(..., help="the JSON to write, e.g. reports/bench/cpu-tiny.json"),
              batches: str = typer.Option("1,16", help="generation batch sizes"), device: str = typer.Option("auto")):
    """Every bench (train, generate at each batch, verify) into one JSON, with the machine and versions:
    what `lab bench table` renders into the README."""
    from lab.experiments.bench import bench_all as run
    from lab.runs import write_json

    result = run(preset_named(preset, set), batches=_batch_sizes(batches), device=device)
    write_json(out, result)
    console.print(f"wrote {out}")


@bench_app.command("table")
def bench_table(results: list[Path] = typer.Argument(..., help="JSON files from `lab bench all` (or scripts/gpu_check.sh)"),
                readme: Optional[Path] = typer.Option(None, help="rewrite this file's perf-table block, e.g. README.md")):
    """Render the performance table from bench JSON files; with --readme, write it into the README."""
    from lab.experiments.bench import perf_rows, replace_perf_block
    from lab.runs import read_json, write_text_atomic

    missing = [str(p) for p in results if not p.exists()]
    if missing:
        raise LabError(f"no such bench file: {', '.join(missing)}")
    try:
        table = perf_rows([read_json(p) for p in results])
    except (KeyError, TypeError, ValueError) as error:  # ValueError: not JSON at all
        raise LabError(f"not a `lab bench all` result ({error}); make one with lab bench all --out FILE") from None
    if readme is None:
        console.print(table)
        return
    try:
        write_text_atomic(readme, replace_perf_block(readme.read_text(), table))
    except (OSError, ValueError) as error:
        raise LabError(str(error)) from None
    console.print(f"updated the performance table in {readme}")


def _batch_sizes(batches: str) -> list[int]:
    try:
        sizes = [int(b) for b in batches.split(",")]
    except ValueError:
        raise LabError(f"--batches must be whole numbers like 1,16, got '{batches}'") from None
    if not sizes or min(sizes) < 1:
        raise LabError(f"--batches must be positive, got '{batches}'")
    return sizes


@bench_app.command("verify")
def bench_verify(checks: int = typer.Option(2000, "--checks", help="how many (response, gold) pairs"),
                 samples: Optional[Path] = typer.Option(
                     None, help="a math suite samples.jsonl to draw real responses from, "
                                "e.g. runs/tiny/sft/evals/math/samples.jsonl"),
                 cases: Optional[list[Path]] = typer.Option(
                     None, help="labelled answer pairs (JSONL: prediction, gold, equal), e.g. "
                                "tests/fixtures/verifier_cases/dev.jsonl; repeat for several sets: agreement and "
                                "checks/s for the lab's verifier and math-verify side by side, set by set")):
    """Math verifier checks per second on one core, and the slowest single check (goals >= 1,000/s, <= 2 s);
    with --cases, agreement with labelled pairs beside math-verify's, and the same on GSM8K-style solutions."""
    from lab.experiments.bench import bench_verify as run

    if samples is not None and not samples.exists():
        raise LabError(f"{samples} does not exist")
    if cases:
        return _verify_cases(cases, checks)
    r = run(checks, samples)
    console.print(f"  {r['checks']:,} checks in {r['seconds']:.2f} s on one worker: "
                  f"{r['checks_per_s_per_core']:,.0f} checks/s/core (goal >= 1,000)")
    console.print(f"  settled in-process (exact numbers): {r['settled_in_process']:.0%}; the rest through sympy at "
                  f"{r['sympy_checks_per_s_per_core'] or 0:,.0f} checks/s/core")
    console.print(f"  verdicts: {r['reasons']}")
    console.print(f"  slowest single check {r['slowest_s'] * 1000:.1f} ms (goal <= 2 s), hostile inputs included")


def _verify_cases(paths: list[Path], checks: int) -> None:
    from lab.experiments.bench import bench_verify_cases, load_cases, mix_cases

    sets = [(str(path), load_cases(path)) for path in paths]  # every file read before any is benched
    for title, cases in sets + [(f"{checks:,} GSM8K-style solutions (generated, a third wrong)", mix_cases(checks))]:
        r = bench_verify_cases(cases)
        table = Table("verifier", "agreement", "equal accepted", "not-equal rejected", "checks/s (one core)",
                      title=f"{title}: {r['cases']} pairs")
        for name, a in (("lab (rewards/verifier.py)", r["ours"]), ("math-verify", r["math_verify"])):
            if a is None:
                table.add_row(name, "not installed", "", "", "")
            elif "error" in a:
                table.add_row(name, f"failed: {a['error']}", "", "", "")
            else:
                table.add_row(f"{name} {a.get('version', '')}".strip(), f"{a['agreement']:.3f}",
                              f"{a['positives_accepted']:.3f}", f"{a['negatives_rejected']:.3f}",
                              f"{a['checks_per_s']:,.0f}")
        console.print(table)
        mv = r["math_verify"]
        if mv and "checks_per_s" in mv:
            console.print(f"  lab / math-verify speed: {r['ours']['checks_per_s'] / mv['checks_per_s']:.1f}x; "
                          f"slowest single check {r['ours']['slowest_s'] * 1000:.1f} ms")
        wrong = r["ours"]["wrong"]
        if wrong:
            console.print(f"  the lab's verifier disagrees with the label on: {', '.join(wrong[:20])}"
                          + (" ..." if len(wrong) > 20 else ""))
