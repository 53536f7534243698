"""The stage graph and `lab pipeline`: every stage into one run directory, resumable.

A stage is a function (run, preset) -> None that reads its parents' folders and writes its own, and
marks itself complete last. Complete stages are skipped; a stage that fails stops the pipeline with
its name and the reason in one line, keeping every completed stage (and its own last checkpoint).
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console

from lab.errors import LabError, disk_full
from lab.presets import Preset
from lab.run_lock import run_lock
from lab.runs import Run, write_json
from lab.stage_files import check_whole

console = Console(stderr=True)


def stage_data(run: Run, preset: Preset) -> None:
    from tasks.corpus import build_corpus, load_text_files, save_corpus
    from tasks.world import build_world

    out = run.stage_dir("data")
    if preset.data.source == "world":
        train, heldout, manifest = build_corpus(build_world(preset.data.world), preset.data.corpus)
    elif preset.data.source == "files":
        if not preset.data.corpus_paths:
            raise LabError("data.source=files needs data.corpus_paths (files or folders of .txt/.jsonl/.parquet, "
                           "or a `lab data` output folder)")
        user_docs = load_text_files([Path(p) for p in preset.data.corpus_paths])
        split = max(1, len(user_docs) // 50)  # 2% of the user's documents for held-out loss
        train, heldout = user_docs[split:], user_docs[:split]
        manifest = {"source": "files", "paths": list(preset.data.corpus_paths), "documents": len(user_docs)}
    else:
        raise LabError(f"unknown data.source '{preset.data.source}'; valid: world, files")
    save_corpus(out, train, heldout, manifest)
    run.mark_complete("data", {"train_docs": len(train), "heldout_docs": len(heldout)})


def stage_tokenizer(run: Run, preset: Preset) -> None:
    from lab.model.tokenizer import save_tokenizer, train_tokenizer
    from tasks.corpus import load_corpus

    corpus = load_corpus(run.require("data"))
    tokenizer = train_tokenizer(
        (doc for doc in corpus["train"]["text"]),
        vocab_size=preset.tokenizer.vocab_size,
        min_frequency=preset.tokenizer.min_frequency,
        model_max_length=preset.model.max_position_embeddings,
    )
    save_tokenizer(tokenizer, run.stage_dir("tokenizer"))
    run.mark_complete("tokenizer", {"vocab_size": len(tokenizer)})


def stage_base(run: Run, preset: Preset) -> None:
    import json

    from lab.train.pretrain import pretrain

    pretrain(run, preset)
    samples = run.stage_dir("base") / "samples.jsonl"
    if samples.exists():  # the first look at what the model learned
        for line in samples.read_text().splitlines():
            row = json.loads(line)
            console.print(f"    [bold]{row['prompt']}[/bold]{row['completion']}", highlight=False)


def stage_knowledge(run: Run, preset: Preset) -> None:
    """What the base model knows (knowledge vs exposure) and whether it reads its context (reading.json:
    the induction score, per head, copy accuracy by kind and length, and open-book completion about people
    it never saw; evals/reading.py). A user corpus gets only the probes that need no world."""
    from evals.knowledge import run_probe
    from evals.reading import copy_accuracy, induction_heads, induction_score, open_book
    from lab.model.loading import load_model_and_tokenizer
    from tasks.corpus import load_corpus
    from tasks.world import build_world

    model, tokenizer = load_model_and_tokenizer(run.require("base"))
    probes = preset.reading
    reading = {"induction": induction_score(model, probes), "induction_heads": induction_heads(model, probes),
               "copy": copy_accuracy(model, tokenizer, probes)}
    summary = {"induction_score": reading["induction"]["score"],
               "copy_digits_8": next((r["accuracy"]["value"] for r in reading["copy"]
                                      if (r["kind"], r["length"]) == ("digits", 8)), None)}
    if preset.data.source == "world":
        rows = run_probe(model, tokenizer, build_world(preset.data.world), run.stage_dir(KNOWLEDGE))
        acc = {r["k"]: r["accuracy"]["value"] for r in rows if r["phrasing"] == "corpus"}
        top = max(acc)
        corpus = load_corpus(run.require("data"))["train"]
        fresh = frozenset(p for p, source in zip(corpus["person"], corpus["source"]) if source == "fresh_people")
        reading["open_book"] = open_book(model, tokenizer, probes, exclude=fresh)
        summary.update({"accuracy_k0": acc.get(0), f"accuracy_k{top}": acc[top],
                        **{f"open_book_{p}": v["accuracy"]["value"] for p, v in reading["open_book"].items()}})
    else:
        reading["skipped"] = ("Knowledge vs exposure and open-book completion are skipped: they ask about the "
                              "generated world's people, and this run pretrained on the user's own corpus "
                              "(data.source=files).")
    write_json(run.stage_dir(KNOWLEDGE) / "reading.json", reading)
    run.mark_complete(KNOWLEDGE, summary)


KNOWLEDGE = "experiments/knowledge"
RLHF_METHODS = "experiments/rlhf-methods"


def stage_sft(variant: str):
    def run_stage(run: Run, preset: Preset) -> None:
        from lab.train.sft import sft

        sft(run, preset, variant)

    return run_stage


# Each policy stage on every suite it could change, plus the ones it could break (hallucination, identity):
# the SFT stages on all of them, the RL stages on their own task and the regressions.
EVAL_SUITES = {
    "base": ("identity",),  # the control for "SFT makes an assistant": the same system message, no chat training
    "sft": None, "sft-idk": None,
    "sft-math": ("math", "hallucination"),  # hallucination: does practice on one task forget the rest?
    "rl-math": ("math", "hallucination", "identity"),
    "dpo": ("profile", "hallucination", "identity"),
    "rlhf-grpo": ("profile", "hallucination", "identity"),
    "rlhf-ppo": ("profile", "hallucination", "identity"),
}


def stage_evals(run: Run, preset: Preset) -> None:
    """The eval suites on every policy stage after base (EVAL_SUITES)."""
    from evals.harness import SUITES, context_for, model_fingerprint, run_suite, sized
    from lab.model.loading import load_model_and_tokenizer

    cut = preset.evals
    summary = {}
    for stage, names in EVAL_SUITES.items():
        if not run.is_complete(stage):
            continue
        model, tokenizer = load_model_and_tokenizer(run.stage_dir(stage))
        context = context_for(run.stage_dir(stage))
        for suite in (SUITES[n] for n in names) if names else SUITES.values():
            results = run_suite(model, tokenizer, sized(suite, cut), context, run.stage_dir(stage) / "evals",
                                limit=cut.limit or None, seed=preset.seed, model_name=f"{run.name}/{stage}",
                                fingerprint=model_fingerprint(run.stage_dir(stage)))
            summary[f"{stage}/{suite.name}"] = {k: m["value"] for k, m in results["metrics"].items()}
    write_json(run.stage_dir("evals") / "summary.json", summary)
    run.mark_complete("evals")


def stage_rm(run: Run, preset: Preset) -> None:
    """The reward model for RLHF: preferences sampled from sft-idk, labelled by the gold judge."""
    from lab.train.reward_model import train_reward_model

    train_reward_model(run, preset, preset.rm, source="sft-idk", out_stage="rm")


def stage_sft_math(run: Run, preset: Preset) -> None:
    """Math practice from sft-idk: worked solutions of one procedure, to the partial competence RL needs."""
    from lab.train.math_practice import math_sft

    math_sft(run, preset, preset.math_sft, source="sft-idk", out_stage="sft-math")


def stage_rl_math(run: Run, preset: Preset) -> None:
    """RL with the math verifier as reward, from sft-math (where it has real but partial competence)."""
    from lab.train.rl_math import rl_math

    rl_math(run, preset, preset.rl, source="sft-math", out_stage="rl-math")


def stage_dpo(run: Run, preset: Preset) -> None:
    """DPO on the reward model's comparisons: RLHF's target without a reward model."""
    from lab.train.dpo import dpo

    dpo(run, preset, preset.dpo, source="sft-idk", preferences="rm", out_stage="dpo")


def stage_rlhf(run: Run, preset: Preset) -> None:
    """GRPO from sft-idk against the learned reward model, the gold judge logged beside it."""
    from lab.train.rlhf import rlhf

    rlhf(run, preset, preset.rlhf, source="sft-idk", rm_stage="rm", out_stage="rlhf-grpo")


def stage_rlhf_ppo(run: Run, preset: Preset) -> None:
    """The lab's own PPO (value model, GAE, clipping) against the same reward model, prompts and sample count."""
    from lab.train.ppo.loop import ppo_rlhf

    ppo_rlhf(run, preset, preset.ppo, source="sft-idk", rm_stage="rm", out_stage="rlhf-ppo")


