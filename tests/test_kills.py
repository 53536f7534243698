"""Real kills: a `lab` process SIGKILLed mid-step, mid-checkpoint write and between atomic_dir's renames resumes
from its last complete checkpoint (read from its own words and its log's step numbers, not only from the final
weights), ends equal to a run never killed, and leaves no temporary behind.

Each kill is tests/kill_worker.py running the real command and sending itself SIGKILL at one chosen point, so
nothing of the process's own clean-up runs. Pretraining, SFT, RL on math and an eval, at small shapes.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_pretrain import SMALL, small_preset, train_base
from test_sft import SFT_SMALL

from lab.pipeline import run_pipeline
from lab.runs import LEFTOVER, Run, read_train_log

WORKER = Path(__file__).with_name("kill_worker.py")
REPO = Path(__file__).resolve().parents[1]
KILLS_SMALL = SFT_SMALL + ["sft.ckpt_every=2"]  # SFT's 9 steps with a checkpoint every 2


def lab(*args: str, kill: str = "none::") -> subprocess.CompletedProcess:
    """`lab ARGS` in a fresh process, killed at `kill` (see kill_worker.py); one thread, as the tests use, so
    its arithmetic is the in-process reference's bit for bit."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(WORKER), kill, *args], capture_output=True, text=True, timeout=300,
                          cwd=REPO, env=env)


def killed(*args: str, at: str) -> str:
    """Run `lab ARGS`, expect it to die of SIGKILL at `at`; its stderr."""
    done = lab(*args, kill=at)
    assert done.returncode == -signal.SIGKILL, f"not killed at {at} (exit {done.returncode}):\n{done.stderr[-3000:]}"
    return done.stderr


