"""The math-rewards grid (lab/experiments/math_rewards.py): every arm from one checkpoint, graded on the same problems."""

import json
from dataclasses import asdict

import pytest
from test_rl import FAST, at, copy_run, source  # noqa: F401  (fixture: a run with an untrained tiny sft-idk)

from lab.errors import LabError
from lab.experiments.math_rewards import OUT, math_rewards_stage, run_math_rewards
from lab.experiments.settings import MATH_REWARDS_ARMS, MathRewardsSettings
from lab.presets import get_preset, stage_context
from lab.runs import Run
from lab.stage_names import MATH_REWARDS, RL_MATH, SFT_MATH
from lab.stages import by_name, stage_settings
from lab.train.rl_math import rl_math


def tiny_preset():
    preset = get_preset("tiny", ["sft.max_length=256"])
    for key, value in asdict(FAST).items():
        if key not in ("rewards", "reward_weights", "eval_every"):
            setattr(preset.rl, key, value)
    return preset


def test_every_arm_trains_from_one_checkpoint_and_is_graded_on_the_same_problems(source, tmp_path):  # noqa: F811
    run = copy_run(source, tmp_path)
    preset = tiny_preset()
    results = run_math_rewards(MathRewardsSettings(arms=("exact_match", "rloo", "sft")), at(run, OUT, preset=preset),
                               preset.rl)
    assert list(results["arms"]) == ["sft-idk", "baseline", "exact_match", "rloo", "sft"]  # the baseline always runs
    for arm in ("baseline", "exact_match", "rloo", "sft"):
        m = results["arms"][arm]
        assert m["vs_source"]["n"] == results["n"] == FAST.eval_problems and m["steps"] == FAST.steps
        assert run.is_complete(f"{OUT}/{arm}")
    log = [json.loads(line) for line in (run.stage_dir(f"{OUT}/exact_match") / "logs" / "train.jsonl").open()]
    assert all("rewards/exact_match/mean" in r and "accuracy" in r for r in log if "reward" in r)  # verifier tracked
    sft = json.loads((run.stage_dir(f"{OUT}/sft") / "summary.json").read_text())
    # the SFT arm's batches are sized to train on about as many tokens as the baseline's completions
    assert sft["tokens_trained"] == pytest.approx(sft["tokens_to_match"], rel=0.5)
    assert sft["tokens_to_match"] == results["arms"]["baseline"]["tokens_trained"] > 0
    assert all(results["arms"][arm]["sampled_vs_source"]["n"] == results["n"] for arm in ("baseline", "sft"))
    table = (run.stage_dir(OUT) / "table.md").read_text()
    assert all(f"| {arm} |" in table for arm in results["arms"])

    # an arm graded before sampled grading existed is graded from its saved model, with the same seeds
    after = run.stage_dir(f"{OUT}/rloo") / "heldout" / "after.jsonl"
    rows = [json.loads(line) for line in after.open()]
    after.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "sampled_share"}) + "\n" for r in rows))
    complete = run.stage_dir(f"{OUT}/rloo") / "COMPLETE"  # and completed before stages recorded their files
    complete.write_text(json.dumps({k: v for k, v in json.loads(complete.read_text()).items() if k != "files"}))
    preset = tiny_preset()
    run_math_rewards(MathRewardsSettings(arms=("exact_match", "rloo", "sft")), at(run, OUT, preset=preset), preset.rl)
    assert [json.loads(line)["sampled_share"] for line in after.open()] == [r["sampled_share"] for r in rows]


def test_an_unknown_arm_is_one_clear_error(source, tmp_path):  # noqa: F811
    preset = tiny_preset()
    with pytest.raises(LabError, match=f"unknown math-rewards arm.*valid: {', '.join(MATH_REWARDS_ARMS)}"):
        run_math_rewards(MathRewardsSettings(arms=("bogus",)), stage_context(Run(tmp_path / "r"), preset), preset.rl)


def test_a_baseline_stage_is_read_not_trained_again(source, tmp_path):  # noqa: F811
    """The pipeline's stage: rl-math is the baseline arm; only the sft arm trains, at rl-math's tokens, and rl-math's
    files (its grades before and after) are read as they are."""
    run = copy_run(source, tmp_path)
    preset = tiny_preset()
    rl_math(preset.rl, at(run, RL_MATH, preset=preset))
    files = {p: p.stat().st_mtime_ns for p in run.stage_dir(RL_MATH).rglob("*") if p.is_file()}
    settings = MathRewardsSettings(arms=("sft",), baseline_stage=RL_MATH)
    math_rewards_stage(settings, at(run, OUT, preset=preset))
    assert not run.stage_dir(f"{OUT}/baseline").exists() and run.is_complete(f"{OUT}/sft")
    assert {p: p.stat().st_mtime_ns for p in run.stage_dir(RL_MATH).rglob("*") if p.is_file()} == files
    results = json.loads((run.stage_dir(OUT) / "results.json").read_text())
    assert list(results["arms"]) == ["sft-idk", "baseline", "sft"] and results["baseline_stage"] == RL_MATH
    rl = json.loads((run.stage_dir(RL_MATH) / "summary.json").read_text())
    assert results["arms"]["baseline"]["steps"] == rl["steps"] and "rl-math" in results["arms"]["baseline"]["changes"]
    sft = json.loads((run.stage_dir(f"{OUT}/sft") / "summary.json").read_text())
    assert sft["tokens_to_match"] == results["arms"]["baseline"]["tokens_trained"] > 0
    assert sft["heldout_before"] == rl["heldout_before"]  # the start's grades are rl-math's, not graded again
    before = (run.stage_dir(RL_MATH) / "heldout" / "before.jsonl").read_text()
    assert (run.stage_dir(f"{OUT}/sft") / "heldout" / "before.jsonl").read_text() == before
    assert results["arms"]["sft"]["vs_baseline"]["n"] == results["n"]  # what the claims table reads

    with pytest.raises(LabError, match="math_rewards.baseline_stage"):
        math_rewards_stage(MathRewardsSettings(arms=("sft",)), at(run, OUT, preset=preset))


def test_the_comparison_is_a_pipeline_stage_after_rl_math():
    stage = by_name()[MATH_REWARDS]
    assert set(stage.parents) == {SFT_MATH, RL_MATH} and stage.source == SFT_MATH
    settings = stage_settings(stage, get_preset("tiny"))
    assert settings.arms == ("sft",) and settings.baseline_stage == RL_MATH
    assert get_preset("tiny").math_rewards.arms == tuple(MATH_REWARDS_ARMS)  # `lab experiment math-rewards`: every arm
