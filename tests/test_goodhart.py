"""The Goodhart experiment (lab/experiments/goodhart.py): an RM per (size, seed), GRPO against each, every snapshot judged."""

import json

import pytest
from test_pretrain import small_preset
from test_reward_model import scripted, source  # noqa: F401  (fixture rm_run builds on)
from test_rl import at, copy_run
from test_rlhf import rm_run  # noqa: F401  (fixture: a tiny run with sft-idk and rm stages)

from lab.errors import LabError
from lab.experiments.goodhart import OUT, run_goodhart
from lab.experiments.settings import GoodhartSettings
from lab.runs import Run
from tasks.world import build_world

TINY = ["rm.epochs=1", "rm.max_new_tokens=8", "rm.batch_size=8", "rm.label_mode=argmax", "rm.heldout_share=0.3",
        "rlhf.batch_size=8", "rlhf.max_completion_length=8", "rlhf_methods.prompts=8",
        "rlhf_methods.max_new_tokens=8", "rlhf_methods.batch_size=4"]


def test_each_reward_model_gets_a_judged_path_and_a_turnover_test(rm_run, tmp_path, monkeypatch):  # noqa: F811
    run = copy_run(rm_run, tmp_path)
    preset = small_preset(*TINY)
    scripted(monkeypatch, build_world(preset.data.world))
    results = run_goodhart(GoodhartSettings(pairs=(16, 24), seeds=(0,), steps=2, snapshot_every=1),
                           at(run, OUT, preset=preset), preset.rm, preset.rlhf, preset.rlhf_methods)
    assert list(results["rms"]) == ["rm-16-seed0", "rm-24-seed0"]
    for name, r in results["rms"].items():
        assert run.is_complete(f"{OUT}/{name}") and run.is_complete(f"{OUT}/{name}/rlhf-grpo")
        assert [p["step"] for p in r["path"]] == [0, 1, 2] and r["path"][0]["kl"] == 0.0
        assert r["turnover"]["final_minus_peak"]["n"] == 4 and 0 <= r["rm_heldout_accuracy"] <= 1
    assert results["by_size"]["24"]["runs"] == 1
    rows = [json.loads(line) for line in (run.stage_dir(OUT) / "samples" / "rm-16-seed0" / "sft-idk.jsonl").open()]
    assert len(rows) == 8 and {"proxy", "gold", "kl"} <= rows[0].keys()
    assert "| rm-24-seed0 |" in (run.stage_dir(OUT) / "table.md").read_text()


def test_too_small_a_reward_model_is_refused(tmp_path):
    preset = small_preset()
    with pytest.raises(LabError, match="at least 8 comparisons"):
        run_goodhart(GoodhartSettings(pairs=(4,)), at(Run(tmp_path), OUT, preset=preset), preset.rm, preset.rlhf,
                     preset.rlhf_methods)


def test_the_pipelines_rm_gamed_run_uses_the_recipes_the_run_recorded(rm_run, tmp_path, monkeypatch):  # noqa: F811
    from dataclasses import asdict, replace

    from lab.experiments.goodhart import rm_gamed
    from lab.runs import write_json
    from lab.stage_names import RLHF_GRPO, RLHF_METHODS, RM_GAMED
    from reports.claim_measures import reward_model_gamed

    run = copy_run(rm_run, tmp_path)
    preset = small_preset(*TINY)
    scripted(monkeypatch, build_world(preset.data.world))
    # what rlhf-grpo and rlhf-methods recorded, differing from the preset: the stage must read these
    for stage, name, settings in ((RLHF_GRPO, "summary.json", replace(preset.rlhf, max_completion_length=6)),
                                  (RLHF_METHODS, "results.json", preset.rlhf_methods)):
        write_json(run.open_stage(stage) / name, {"settings": asdict(settings)})
        run.mark_complete(stage)
    assert reward_model_gamed(run) is None  # nothing to read yet: "not measured", not a made-up number
    rm_gamed(GoodhartSettings(pairs=(16,), seeds=(0,), steps=2, snapshot_every=1), at(run, RM_GAMED, preset=preset))
    grpo = json.loads((run.stage_dir(RM_GAMED) / "rm-16-seed0" / "rlhf-grpo" / "summary.json").read_text())
    assert grpo["settings"]["max_completion_length"] == 6 and grpo["settings"]["steps"] == 2
    assert run.is_complete(RM_GAMED) and not run.stage_dir(OUT).exists()
    effect = reward_model_gamed(run)
    assert effect.n == 4 and "experiments/rm-gamed, rm-16-seed0" in effect.where
