"""Outputs that prove they are whole (lab/stage_files.py): a stage's COMPLETE records its files' sizes and
digests; a truncated, missing or altered file is one error line naming the stage, the file and the command that
redoes it, wherever the stage is loaded (a parent stage, `lab chat`/`lab eval`, a pipeline that would skip it);
`lab status` flags it; a COMPLETE that does not parse is damage; an old COMPLETE without digests is accepted and
gains them on `lab status --verify`."""

import json
import subprocess
import sys
import time

import pytest
import torch

from lab.errors import LabError
from lab.runs import Run
from lab.stage_files import CHEAP_BYTES, manifest, stage_damage


def lab(*args):
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def run(tmp_path):
    """A run whose stage 'sft' is a real (untrained) model and tokenizer, marked complete."""
    from lab.model.labgpt import LabGPTConfig, LabGPTForCausalLM
    from lab.model.tokenizer import train_tokenizer

    root = tmp_path / "r"
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"run_format_version": 1, "settings": {}}))
    run = Run(root)
    stage = run.open_stage("sft")
    tokenizer = train_tokenizer(["Mira lives in Oslo."] * 20, vocab_size=280)
    torch.manual_seed(0)
    LabGPTForCausalLM(LabGPTConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                   num_key_value_heads=2, max_position_embeddings=64)).save_pretrained(stage)
    tokenizer.save_pretrained(stage)
    (stage / "evals").mkdir()
    (stage / "evals" / "later.json").write_text("{}")  # what `lab eval` adds afterwards is no output of the stage
    run.mark_complete("sft", {"steps": 3})
    return run


def test_complete_records_every_output_with_its_size_and_digest(run):
    files = run.completion("sft")["files"]
    assert "model.safetensors" in files and "config.json" in files and "evals/later.json" not in files
    weights = run.stage_dir("sft") / "model.safetensors"
    assert files["model.safetensors"]["size"] == weights.stat().st_size
    assert run.require("sft") == run.stage_dir("sft")


def test_a_truncated_weights_file_is_one_line_wherever_the_stage_is_loaded(run):
    weights = run.stage_dir("sft") / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    message = "stage 'sft' of run .* is damaged: model.safetensors is .* bytes, .* were written; redo it with " \
              f"`lab pipeline --name r --runs-dir {run.root.parent} --redo sft`"
    with pytest.raises(LabError, match=message):
        Run(run.root).require("sft")
    for args in (("sample", str(run.stage_dir("sft"))), ("eval", str(run.stage_dir("sft")), "--suite", "profile")):
        done = lab(*args)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert "is damaged: model.safetensors" in done.stderr and "--redo sft" in done.stderr
    status = lab("status", str(run.root))
    assert status.returncode == 0 and "damaged" in status.stdout and "damaged: sft" in status.stdout


def test_a_missing_or_altered_file_and_an_unreadable_complete_are_damage(run):
    stage = run.stage_dir("sft")
    config = (stage / "config.json").read_text()
    (stage / "config.json").write_text(config.replace("32", "64", 1))  # same size, other bytes
    assert stage_damage(stage) == "config.json has changed since it was written (its sha256 differs)"
    assert stage_damage(stage, digests=False) is None  # sizes only: what loading a big stage checks
    (stage / "config.json").unlink()
    assert stage_damage(stage) == "config.json is missing"
    (stage / "COMPLETE").write_text("{not json")
    assert stage_damage(stage) == "its COMPLETE does not parse"
    (stage / "COMPLETE").write_text(json.dumps({"files": {"a": {"size": "big"}}}))
    assert stage_damage(stage) == "its COMPLETE's file list does not parse"


def test_an_old_complete_without_digests_is_accepted_and_upgraded_by_verify(run):
    stage = run.stage_dir("sft")
    (stage / "COMPLETE").write_text(json.dumps({"finished": "2026-01-01 00:00:00", "steps": 3}))
    assert stage_damage(stage) is None and Run(run.root).require("sft") == stage
    done = lab("status", str(run.root), "--verify")
    assert done.returncode == 0, done.stderr
    info = json.loads((stage / "COMPLETE").read_text())
    assert info["steps"] == 3 and info["files"] == manifest(stage)


def test_checking_a_tiny_stage_costs_little(run):
    assert sum(v["size"] for v in run.completion("sft")["files"].values()) < CHEAP_BYTES
    start = time.perf_counter()
    assert stage_damage(run.stage_dir("sft")) is None
    assert time.perf_counter() - start < 2.0
