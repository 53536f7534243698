"""Pretraining: resume continues bit for bit, DDP keeps ranks identical, bad input is one clear error."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lab.errors import LabError
from lab.pipeline import run_pipeline
from lab.presets import get_preset, stage_context
from lab.runs import Run
from lab.train.pretrain import lr_at, pretrain

SMALL = ["data.world.people_per_exposure=4", "data.world.exposures=0,1,2", "data.corpus.narratives=40",
         "data.corpus.heldout_docs=8", "tokenizer.vocab_size=300", "model.hidden_size=32",
         "model.num_hidden_layers=2", "model.num_attention_heads=4", "model.num_key_value_heads=2",
         "pretrain.seq_len=32", "pretrain.batch_size=4", "pretrain.max_steps=20", "pretrain.warmup_steps=3",
         "pretrain.eval_every=10", "pretrain.eval_batches=2", "pretrain.ckpt_every=5", "pretrain.log_every=5",
         "sample.max_new_tokens=8",
         # the tiny preset's stream is 68,000 documents (~7M tokens): generated and tokenized by every test run
         "data.corpus.stream_sources=fresh_people:200,copy_drills:100,tool_transcripts:100"]


def small_preset(*extra):
    return get_preset("tiny", SMALL + list(extra))


def train_base(run, preset, **kwargs):
    """Pretrain `run`'s base stage with `preset`'s settings, as the pipeline's base stage does (quietly)."""
    return pretrain(preset.pretrain, stage_context(run, preset).at("base"), quiet=True, **kwargs)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A run with its data and tokenizer stages done (shared by the tests that pretrain)."""
    root = tmp_path_factory.mktemp("runs")
    run_pipeline(small_preset(), root, "r", until="tokenizer")
    return root / "r"


def fresh_copy(prepared, tmp_path, name):
    import shutil

    target = tmp_path / name
    shutil.copytree(prepared, target, ignore=shutil.ignore_patterns("base"))
    return Run(target)


def test_resume_after_a_kill_continues_the_same_loss_curve(prepared, tmp_path):
    straight = train_base(fresh_copy(prepared, tmp_path, "a"), small_preset())
    run = fresh_copy(prepared, tmp_path, "b")
    killed = train_base(run, small_preset(), stop_at=13)  # checkpoint at 10, steps 11-13 lost
    assert killed["step"] == 13 and not run.is_complete("base")
    resumed = train_base(run, small_preset())
    assert resumed["resumed_at"] == 10 and run.is_complete("base")  # a restart would end the same: see test_kills
    assert resumed["loss"] == straight["loss"]  # bitwise: same data order, optimizer and RNG state
    for a, b in zip(straight["model"].parameters(), resumed["model"].parameters()):
        assert torch.equal(a, b)
    log = [json.loads(line) for line in (run.stage_dir("base") / "logs" / "train.jsonl").read_text().splitlines()]
    assert any("heldout_loss" in r for r in log) and all("tokens_per_s" in r for r in log if "loss" in r)
    # every eval logs the reading probes, so the report can plot when reading appears
    evals = [r for r in log if "heldout_loss" in r]
    assert all({"induction_score", "copy_digits_8", "open_book_corpus", "open_book_novel"} <= r.keys() for r in evals)


def test_the_base_stage_is_a_loadable_hf_model_with_samples(prepared, tmp_path):
    from lab.model.loading import load_model_and_tokenizer

    run = fresh_copy(prepared, tmp_path, "c")
    train_base(run, small_preset())
    model, tokenizer = load_model_and_tokenizer(run.stage_dir("base"))
    assert model.config.vocab_size == len(tokenizer)
    samples = (run.stage_dir("base") / "samples.jsonl").read_text().splitlines()
    assert len(samples) == len(small_preset().sample.prompts)
    summary = json.loads((run.stage_dir("base") / "summary.json").read_text())
    assert summary["parameters"] == sum(p.numel() for p in model.parameters())  # counted, not the config's formula
    # half of each batch read in order from the stream: the epochs each part had, from the run's own token counts
    tokens = json.loads((run.stage_dir("base") / "data" / "meta.json").read_text())["tokens"]
    rows = small_preset().pretrain.max_steps * small_preset().pretrain.seq_len
    assert summary["stream_share"] == 0.5
    assert summary["epochs"] == pytest.approx({"corpus": rows * 2 / tokens["train"], "stream": rows * 2 / tokens["stream"]})
    assert model.config.training_precision in ("float32", "bfloat16 autocast")


def test_stream_windows_are_read_in_order_and_none_twice_in_a_pass(prepared, tmp_path):
    from lab.model.tokenizer import load_tokenizer
    from lab.train.pretrain import TokenWindows, ensure_tokens

    run = fresh_copy(prepared, tmp_path, "s")
    paths = ensure_tokens(run, load_tokenizer(run.require("tokenizer")))
    windows = TokenWindows(paths["stream"], 32)
    per_pass = (len(windows.tokens) - 1) // 32
    # consecutive windows tile the file: a pass reads every token once, in order, and none twice
    x, y = windows.batch_at(6, 0, "cpu")
    assert torch.equal(x.reshape(-1), torch.from_numpy(windows.tokens[: 6 * 32].astype("int64")))
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert y[:, -1].tolist() == [int(windows.tokens[32 * (i + 1)]) for i in range(6)]  # the target runs one on
    last, _ = windows.batch_at(1, per_pass - 1, "cpu")
    assert torch.equal(last[0], torch.from_numpy(windows.tokens[(per_pass - 1) * 32 : per_pass * 32].astype("int64")))
    again, _ = windows.batch_at(2, per_pass, "cpu")  # the next pass starts over
    assert torch.equal(again, x[:2])


def test_a_checkpoint_of_another_shape_is_refused(prepared, tmp_path):
    run = fresh_copy(prepared, tmp_path, "d")
    train_base(run, small_preset(), stop_at=5)
    with pytest.raises(LabError, match="hidden_size=32 but the settings ask for hidden_size=64"):
        train_base(run, small_preset("model.hidden_size=64"))


def test_lr_schedules_warm_up_then_decay_to_the_floor():
    cfg = small_preset("pretrain.max_steps=100", "pretrain.warmup_steps=10").pretrain
    lrs = [lr_at(s, cfg) for s in range(100)]
    assert lrs[0] < lrs[9] == pytest.approx(cfg.lr)
    assert lrs[-1] == pytest.approx(cfg.lr * cfg.min_lr_ratio, rel=0.01)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    cfg.schedule = "wsd"
    wsd = [lr_at(s, cfg) for s in range(100)]
    assert wsd[50] == cfg.lr and wsd[-1] < cfg.lr * 0.2


def torchrun(run, *overrides, port: int):
    """Pretrain `run` with 2 gloo processes; the ranks' checksums (rank 1's only under DDP)."""
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
         str(worker), str(run.root), *SMALL, "pretrain.max_steps=6", *overrides],
        capture_output=True, text=True, timeout=240, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(p.read_text()) for p in sorted(run.root.glob("rank*.json"))]


@pytest.fixture(scope="module")
def ddp_sums(prepared, tmp_path_factory):
    return torchrun(fresh_copy(prepared, tmp_path_factory.mktemp("ddp"), "ddp"), port=29517)


def test_ddp_with_two_gloo_processes_keeps_both_ranks_identical(ddp_sums):
    assert ddp_sums[0]["step"] == ddp_sums[1]["step"] == 6
    assert ddp_sums[0]["weights"] == ddp_sums[1]["weights"]  # gradients were all-reduced every step
    assert ddp_sums[0]["initial"] != ddp_sums[0]["weights"]  # and they did train


def test_fsdp_trains_the_same_model_as_ddp_and_resumes_from_its_checkpoint(prepared, tmp_path, ddp_sums):
    sharded = fresh_copy(prepared, tmp_path, "fsdp")
    straight = torchrun(sharded, "pretrain.parallel=fsdp", port=29518)
    assert len(straight) == 1 and straight[0]["step"] == 6  # only rank 0 holds the gathered model
    assert json.loads((sharded.stage_dir("base") / "summary.json").read_text())["parallel"] == "fsdp"
    # sharded parameters, the same data and maths: the same weights up to the order of float reductions
    assert straight[0]["weights"] == pytest.approx(ddp_sums[0]["weights"], rel=1e-6)
    run = fresh_copy(prepared, tmp_path, "fsdp-killed")
    torchrun(run, "pretrain.parallel=fsdp", "pretrain.ckpt_every=3", "stop_at=4", port=29519)  # step 4 is lost
    assert not run.is_complete("base") and (run.stage_dir("base") / "checkpoint").exists()
    resumed = torchrun(run, "pretrain.parallel=fsdp", "pretrain.ckpt_every=3", port=29520)
    assert resumed[0]["resumed_at"] == 3  # from the checkpoint, not from scratch (which ends the same)
    assert resumed[0]["weights"] == pytest.approx(straight[0]["weights"], rel=1e-6)


def test_an_unknown_parallel_strategy_is_one_clear_error(prepared, tmp_path):
    with pytest.raises(LabError, match="unknown pretrain.parallel 'zero'; valid: ddp, fsdp"):
        train_base(fresh_copy(prepared, tmp_path, "zero"), small_preset("pretrain.parallel=zero"))