def finished(*args: str) -> str:
    done = lab(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


def leftovers(root: Path) -> list[str]:
    """Everything atomic writes leave while unfinished (`.NAME.tmp-PID`, `.ready-`, `.old-`) under `root`."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if LEFTOVER.match(p.name))


def logged_steps(stage_dir: Path, key: str = "loss") -> list[int]:
    return [r["step"] for r in read_train_log(stage_dir) if key in r]


def same_weights(a: Path, b: Path) -> bool:
    """Two stage folders hold bit-identical weights."""
    a, b = (load_file(folder / "model.safetensors") for folder in (a, b))
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


def copy_run(source: Path, target: Path, *skip: str) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*skip))
    return target


@pytest.fixture(scope="module")
def based(tmp_path_factory):
    """A run with data and tokenizer, and one with a base model too (SFT and the eval start from it)."""
    root = tmp_path_factory.mktemp("kills")
    run_pipeline(small_preset(*KILLS_SMALL), root, "r", until="base")
    return root / "r"


def pipeline_args(run: Path, until: str) -> list[str]:
    return ["pipeline", "--runs-dir", str(run.parent), "--name", run.name, "--until", until,
            *[f"--set={s}" for s in SMALL + KILLS_SMALL]]


def checkpoint_step(run: Path) -> int:
    return torch.load(run / "base" / "checkpoint" / "trainer_state.pt", weights_only=False)["step"]


def test_pretraining_killed_three_ways_resumes_each_time_and_ends_as_if_never_killed(based, tmp_path):
    straight = copy_run(based, tmp_path / "straight", "base")
    train_base(Run(straight), small_preset(*KILLS_SMALL))
    run = copy_run(based, tmp_path / "r", "base")
    args = pipeline_args(run, "base")  # 20 steps, a checkpoint every 5, a log row every 5

    killed(*args, at="step::13")  # mid-step 13: the checkpoint of step 10 is the last
    assert checkpoint_step(run) == 10 and logged_steps(run / "base") == [5, 10]

    err = killed(*args, at="save:trainer_state.pt:1")  # writing step 15's checkpoint: weights in, state not yet
    assert "resuming at step 10" in err
    assert checkpoint_step(run) == 10 and any(".checkpoint.tmp-" in p for p in leftovers(run))

    err = killed(*args, at="after-replace:.checkpoint.old-*:1")  # between the renames: no `checkpoint` at all
    assert "resuming at step 10" in err and leftovers(run)
    assert not (run / "base" / "checkpoint").exists()  # what the next run finds; it used to start from step 0

    err = finished(*args)
    assert "resuming at step 15" in err  # the complete new checkpoint that waited beside the gap
    assert Run(run).is_complete("base") and leftovers(run) == []
    assert logged_steps(run / "base") == [5, 10, 15, 20]  # every step logged once, none lost, none twice
    assert logged_steps(run / "base", "heldout_loss") == [10, 20]
    assert same_weights(run / "base", straight / "base")


def test_sft_killed_mid_step_and_mid_checkpoint_resumes_and_ends_as_if_never_killed(based, tmp_path):
    from lab.presets import stage_context
    from lab.train.sft import sft

    straight = copy_run(based, tmp_path / "straight")
    preset = small_preset(*KILLS_SMALL)
    sft(preset.sft, stage_context(Run(straight), preset).at("sft", "base"))
    run = copy_run(based, tmp_path / "r")
    args = pipeline_args(run, "sft")
    checkpoints = run / "sft" / "trainer"

    killed(*args, at="step::5")  # mid-step 5: checkpoints of steps 2 and 4 were written, the newest kept
    assert sorted(p.name for p in checkpoints.glob("checkpoint-*")) == ["checkpoint-4"]

    err = killed(*args, at="save:optimizer.pt:1")  # step 6's checkpoint: weights written, optimizer state not
    assert "resuming at step 4" in err and (checkpoints / "checkpoint-6" / "model.safetensors").exists()
    assert not (checkpoints / "checkpoint-6" / "trainer_state.json").exists()

    err = finished(*args)
    assert "resuming at step 4" in err  # not from the torn checkpoint-6, which is cleared
    assert Run(run).is_complete("sft") and leftovers(run) == []
    steps = logged_steps(run / "sft")
    assert steps == logged_steps(straight / "sft") and steps == sorted(set(steps))
    assert all((c / "trainer_state.json").exists() for c in checkpoints.glob("checkpoint-*"))
    assert same_weights(run / "sft", straight / "sft")


@pytest.fixture(scope="module")
def policy_run(tmp_path_factory):
    """A run (with its config, so `lab rl math` opens it) whose sft-idk stage is an untrained tiny labgpt."""
    from test_rl import with_untrained_policy

    return with_untrained_policy(Run.create_or_open(tmp_path_factory.mktemp("rl") / "r", small_preset())).root


def test_rl_killed_mid_step_resumes_from_its_checkpoint_and_ends_as_if_never_killed(policy_run, tmp_path):
    from lab.presets import run_preset, stage_context
    from lab.settings import apply_override
    from lab.train.rl_math import rl_math

    source = policy_run
    settings = {"steps": 4, "num_generations": 4, "batch_size": 8, "max_completion_length": 12, "train_problems": 16,
                "eval_problems": 6, "eval_every": 2, "ckpt_every": 2, "log_every": 1, "lr": 1e-3, "beta": 0.05,
                "tasks": "arithmetic", "bands": "1"}
    sets = [f"--set=rl.{k}={v}" for k, v in settings.items()]
    straight = copy_run(source, tmp_path / "straight")
    preset = run_preset(straight)
    for k, v in settings.items():
        apply_override(preset, f"rl.{k}={v}")
    rl_math(preset.rl, stage_context(Run(straight), preset).at("rl-math", "sft-idk"))
    run = copy_run(source, tmp_path / "r")

    killed("rl", "math", str(run), "--from", "sft-idk", *sets, at="step::3")  # checkpoint of step 2 written
    err = finished("rl", "math", str(run), "--from", "sft-idk", *sets)
    assert "resuming at step 2" in err and leftovers(run) == []
    summary = json.loads((run / "rl-math" / "summary.json").read_text())
    assert summary["resumed_from"] == "checkpoint-2" and summary["steps_this_session"] == 2
    assert logged_steps(run / "rl-math", "reward") == logged_steps(straight / "rl-math", "reward") == [1, 2, 3, 4]
    assert same_weights(run / "rl-math", straight / "rl-math")


def test_an_eval_killed_mid_batch_resumes_from_the_batches_it_finished(based, tmp_path):
    args = ["eval", str(based / "base"), "--suite", "hallucination", "--limit", "12", "--batch-size", "4", "-k", "2"]
    straight, out = tmp_path / "straight", tmp_path / "evals"
    finished(*args, "--out", str(straight))

    # each batch generates twice (greedy, then k samples): the 5th generation is the third batch's first
    killed(*args, "--out", str(out), at="call:evals.harness._answers:5")
    partial = out / "hallucination" / "samples.partial.jsonl"
    assert len(partial.read_text().splitlines()) == 1 + 8 and not (partial.parent / "results.json").exists()
    with open(partial, "a") as f:
        f.write('{"id": "torn')  # and a kill that tore the last row in half

    err = finished(*args, "--out", str(out))
    assert "resuming, 8 of 12 samples done before" in err
    results = json.loads((partial.parent / "results.json").read_text())
    assert results["computed"] == 4 and results["n"] == 12 and not partial.exists() and leftovers(out) == []
    assert (partial.parent / "samples.jsonl").read_text() == (straight / "hallucination" / "samples.jsonl").read_text()


def test_a_resumed_eval_samples_with_the_seeds_an_unbroken_one_would(based, tmp_path, monkeypatch):
    import evals.harness as harness
    from lab.model.loading import load_model_and_tokenizer

    seeds, real_answers = {}, harness._answers

    def answers(model, tokenizer, prompts, params, samples, suite, ctx):
        if params.temperature:  # the k sampled answers of a batch
            seeds.update({s["id"]: params.seed for s in samples})
        return real_answers(model, tokenizer, prompts, params, samples, suite, ctx)

    monkeypatch.setattr(harness, "_answers", answers)
    model, tokenizer = load_model_and_tokenizer(based / "base")
    suite, ctx = harness.SUITES["hallucination"], harness.context_for(based / "base")
    evaluate = lambda: harness.run_suite(model, tokenizer, suite, ctx, tmp_path, limit=12, batch_size=4,  # noqa: E731
                                         samples_per_prompt=2)
    results = evaluate()
    unbroken = dict(seeds)
    # the files a kill after two batches leaves: the cache header and the first 8 rows, no results
    folder = tmp_path / "hallucination"
    rows = (folder / "samples.jsonl").read_text().splitlines()[:8]
    (folder / "samples.partial.jsonl").write_text("\n".join([json.dumps({"cache_key": results["cache_key"]}), *rows, ""]))
    (folder / "results.json").unlink()
    seeds.clear()
    assert evaluate()["computed"] == 4
    assert len(seeds) == 4 and all(seeds[i] == unbroken[i] for i in seeds)


def test_a_disk_that_fills_mid_checkpoint_is_one_line_naming_the_stage_and_the_last_checkpoint_survives(based,
                                                                                                      tmp_path):
    run = copy_run(based, tmp_path / "r", "base")
    args = pipeline_args(run, "base")
    killed(*args, at="step::13")  # checkpoints of steps 5 and 10 written
    state = run / "base" / "checkpoint" / "trainer_state.pt"
    before = {p.name: p.read_bytes() for p in state.parent.iterdir()}

    # no file may grow as large as the checkpoint's optimizer state: step 15's checkpoint fails half-written
    full = lab(*args, kill=f"fsize:{state.stat().st_size - 1}:")
    errors = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert full.returncode == 2 and "Traceback" not in full.stderr, full.stderr[-3000:]
    assert len(errors) == 1 and "stage 'base' failed: the disk is full" in errors[0], full.stderr[-3000:]
    assert {p.name: p.read_bytes() for p in state.parent.iterdir()} == before  # step 10's, untouched
    assert leftovers(run) == []  # the half-written checkpoint is gone

    assert "resuming at step 10" in finished(*args) and Run(run).is_complete("base")
