"""SFT on TRL: both variants train from base on the same budget; sft-idk's targets follow the probe."""

import json

import pytest
import torch
from test_pretrain import small_preset

from lab.pipeline import run_pipeline
from lab.presets import stage_context
from lab.runs import Run, read_train_log

SFT_SMALL = ["sft.epochs=2", "sft.log_every=1", "sft.batch_size=8", "sft.mixture.qa=40", "sft.mixture.math=8",
             "sft.mixture.spelling=8", "sft.mixture.tool_use=6", "sft.mixture.identity=4", "sft.mixture.context=4",
             "sft.probe_samples=2", "sft.max_length=256", "model.max_position_embeddings=256"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    run_pipeline(small_preset(*SFT_SMALL), root, "r", until="base")
    return root / "r"


def test_both_variants_train_with_the_same_budget_and_idk_refuses_unknowns(trained):
    from lab.train.sft import decide_known, sft

    run = Run(trained)
    preset = small_preset(*SFT_SMALL)
    a = sft(preset.sft, stage_context(run, preset).at("sft", "base"))
    b = sft(preset.sft, stage_context(run, preset).at("sft-idk", "base"))
    # the same mixture; sft-idk's lookups of what it does not know are longer, so more may exceed max_length
    assert a["conversations"] + a["dropped_too_long"] == b["conversations"] + b["dropped_too_long"]
    assert a["refusal_targets"] == 0
    probe = json.loads((run.stage_dir("sft-idk") / "probe.json").read_text())
    unknown_sampled = b["refusal_targets"]
    cfg = small_preset(*SFT_SMALL).sft
    known = decide_known(probe, cfg.known_unit, cfg.known_threshold)
    assert unknown_sampled > 0 and not all(known.values())
    for stage in ("sft", "sft-idk"):
        assert run.is_complete(stage)
        assert (run.stage_dir(stage) / "config.json").exists() and (run.stage_dir(stage) / "logs" / "train.jsonl").exists()
        # it learned its data: the training loss fell by more than the ~0.05 batch-to-batch noise (at lr 0 it would not)
        losses = [r["loss"] for r in read_train_log(run.stage_dir(stage)) if "loss" in r]
        assert len(losses) >= 6 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.1, losses


def test_lora_sft_merges_into_a_plain_checkpoint(trained, tmp_path):
    import shutil

    from lab.model.loading import load_model_and_tokenizer
    from lab.train.sft import sft

    copy = tmp_path / "r"
    shutil.copytree(trained, copy, ignore=shutil.ignore_patterns("sft", "sft-idk"))
    preset = small_preset(*SFT_SMALL, "sft.lora_r=4")
    sft(preset.sft, stage_context(Run(copy), preset).at("sft", "base"))
    model, _ = load_model_and_tokenizer(copy / "sft")
    base, _ = load_model_and_tokenizer(copy / "base")
    assert not any("lora" in n for n, _ in model.named_parameters())
    changed = [n for (n, p), (_, q) in zip(model.named_parameters(), base.named_parameters()) if not torch.equal(p, q)]
    assert changed and all("proj" in n for n in changed)  # only the adapted projections moved


def test_ckpt_every_zero_keeps_no_resume_checkpoint_and_below_zero_is_one_clear_error():
    from lab.errors import LabError
    from lab.train.trainers import checkpoint_args

    assert checkpoint_args(0) == {"save_strategy": "no"}  # the finished weights only (tests/test_gpu_preset.py)
    assert checkpoint_args(50) == {"save_strategy": "steps", "save_steps": 50, "save_total_limit": 1}
    with pytest.raises(LabError, match="ckpt_every must be >= 0"):
        checkpoint_args(-1)


def test_known_is_decided_per_question_or_per_person_and_a_bad_unit_is_one_clear_error():
    from lab.errors import LabError
    from lab.train.sft import decide_known

    probe = {"Ada|city": {"person": "Ada", "k": 4, "correct_share": 0.75},
             "Ada|year": {"person": "Ada", "k": 4, "correct_share": 0.0},
             "Bo|city": {"person": "Bo", "k": 4, "correct_share": 0.5},
             "Bo|year": {"person": "Bo", "k": 4, "correct_share": 0.25}}
    assert decide_known(probe, "question", 0.5) == {"Ada|city": True, "Ada|year": False, "Bo|city": True, "Bo|year": False}
    # per person: Ada's mean is 0.375, Bo's 0.375; at 0.3 both are known, at 0.5 neither, for every question
    assert decide_known(probe, "person", 0.3) == dict.fromkeys(probe, True)
    assert decide_known(probe, "person", 0.5) == dict.fromkeys(probe, False)
    with pytest.raises(LabError, match="sft.known_unit 'fact'"):
        decide_known(probe, "fact", 0.5)
