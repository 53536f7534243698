"""`lab rl` (RL and preference tuning into a run's stages) and `lab experiment` (experiments on a run)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Optional

import typer

from lab.cli.options import SetOpt, console
from lab.errors import LabError
from lab.run_lock import run_lock
from lab.stage_files import is_run
from lab.stage_names import RL_MATH, SFT_IDK, SFT_MATH
from lab.train.rl_algorithms import TRL_ONLINE, get_algorithm

rl_app = typer.Typer(no_args_is_help=True, help="RL and preference tuning on a run's stages.")
experiment_app = typer.Typer(no_args_is_help=True, help="Experiments on a run: each writes runs/<run>/experiments/<name>/.")


def _open_run(run_dir: Path, overrides: list[str] = ()):
    """A run and the preset it was made with (config.json, then `overrides`), or one clear error.

    Experiments then check their own settings and have lab.pipeline.provide train the stages they need
    (their NEEDS) where missing: a bad setting is reported before anything trains."""
    from lab.presets import run_preset
    from lab.runs import Run
    from lab.settings import apply_override

    run = Run.open_existing(run_dir)
    preset = run_preset(run.root)
    if preset is None:
        raise LabError(f"{run_dir}/config.json holds no preset settings")
    for item in overrides:
        apply_override(preset, item)
    return run, preset


def _at(run, preset, stage: str, source: str | None = None):
    """The stage context a command's stage or experiment gets: `stage` written from `source`."""
    from lab.presets import stage_context

    return stage_context(run, preset).at(stage, source)


def locks_run(command):
    """The command holds its run's lock (lab/run_lock.py) while it runs: a second writer of the run is refused
    in one line. A RUN_DIR that is no run is left to the command's own error, with nothing written there."""
    @functools.wraps(command)
    def held(*args, **kwargs):
        run_dir = Path(kwargs["run_dir"])
        if not is_run(run_dir):
            return command(*args, **kwargs)
        with run_lock(run_dir):
            return command(*args, **kwargs)
    return held


def _show_experiment(out: Path, plot: str) -> None:
    console.print((out / "table.md").read_text())
    console.print(f"plot: {out / plot}")


@rl_app.command("math")
@locks_run
def rl_math_cmd(run_dir: Path = typer.Argument(..., help="a run with the source stage, e.g. runs/tiny"),
                source: str = typer.Option(SFT_MATH, "--from", help="the stage to start from"),
                algo: Optional[str] = typer.Option(None, help="a TRL-trained algorithm of lab/train/rl_algorithms.py: "
                                                              "grpo, dr_grpo, dapo, bnpo or rloo (default: rl.algo)"),
                out: str = typer.Option(RL_MATH, help="the stage folder to write, e.g. experiments/math-rewards/rloo"),
                data: Optional[Path] = typer.Option(None, help="your own problems instead of the generator: JSONL, TSV, "
                                                               "CSV, .json, parquet or a datasets folder; part is held out"),
                question_field: Optional[str] = typer.Option(None, help="the field holding the question (with --data; "
                                                                        "default: question)"),
                answer_field: Optional[str] = typer.Option(None, help="the field holding the gold answer (with --data; "
                                                                      "default: answer; GSM8K's '#### N' is read)"),
                set: list[str] = SetOpt):
    """RL with the sympy verifier as reward (TRL GRPO / RLOO); prints held-out accuracy before and after."""
    from lab.train.rl_math import rl_math

    if algo is not None:
        get_algorithm(algo, TRL_ONLINE)
    if data is None and (question_field or answer_field):
        raise LabError("--question-field and --answer-field name fields of a --data file; give --data FILE too")
    run, preset = _open_run(run_dir, overrides=set)
    if algo is not None:
        preset.rl.algo = algo
    s = rl_math(preset.rl, _at(run, preset, out, source), data=data,
                question_field=question_field or "question", answer_field=answer_field or "answer")
    before, after = s["heldout_before"]["all"], s["heldout_after"]["all"]
    console.print(f"{out}: {s['algo']}, {s['steps']} steps in {s['seconds']:.0f} s; reward {s['reward_first']:.3f} -> "
                  f"{s['reward_last']:.3f}; held-out accuracy {before['accuracy']:.3f} -> {after['accuracy']:.3f} "
                  f"(n={after['n']})")
    if s["data"]:
        d = s["data"]
        lines = ", ".join(str(k["line"]) for k in d["skipped"][:10]) + (", ..." if len(d["skipped"]) > 10 else "")
        console.print(f"data {d['path']}: {d['rows']} rows, {d['trained']} trained, {d['held_out']} held out, "
                      f"{d['unused']} unused (over rl.train_problems), {len(d['skipped'])} skipped"
                      + (f" (lines {lines}; reasons in {run.stage_dir(out) / 'summary.json'})" if d["skipped"] else ""),
                      highlight=False, soft_wrap=True)