def stage_rlhf_rloo(run: Run, preset: Preset) -> None:
    """TRL's RLOO with rlhf-grpo's settings: the third policy-gradient method of the comparison."""
    from lab.train.rlhf import rlhf

    rlhf(run, preset, replace(preset.rlhf, algo="rloo"), source="sft-idk", rm_stage="rm", out_stage="rlhf-rloo")


def stage_rlhf_methods(run: Run, preset: Preset) -> None:
    """PPO, GRPO, RLOO and DPO evaluated alike: gold and proxy reward at each one's KL from sft-idk."""
    from lab.experiments.rlhf_methods import run_rlhf_methods

    run_rlhf_methods(run, preset, preset.rlhf_methods)


def stage_report(run: Run, preset: Preset) -> None:
    from reports.report import write_report

    write_report([run], run.stage_dir("report"), STAGE_NAMES)
    run.mark_complete("report")


@dataclass(frozen=True)
class Stage:
    name: str
    parents: tuple[str, ...]
    fn: Callable[[Run, Preset], None]
    always: bool = False  # cheap stages that summarise others (the report) are rebuilt on every run
    # rerun when a parent completed after it (evals: a stage added to a finished run gets evaluated; its
    # per-suite caches keep the rest from being recomputed). Training stages never restart on their own.
    refresh: bool = False


