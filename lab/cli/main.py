"""The `lab` command line (typer + rich). Every command turns bad input into one `error:` line.

This file holds the run-level commands; `lab rl` and `lab experiment` live in lab/cli/experiments.py and
`lab bench` in lab/cli/bench.py."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from lab.cli.bench import bench_app
from lab.cli.experiments import experiment_app, rl_app
from lab.cli.options import NameOpt, PresetOpt, RunsOpt, SetOpt, console, preset_named
from lab.errors import LabError, disk_full
from lab.run_lock import run_lock
from lab.stage_files import run_root_of

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="An RL-for-reasoning and hallucination-study lab on a model we build ourselves.")
app.add_typer(bench_app, name="bench")
app.add_typer(rl_app, name="rl")
inspect_app = typer.Typer(no_args_is_help=True, help="Look inside a model: embeddings and attention.")
app.add_typer(inspect_app, name="inspect")
app.add_typer(experiment_app, name="experiment")


@app.command()
def pipeline(preset: str = PresetOpt, name: Optional[str] = NameOpt, set: list[str] = SetOpt,
             runs_dir: Path = RunsOpt, until: Optional[str] = typer.Option(None, help="stop after this stage"),
             redo: list[str] = typer.Option([], "--redo", help="run this stage again although complete (repeatable)")):
    """Run every stage into runs/<name>/ (complete stages are skipped; a killed run resumes)."""
    from lab.pipeline import run_pipeline

    run = run_pipeline(preset_named(preset, set), runs_dir, name, until, force=tuple(redo))
    report = run.stage_dir("report") / "report.md"
    if report.exists():
        console.print(f"report: {report}  (and report.html)")


@app.command()
def pretrain(preset: str = PresetOpt, name: Optional[str] = NameOpt, set: list[str] = SetOpt, runs_dir: Path = RunsOpt,
             restart: bool = typer.Option(False, help="ignore the last checkpoint and start over"),
             stop_at: Optional[int] = typer.Option(None, help="stop after this step, as if killed (resume later)")):
    """Data, tokenizer and base-model pretraining; resumes from the last checkpoint by default."""
    from lab.pipeline import run_pipeline
    from lab.presets import stage_context
    from lab.runs import Run
    from lab.stage_names import BASE
    from lab.train.pretrain import pretrain as run_pretrain

    cfg = preset_named(preset, set)
    root = Path(runs_dir) / (name or cfg.name)
    with run_lock(root):
        if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 builds the data and tokenizer
            run_pipeline(cfg, runs_dir, name, until="tokenizer")
        else:
            _wait_for(lambda: Run(root).is_complete("tokenizer"), what=f"rank 0 to prepare {root}")
        result = run_pretrain(cfg.pretrain, stage_context(Run(root), cfg).at(BASE), stop_at=stop_at, restart=restart)
    console.print(f"step {result['step']}  loss {result['loss']:.4f}")


def _wait_for(ready, what: str, timeout_s: float = 3600) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise LabError(f"gave up after {timeout_s:.0f} s waiting for {what}")
        time.sleep(1)


@app.command()
def sample(stage: Path = typer.Argument(..., help="RUN/STAGE, e.g. runs/tiny/base"),
           prompt: list[str] = typer.Option([], "--prompt", help="prompt text (repeatable)"),
           max_new_tokens: int = 48, temperature: float = 0.8, top_k: int = 50, seed: int = 0):
    """Sample continuations from a stage's checkpoint."""
    from lab.model.engine import SamplingParams, generate_text
    from lab.model.loading import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(stage)
    prompts = prompt or ["Mira"]
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, seed=seed,
                            stop_token_ids=(tokenizer.eos_token_id,))
    for p, text in zip(prompts, generate_text(model, tokenizer, prompts, params)):
        console.print(f"[bold]{p}[/bold]{text}")