@rl_app.command("dpo")
@locks_run
def rl_dpo_cmd(run_dir: Path = typer.Argument(..., help="a run with an rm stage (its preferences), e.g. runs/tiny"),
               source: str = typer.Option(SFT_IDK, "--from", help="the stage to start from (and the reference)"),
               out: str = typer.Option("dpo", help="the stage folder to write"), set: list[str] = SetOpt):
    """DPO (TRL DPOTrainer) on the rm stage's comparisons: preference tuning without a reward model."""
    from lab.train.dpo import dpo

    run, preset = _open_run(run_dir, overrides=set)
    s = dpo(preset.dpo, _at(run, preset, out, source))
    console.print(f"{out}: {s['pairs']} pairs, {s['steps']} steps in {s['seconds']:.0f} s; final loss "
                  f"{s['final_loss']:.3f}, reward accuracy {s['final_reward_accuracy']:.3f}; "
                  f"evaluate with `lab eval {run.stage_dir(out)} --suite profile`")


@rl_app.command("rlhf")
@locks_run
def rl_rlhf_cmd(run_dir: Path = typer.Argument(..., help="a run with an rm stage, e.g. runs/tiny"),
                source: str = typer.Option(SFT_IDK, "--from", help="the stage to start from"),
                algo: Optional[str] = typer.Option(None, help="an algorithm of lab/train/rl_algorithms.py other than dpo "
                                                              "(`lab rl dpo`): ppo, grpo, dr_grpo, dapo, bnpo or rloo "
                                                              "(default: rlhf.algo)"),
                out: Optional[str] = typer.Option(None, help="the stage folder (default: rlhf-<algo>)"),
                set: list[str] = SetOpt):
    """RL against the learned reward model; the gold judge is logged beside the proxy, never optimised.

    ppo is the lab's own (lab/train/ppo/loop.py, settings ppo.*); the others are TRL's (settings rlhf.*)."""
    from lab.stages import resolve

    algorithm = get_algorithm(algo, (*TRL_ONLINE, "ppo")) if algo is not None else None
    run, preset = _open_run(run_dir, overrides=set)
    if algorithm is not None and algorithm.trl_online:
        preset.rlhf.algo = algorithm.name
    algorithm = algorithm or get_algorithm(preset.rlhf.algo, TRL_ONLINE)
    stage = out or f"rlhf-{algorithm.name}"
    train = resolve(algorithm.rlhf, f"RL algorithm '{algorithm.name}' names its RLHF function")
    s = train(getattr(preset, algorithm.section), _at(run, preset, stage, source))
    console.print(f"{stage}: {json.dumps({k: v for k, v in s.items() if not isinstance(v, dict)}, default=str)}")


@experiment_app.command("math-rewards")
@locks_run
def experiment_math_rewards(run_dir: Path = typer.Argument(..., help="a run with sft-math, e.g. runs/tiny"),
                            arms: Optional[str] = typer.Option(None, help="comma-separated arms (default: all)"),
                            source: str = typer.Option(SFT_MATH, "--from", help="the checkpoint every arm starts from"),
                            out: str = typer.Option("experiments/math-rewards", help="the experiment's folder"),
                            set: list[str] = SetOpt):
    """RL on math, one change an arm (reward, format, algorithm, or SFT instead), at matched compute."""
    from lab.experiments.math_rewards import check_math_rewards_settings, run_math_rewards
    from lab.pipeline import STAGE_NAMES, provide

    run, preset = _open_run(run_dir, overrides=set + ([f"math_rewards.arms={arms}"] if arms else []))
    check_math_rewards_settings(preset.math_rewards)
    provide(run, preset, (source,) if source in STAGE_NAMES else ())  # another checkpoint: it must exist
    run_math_rewards(preset.math_rewards, _at(run, preset, out, source), preset.rl)
    _show_experiment(run.stage_dir(out), "math_rewards.png")


@experiment_app.command("rlhf-methods")
@locks_run
def experiment_rlhf_methods(run_dir: Path = typer.Argument(..., help="a run with sft-idk and rm, e.g. runs/tiny"),
                            set: list[str] = SetOpt):
    """PPO, GRPO, RLOO and DPO on the same reward model (the pipeline trains any missing stage), scored alike at their KL."""
    from lab.experiments.rlhf_methods import NEEDS, OUT, run_rlhf_methods
    from lab.pipeline import provide

    run, preset = _open_run(run_dir, overrides=set)
    provide(run, preset, NEEDS)
    run_rlhf_methods(preset.rlhf_methods, _at(run, preset, OUT, SFT_IDK))
    _show_experiment(run.stage_dir(OUT), "rlhf_methods.png")