def _newer_parent(run: Run, stage: Stage) -> str | None:
    if not stage.refresh:
        return None
    done = (run.stage_dir(stage.name) / "COMPLETE").stat().st_mtime
    return next((p for p in stage.parents if run.is_complete(p)
                 and (run.stage_dir(p) / "COMPLETE").stat().st_mtime > done), None)


STAGES = [
    Stage("data", (), stage_data),
    Stage("tokenizer", ("data",), stage_tokenizer),
    Stage("base", ("tokenizer",), stage_base),
    Stage(KNOWLEDGE, ("base",), stage_knowledge),
    Stage("sft", ("base",), stage_sft("sft")),
    Stage("sft-idk", ("base",), stage_sft("sft-idk")),
    Stage("sft-math", ("sft-idk",), stage_sft_math),
    Stage("rl-math", ("sft-math",), stage_rl_math),
    Stage("rm", ("sft-idk",), stage_rm),
    Stage("dpo", ("rm",), stage_dpo),
    Stage("rlhf-grpo", ("rm",), stage_rlhf),
    Stage("rlhf-ppo", ("rm",), stage_rlhf_ppo),
    Stage("rlhf-rloo", ("rm",), stage_rlhf_rloo),
    Stage(RLHF_METHODS, ("dpo", "rlhf-grpo", "rlhf-ppo", "rlhf-rloo"), stage_rlhf_methods, refresh=True),
    Stage("evals", tuple(EVAL_SUITES), stage_evals, refresh=True),
    Stage("report", ("base",), stage_report, always=True),
]
STAGE_NAMES = [s.name for s in STAGES]


def provide(run: Run, preset: Preset, needs) -> None:
    """Train whichever of the stages an experiment `needs` is not complete, and the missing stages those
    stand on, in pipeline order with the pipeline's own stage functions: an experiment run on its own sees
    exactly the stages the pipeline would have made."""
    by_name = {stage.name: stage for stage in STAGES}
    unknown = set(needs) - set(by_name)
    if unknown:
        raise LabError(f"unknown stage(s) {sorted(unknown)}; stages: {', '.join(by_name)}")
    missing, todo = set(), list(needs)
    while todo:
        name = todo.pop()
        if name not in missing and not run.is_complete(name):
            missing.add(name)
            todo.extend(by_name[name].parents)
    for stage in STAGES:
        if stage.name in missing:
            console.print(f"  [cyan]→[/cyan] {stage.name} (needed)")
            stage.fn(run, preset)


def run_pipeline(preset: Preset, runs_dir: Path = Path("runs"), name: str | None = None,
                 until: str | None = None, force: tuple[str, ...] = ()) -> Run:
    for stage in (until, *force):
        if stage is not None and stage not in STAGE_NAMES:
            raise LabError(f"unknown stage '{stage}'; stages: {', '.join(STAGE_NAMES)}")
    root = Path(runs_dir) / (name or preset.name)
    with run_lock(root):  # a second pipeline on this run, or any other writer, is refused in one line
        run = Run.create_or_open(root, preset)
        console.print(f"[bold]run[/bold] {run.root}  (preset {preset.name})")
        _run_stages(run, preset, until, force)
    return run


def _run_stages(run: Run, preset: Preset, until: str | None, force: tuple[str, ...]) -> None:
    for stage in STAGES:
        newer = _newer_parent(run, stage) if run.is_complete(stage.name) else None
        if run.is_complete(stage.name) and stage.name not in force and not stage.always and not newer:
            check_whole(run.stage_dir(stage.name))  # skipped only if its files are what it wrote
            console.print(f"  [green]✓[/green] {stage.name} (complete, skipped)")
        else:
            console.print(f"  [cyan]→[/cyan] {stage.name}" + (f" (again: {newer} is newer)" if newer else ""))
            t0 = time.perf_counter()
            try:
                stage.fn(run, preset)
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