@app.command()
def chat(stage: Path = typer.Argument(..., help="RUN/STAGE, e.g. runs/tiny/sft-idk"),
         prompt: Optional[str] = typer.Option(None, "--prompt", help="answer one message and exit (for scripts)"),
         tools: bool = typer.Option(True, "--tools/--no-tools", help="let the model call python, calculator, lookup"),
         system: Optional[str] = typer.Option(None, help="system message (default: the run's identity)"),
         temperature: float = 0.0, max_new_tokens: int = 96, seed: int = 0):
    """Chat with a stage's checkpoint; tool calls run in the sandbox and show inline."""
    from lab.chat_session import ChatSession

    session = ChatSession(stage, tools=tools, system=system, temperature=temperature,
                          max_new_tokens=max_new_tokens, seed=seed)
    if prompt is not None:
        session.show(session.ask(prompt))
        return
    console.print(f"[dim]{stage}: empty line or Ctrl-D to quit; /reset starts over[/dim]")
    while True:
        try:
            message = console.input("[bold cyan]you>[/bold cyan] ")
        except EOFError:
            break
        if not message.strip():
            break
        if message.strip() == "/reset":
            session.reset()
            continue
        try:
            session.show(session.ask(message))
        except LabError as e:  # a message the model cannot take: main()'s one line, and the chat goes on without it
            Console(stderr=True).print(f"[bold red]error:[/bold red] {e}", highlight=False, soft_wrap=True)


@app.command()
def export(stage: Path = typer.Argument(..., help="RUN/STAGE to export"), out: Path = typer.Argument(...),
           format: str = typer.Option("llama", "--format", help="llama")):
    """Write a checkpoint plain transformers.LlamaForCausalLM loads (no trust_remote_code)."""
    from lab.model.export import export as run_export

    console.print(f"exported to {run_export(stage, out, format)}")


@app.command()
def status(run_dir: Path = typer.Argument(..., help="a run directory, e.g. runs/tiny"),
           verify: bool = typer.Option(False, "--verify", help="check every file's digest, not only its size, and "
                                                               "record digests for stages completed without them")):
    """Which stages of a run are complete, and whether their files are still what they wrote."""
    from lab.pipeline import STAGE_NAMES
    from lab.runs import Run
    from lab.stage_files import refresh, stage_damage

    run = Run.open_existing(run_dir)
    table = Table("stage", "state", "details")
    damaged = []
    for stage in STAGE_NAMES:
        if not run.is_complete(stage):
            table.add_row(stage, "started" if run.stage_dir(stage).exists() else "-", "")
            continue
        what = stage_damage(run.stage_dir(stage), digests=verify)
        if what:
            damaged.append(stage)
            table.add_row(stage, "[red]damaged[/red]", f"{what}; redo: lab pipeline --redo {stage}")
            continue
        if verify:  # a stage completed before manifests existed gains one
            refresh(run.stage_dir(stage), only_if_missing=True)
        info = run.completion(stage)
        table.add_row(stage, "complete", json.dumps({k: v for k, v in info.items() if k not in ("finished", "files")})[:80])
    console.print(table)
    if damaged:
        console.print(f"damaged: {', '.join(damaged)} (their files differ from what they wrote)")


@app.command()
def presets(name: Optional[str] = typer.Argument(None, help="show one preset's settings")):
    """List presets, or every setting of one (each can be overridden with --set)."""
    from lab.presets import PRESETS
    from lab.settings import field_paths

    if name is None:
        for key in PRESETS:
            console.print(key)
        return
    preset = preset_named(name, [])
    for path in field_paths(preset):
        value = preset
        for part in path.split("."):
            value = getattr(value, part)
        console.print(f"{path} = {value!r}")


@app.command()
def data(in_dir: Path = typer.Argument(..., help="folder of .html/.warc/.jsonl files"),
         out: Path = typer.Option(..., "--out", help="output folder")):
    """Clean a folder of web text: URL filter, extraction, language ID, quality, PII, dedup."""
    from tasks.webtext import run_pipeline as run_webtext

    report = run_webtext(in_dir, out)
    console.print(f"kept {report['documents_kept']} of {report['documents_in']} documents; "
                  f"report in {out / 'report.md'}; use it with --set data.source=files "
                  f"--set data.corpus_paths={out / 'dataset'}")


@app.command()
def report(runs: list[Path] = typer.Argument(..., help="one or more run directories"),
           out: Optional[Path] = typer.Option(None, "--out", help="default: RUN/report")):
    """Write report.md and a self-contained report.html for one run, or several side by side."""
    from lab.pipeline import STAGE_NAMES
    from lab.runs import Run
    from reports.report import write_report

    opened = [Run.open_existing(r) for r in runs]
    empty = [r.root for r in opened if not any(r.is_complete(s) for s in STAGE_NAMES if s != "report")]
    if empty:
        raise LabError(f"run {empty[0]} has no complete stage to report on; run `lab pipeline` first")
    target = out or opened[0].stage_dir("report")
    with run_lock(run_root_of(target) or target):  # into a run: that run's writer; elsewhere, only --out
        write_report(opened, target, STAGE_NAMES)
    console.print(f"report: {target / 'report.md'}")