@experiment_app.command("goodhart")
@locks_run
def experiment_goodhart(run_dir: Path = typer.Argument(..., help="a run with sft-idk, e.g. runs/tiny"),
                        pairs: Optional[str] = typer.Option(None, help="comparisons per reward model, e.g. 100,200,400"),
                        set: list[str] = SetOpt):
    """Reward models of several sizes, GRPO against each: when does optimising the proxy turn gold down?"""
    from lab.experiments.goodhart import NEEDS, OUT, check_goodhart_settings, run_goodhart
    from lab.pipeline import provide

    run, preset = _open_run(run_dir, overrides=set + ([f"goodhart.pairs={pairs}"] if pairs else []))
    check_goodhart_settings(preset.goodhart)
    provide(run, preset, NEEDS)
    run_goodhart(preset.goodhart, _at(run, preset, OUT, SFT_IDK), preset.rm, preset.rlhf,
                 preset.rlhf_methods)
    _show_experiment(run.stage_dir(OUT), "goodhart.png")


@experiment_app.command("overoptimization")
@locks_run
def experiment_overoptimization(run_dir: Path = typer.Argument(..., help="a run with sft-idk and rm, e.g. runs/tiny"),
                                set: list[str] = SetOpt):
    """Best-of-n and RL against the proxy RM, scored by the gold judge: Gao et al.'s curves, fits, mitigations."""
    from lab.experiments.overoptimization import NEEDS, OUT, check_overoptimization_settings, run_overoptimization
    from lab.pipeline import provide

    run, preset = _open_run(run_dir, overrides=set)
    check_overoptimization_settings(preset.overoptimization)
    provide(run, preset, NEEDS)
    run_overoptimization(preset.overoptimization, _at(run, preset, OUT, SFT_IDK), preset.rm)
    _show_experiment(run.stage_dir("experiments/overoptimization"), "overoptimization.png")


@experiment_app.command("rm-scaling")
@locks_run
def experiment_rm_scaling(run_dir: Path = typer.Argument(..., help="a run with an rm stage, e.g. runs/tiny"),
                          fractions: str = typer.Option("0.25,0.5,1", help="shares of the training comparisons")):
    """Reward models trained on growing shares of the comparisons: held-out accuracy and gold agreement."""
    from lab.experiments.rm_scaling import NEEDS, check_fractions, run_rm_scaling
    from lab.pipeline import provide

    try:
        shares = tuple(float(f) for f in fractions.split(","))
    except ValueError:
        raise LabError(f"--fractions must be numbers like 0.25,0.5,1, got '{fractions}'") from None
    check_fractions(shares)
    run, preset = _open_run(run_dir)
    provide(run, preset, NEEDS)
    console.print("\n".join(run_rm_scaling(run, preset.rm, shares)))


@experiment_app.command("scaling")
@locks_run
def experiment_scaling(run_dir: Path = typer.Argument(..., help="a run with data and tokenizer, e.g. runs/tiny"),
                       sizes: Optional[str] = typer.Option(None, help="hidden x layers list, e.g. 32x1,64x2,128x4 "
                                                                       "(default: the preset's sweep)"),
                       steps: Optional[int] = typer.Option(None, help="pretraining steps per size "
                                                                      "(default: the preset's scaling.steps)")):
    """Pretrain models of several sizes on the run's data: loss vs parameters and compute, recall by size."""
    from lab.experiments.scaling import NEEDS, STAGE, parse_sizes, run_sweep
    from lab.pipeline import provide

    parsed = parse_sizes(sizes) if sizes else None
    run, preset = _open_run(run_dir)
    provide(run, preset, NEEDS)
    run_sweep(preset.scaling, _at(run, preset, STAGE), preset.pretrain, parsed, steps)
    console.print((run.stage_dir(STAGE) / "table.md").read_text())
    console.print(f"plot: {run.stage_dir(STAGE) / 'scaling.png'}")


@experiment_app.command("replicate")
@locks_run
def experiment_replicate(run_dir: Path = typer.Argument(..., help="a finished run, e.g. runs/tiny"),
                         seeds: int = typer.Option(2, help="how many more seeds (the run's own seed is the first)"),
                         full: bool = typer.Option(False, help="rerun the whole pipeline, world and corpus included "
                                                               "(about 35 min a seed on 2 cores)")):
    """Rerun every stage after pretraining (or, with --full, the whole pipeline) with other seeds and evaluate:
    each claim's effect per seed with its mean, spread and sign agreement, and the headline metrics' spread."""
    from lab.replicate import FULL_STAGE, STAGE, replicate

    run, preset = _open_run(run_dir)
    replicate(run, preset, seeds, full=full)
    out = run.stage_dir(FULL_STAGE if full else STAGE)
    console.print((out / "claims.md").read_text())
    console.print((out / "table.md").read_text())
