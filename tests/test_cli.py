"""The CLI: bad input is one `error:` line and exit status 2, never a traceback."""

import subprocess
import sys

import pytest


def lab(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize("args, message", [
    (["pipeline", "--preset", "huge"], "unknown preset 'huge'"),
    (["pipeline", "--set", "pretrain.lrr=1"], "unknown setting 'pretrain.lrr'"),
    (["pipeline", "--set", "tokenizer.vocab_size=100", "--runs-dir", "{tmp}"], "smaller than the 7 special tokens"),
    (["sample", "{tmp}/nope"], "does not exist"),
    (["export", "{tmp}", "{tmp}/out"], "holds no model"),
    (["status", "{tmp}"], "not a run directory"),
    (["pipeline", "--redo", "nosuch", "--runs-dir", "{tmp}"], "unknown stage 'nosuch'"),
    (["tokenize", "hello", "--tokenizer", "{tmp}/nope"], "does not exist"),
    (["inspect", "attention", "{tmp}/nope", "hello"], "does not exist"),
    (["experiment", "scaling", "{tmp}"], "not a run directory"),
    (["eval", "{tmp}/nope", "--suite", "hallucination"], "does not exist"),
    (["eval", "{tmp}", "--suite", "nosuch"], "unknown suite 'nosuch'; suites: hallucination"),
    (["eval", "{tmp}", "--suite", "{tmp}/missing.json"], "suite spec"),
    (["bench", "table", "{tmp}/nope.json"], "no such bench file"),
    (["bench", "verify", "--cases", "{tmp}/nope.jsonl"], "no such cases file"),
])
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    proc = lab(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error:") and message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_presets_lists_every_setting():
    proc = lab("presets", "tiny")
    assert proc.returncode == 0 and "pretrain.lr = 0.003" in proc.stdout


def test_pretrain_under_torchrun_prepares_data_once_and_trains_on_both_ranks(tmp_path):
    import os

    settings = ["data.world.people_per_exposure=4", "data.corpus.narratives=40", "tokenizer.vocab_size=300",
                "model.hidden_size=32", "model.num_hidden_layers=2", "pretrain.max_steps=6", "pretrain.batch_size=4",
                "pretrain.seq_len=32", "pretrain.eval_every=3", "pretrain.ckpt_every=3", "pretrain.log_every=3",
                "pretrain.eval_batches=1", "sample.max_new_tokens=4"]
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29541",
         "-m", "lab.cli", "pretrain", "--runs-dir", str(tmp_path), "--name", "d",
         *[arg for s in settings for arg in ("--set", s)]],
        capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("step 6  loss") == 2  # both ranks finished the same run
    assert (tmp_path / "d" / "base" / "COMPLETE").exists()


@pytest.mark.parametrize("args, message", [
    (["experiment", "goodhart", "{run}", "--pairs", "100,many"], "cannot read 'many' as int for setting 'goodhart.pairs'"),
    (["experiment", "math-rewards", "{run}", "--arms", "baseline,bogus"], "unknown math-rewards arm(s) ['bogus']"),
])
def test_experiment_list_options_are_read_like_settings(tmp_path, args, message):
    from lab.presets import get_preset
    from lab.runs import Run

    run = Run.create_or_open(tmp_path / "r", get_preset("tiny"))
    proc = lab(*[a.replace("{run}", str(run.root)) for a in args])
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error:"), proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


# Every command that takes a path, a setting or input, with what a user gets wrong most: a path that is not
# there, an empty input, an unknown setting, a value of the wrong type, a stage not trained yet.
@pytest.mark.parametrize("args, message", [
    (["data", "{tmp}/nope", "--out", "{tmp}/o"], "input folder {tmp}/nope does not exist"),
    (["data", "{empty}", "--out", "{tmp}/o"], "no .html/.warc/.jsonl files in {empty}"),
    (["chat", "{tmp}/nope", "--prompt", "hi"], "does not exist"),
    (["chat", "{empty}", "--prompt", "hi"], "holds no model"),
    (["report", "{tmp}/nope"], "not a run directory"),
    (["report", "{run}"], "has no complete stage to report on"),
    (["rl", "math", "{tmp}/nope"], "not a run directory"),
    (["rl", "math", "{run}", "--set", "rl.nosuch=1"], "unknown setting 'rl.nosuch'"),
    (["rl", "math", "{run}", "--set", "rl.steps=many"], "cannot read 'many' as int for setting 'rl.steps'"),
    (["rl", "math", "{run}"], "stage 'sft-math' of run {run} is not complete"),
    (["rl", "dpo", "{run}", "--set", "dpo.beta=x"], "cannot read 'x' as float for setting 'dpo.beta'"),
    (["rl", "rlhf", "{run}"], "stage 'sft-idk' of run {run} is not complete"),
    (["bench", "train", "--set", "nosuch=1"], "unknown setting 'nosuch'"),
    (["bench", "generate", "--set", "model.hidden_size=big"], "cannot read 'big' as int"),
    (["experiment", "replicate", "{tmp}/nope", "--seeds", "2"], "not a run directory"),
    (["experiment", "replicate", "{run}", "--seeds", "0"], "--seeds must be at least 1, got 0"),
    (["experiment", "rm-scaling", "{tmp}/nope"], "not a run directory"),
    (["experiment", "rlhf-methods", "{tmp}/nope"], "not a run directory"),
    (["experiment", "overoptimization", "{tmp}/nope"], "not a run directory"),
    (["inspect", "embeddings", "{tmp}/nope"], "does not exist"),
    (["tokenize", "", "--tokenizer", "{empty}"], "nothing to tokenize: TEXT is empty"),
    (["pipeline", "--set", "pretrain.max_steps", "--runs-dir", "{tmp}"], "is not of the form key=value"),
])
def test_every_command_answers_bad_input_with_one_error_line(tmp_path, args, message):
    from lab.presets import get_preset
    from lab.runs import Run

    run = Run.create_or_open(tmp_path / "run", get_preset("tiny"))  # a run with no stage trained
    (tmp_path / "empty").mkdir()
    fill = {"{tmp}": str(tmp_path), "{run}": str(run.root), "{empty}": str(tmp_path / "empty")}

    def filled(text):
        for key, value in fill.items():
            text = text.replace(key, value)
        return text

    proc = lab(*map(filled, args))
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and lines and lines[-1].startswith("error:"), proc.stderr
    assert filled(message) in " ".join(proc.stderr.split()) and "Traceback" not in proc.stderr