@app.command("eval")
def eval_(targets: list[str] = typer.Argument(..., help="MODEL (RUN/STAGE or a HF causal-LM directory), "
                                                        "or: compare A B"),
          suite: str = typer.Option("all", "--suite", help="NAME[,NAME], all, or a suite file (.json/.jsonl/.tsv)"),
          limit: Optional[int] = typer.Option(None, help="evaluate a seeded random subset of N samples"),
          seed: int = 0, out: Optional[Path] = typer.Option(None, help="default: STAGE/evals or runs/external/NAME/evals"),
          samples: int = typer.Option(1, "--samples", "-k", help="sampled answers per prompt for pass@k (1 = greedy only)"),
          temperature: float = typer.Option(0.7, help="for the sampled answers"),
          fresh: bool = typer.Option(False, help="ignore finished results and the per-sample cache"),
          batch_size: int = typer.Option(64, help="prompts generated together (lower it to save memory)"),
          metric: str = typer.Option("hallucinated_unseen", help="for compare: the per-sample metric")):
    """`lab eval MODEL --suite ...` writes samples.jsonl + results.json per suite;
    `lab eval compare A B --suite S --metric M` gives the paired difference B - A."""
    if targets[0] == "compare":
        if len(targets) != 3:
            raise LabError("usage: lab eval compare A B [--suite S] [--metric M]")
        return _eval_compare(Path(targets[1]), Path(targets[2]), "hallucination" if suite == "all" else suite, metric)
    if len(targets) != 1:
        raise LabError("lab eval takes one MODEL (or: lab eval compare A B)")
    from evals.harness import context_for, default_out, model_fingerprint, resolve_suites, run_suite
    from lab.model.loading import load_model_and_tokenizer

    if samples < 1:
        raise LabError(f"--samples must be at least 1, got {samples}")
    if batch_size < 1:
        raise LabError(f"--batch-size must be at least 1, got {batch_size}")
    model = Path(targets[0])
    suites = resolve_suites(suite)
    loaded, tokenizer = load_model_and_tokenizer(model)
    context = context_for(model)
    target = out or default_out(model)
    with run_lock(run_root_of(target) or target):  # into a run: that run's writer; elsewhere, only --out
        for s in suites:
            results = run_suite(loaded, tokenizer, s, context, target, limit=limit, seed=seed, model_name=str(model),
                                fingerprint=model_fingerprint(model), samples_per_prompt=samples,
                                temperature=temperature, fresh=fresh, batch_size=batch_size)
            speed = f"{results['samples_per_s']:.0f} samples/s" if results["samples_per_s"] else "cached"
            table = Table(f"{s.name} (n={results['n']}, {speed})", "value", "95% CI")
            for name, m in results["metrics"].items():
                low, high = m["ci95"]
                table.add_row(name, f"{m['value']:.3f}", "" if low is None else f"[{low:.3f}, {high:.3f}]")
            if results["skipped_too_long"]:
                table.caption = f"{results['skipped_too_long']} samples skipped: prompt too long for the model's context"
            console.print(table)
    console.print(f"results in {target}")


def _eval_compare(a: Path, b: Path, suite: str, metric: str) -> None:
    from evals.harness import compare

    folder = lambda p: p / "evals" if (p / "evals").is_dir() else p  # noqa: E731
    r = compare(folder(a), folder(b), suite, metric)
    console.print(f"{suite}/{metric}: A {r['mean_a']:.3f}  B {r['mean_b']:.3f}  B-A {r['difference']:+.3f} "
                  f"[{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}] (paired, n={r['n']})")


@app.command()
def tokenize(text: str = typer.Argument(..., help="the text to tokenize"),
             tokenizer: Path = typer.Option(Path("runs/tiny"), "--tokenizer", "-t",
                                            help="a run, stage or tokenizer directory"),
             compare: Optional[Path] = typer.Option(None, help="a second tokenizer to show side by side"),
             table: bool = typer.Option(False, help="also list every token's id and bytes"),
             special: bool = typer.Option(False, help="match typed special tokens such as <|im_start|>")):
    """Show how a tokenizer cuts TEXT: boundaries in colour, ids, chars/token, and what the split hides."""
    from lab.model.inspect_tokens import compare_tokenizers, render_comparison, render_tokens, tokenize_view, tokenizer_from

    if not text:
        raise LabError("nothing to tokenize: TEXT is empty")
    first = tokenizer_from(tokenizer)
    if compare is None:
        render_tokens(tokenize_view(first, text, special), console, table=table)
    else:
        views = compare_tokenizers(first, tokenizer_from(compare), text, special)
        render_comparison(views, console, (str(tokenizer), str(compare)))


@inspect_app.command("embeddings")
def inspect_embeddings(stage: Path = typer.Argument(..., help="RUN/STAGE, e.g. runs/tiny/base"),
                       words: list[str] = typer.Argument(None, help="words to find neighbours of"),
                       k: int = typer.Option(10, "-k", "--k", help="neighbours per word"),
                       out: Optional[Path] = typer.Option(None, help="the map's PNG (default: STAGE/inspect/embeddings.png)")):
    """Nearest neighbours of WORDS by embedding cosine, and a 2-D map of world word groups (cities, fields, ...)."""
    from lab.model.inspect_model import embedding_map, nearest_words, render_embedding_map, render_neighbours
    from lab.model.loading import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(stage)
    for word in words or []:
        render_neighbours(nearest_words(model, tok, word, k=k), console)
    png = out or stage / "inspect" / "embeddings.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    render_embedding_map(embedding_map(model, tok, out_png=png), console)


@inspect_app.command("attention")
def inspect_attention(stage: Path = typer.Argument(..., help="RUN/STAGE, e.g. runs/tiny/base"),
                      text: str = typer.Argument(..., help="the text to attend over"),
                      layer: int = typer.Option(-1, help="the layer for the terminal table (negative: from the end)"),
                      out: Optional[Path] = typer.Option(None, help="the PNG (default: STAGE/inspect/attention.png)")):
    """Attention weights of every layer and head as heatmaps (PNG), the most attended tokens per position, and
    each head's induction score (attention from a repeated random sequence to the token after its first copy)."""
    from rich.table import Table

    from evals.eval_settings import ReadingSettings
    from evals.reading import induction_heads, induction_score
    from lab.model.inspect_model import attention_figure, attention_maps, render_top_attended, top_attended
    from lab.model.loading import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(stage)
    tokens, weights = attention_maps(model, tok, text)
    png = out or stage / "inspect" / "attention.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    attention_figure(tokens, weights, png)
    render_top_attended(tokens, top_attended(tokens, weights, layer), console, layer)
    heads, n = induction_heads(model), ReadingSettings().induction_length
    uniform = sum(1 / (q + 1) for q in range(n + 1, 2 * n + 1)) / n  # a head spreading attention evenly
    table = Table(title=f"Induction: attention to the token after the first copy (uniform {uniform:.3f}; "
                        f"induction score {induction_score(model)['score']:+.3f})")
    table.add_column("layer")
    for h in range(len(heads[0])):
        table.add_column(f"head {h}", justify="right")
    for i, row in enumerate(heads):
        table.add_row(str(i), *(f"{w:.2f}" for w in row))
    console.print(table)
    console.print(f"heatmaps: {png}")


def main() -> None:
    import warnings

    from lab.versions import untested_warning

    # deprecation notices from inside transformers/TRL are for their maintainers, not for a lab user's
    # terminal; tests/test_model.py makes them errors on the model's paths, so none goes unseen
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|trl)(\.|$)")
    untested = untested_warning()
    if untested and os.environ.get("RANK", "0") == "0":  # once per command, not once per torchrun rank
        Console(stderr=True).print(untested, style="yellow", highlight=False, soft_wrap=True)
    try:
        app()
    except LabError as e:
        Console(stderr=True).print(f"[bold red]error:[/bold red] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted; run the same command again to resume from the last checkpoint")
        sys.exit(130)
    except Exception as e:  # a full disk is the machine's state, not a bug: one line, as for bad input
        if not disk_full(e):
            raise
        Console(stderr=True).print(f"[bold red]error:[/bold red] the disk is full (or a file-size limit was hit): "
                                   f"{type(e).__name__}: {e}; free some space and run the same command, which "
                                   "resumes from the last checkpoint", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
