"""Seed replicates: children share the parent's pretraining through links, and the spread table is right."""

import json

import pytest

import lab.pipeline
from lab.errors import LabError
from lab.presets import Preset
from lab.replicate import replicate, spread
from lab.runs import Run


def _with_results(run: Run, correct: float) -> None:
    for stage in ("sft", "sft-idk"):
        folder = run.stage_dir(stage) / "evals" / "hallucination"
        folder.mkdir(parents=True)
        metric = {"value": correct, "stderr": 0.02, "ci95": [correct - 0.04, correct + 0.04], "n": 100}
        folder.joinpath("results.json").write_text(json.dumps({"metrics": {"correct": metric}}))


def _finished_parent(tmp_path) -> Run:
    """A run whose pipeline finished (seed 5), with one eval result in sft and sft-idk."""
    parent = Run.create_or_open(tmp_path / "tiny", Preset(seed=5))
    for stage in ("data", "tokenizer", "base", "experiments/knowledge", "evals"):
        parent.mark_complete(stage)
    _with_results(parent, 0.5)
    return parent


def test_spread_across_seeds_on_known_values(tmp_path):
    runs = {}
    for seed, value in ((0, 0.4), (1, 0.5), (2, 0.6)):
        runs[seed] = Run.create_or_open(tmp_path / str(seed), Preset(seed=seed))
        _with_results(runs[seed], value)
    rows = [r for r in spread(runs) if r["metric"] == "correct"]
    assert len(rows) == 2 and rows[0]["values"] == {0: 0.4, 1: 0.5, 2: 0.6}
    assert rows[0]["mean"] == pytest.approx(0.5) and rows[0]["sd"] == pytest.approx(0.1)
    assert rows[0]["item_ci_half_width"] == pytest.approx(0.04)


def test_replicate_links_the_parent_pretraining_and_runs_other_seeds(tmp_path, monkeypatch):
    parent = _finished_parent(tmp_path)
    calls = []

    def fake_pipeline(preset, root, name, until):  # what the children would have written
        calls.append((preset.seed, name, until))
        child = Run.create_or_open(root / name, preset)
        assert child.is_complete("base") and (child.root / "base").is_symlink()
        _with_results(child, 0.5 + (preset.seed - 5) / 10)

    monkeypatch.setattr(lab.pipeline, "run_pipeline", fake_pipeline)
    rows = replicate(parent, Preset(seed=5), seeds=2)
    assert calls == [(6, "seed-6", "evals"), (7, "seed-7", "evals")]
    assert rows[0]["values"] == {5: 0.5, 6: 0.6, 7: 0.7}
    assert "| sft | hallucination | correct | 0.500 | 0.600 | 0.700 | 0.600 ± 0.100 | ±0.040 |" in \
        parent.stage_dir("experiments/replicate").joinpath("table.md").read_text()
    claims = parent.stage_dir("experiments/replicate").joinpath("claims.md").read_text()
    assert claims.startswith("| claim | experiment | seed 5: effect [95% CI] | seed 6: effect [95% CI] | seed 7:")
    assert "| mean ± sd (seeds) | seeds agreeing (sign, CI off 0) | verdict across seeds |" in claims
    with pytest.raises(LabError, match="at least 1"):
        replicate(parent, Preset(seed=5), seeds=0)


def test_a_replicate_moves_every_training_seed_and_no_measuring_one():
    from lab.presets import get_preset
    from lab.replicate import reseeded

    preset = get_preset("tiny")
    after = reseeded(preset, 3, full=False)
    assert (after.seed, after.sft.mixture.seed, after.rl.seed, after.rm.seed, after.dpo.seed, after.ppo.seed,
            after.rlhf.seed, after.math_sft.seed) == (3,) * 8
    assert (after.data.world.seed, after.data.corpus.seed) == (0, 0)  # pretraining is shared, so is its data
    assert after.reading.seed == 0 and after.goodhart.seeds == preset.goodhart.seeds  # the same probe items
    full = reseeded(preset, 3, full=True)
    assert (full.data.world.seed, full.data.corpus.seed, full.seed) == (3, 3, 3) and full.reading.seed == 0
    assert preset.seed == 0 and preset.data.world.seed == 0  # the original is untouched


def test_a_full_replicate_reruns_the_whole_pipeline_into_its_own_folder(tmp_path, monkeypatch):
    parent = _finished_parent(tmp_path)
    calls = []

    def fake_pipeline(preset, root, name, until):
        calls.append((preset.seed, preset.data.world.seed, name, until))
        child = Run.create_or_open(root / name, preset)
        assert not (child.root / "base").exists()  # nothing linked: the child pretrains on its own world
        _with_results(child, 0.4)

    monkeypatch.setattr(lab.pipeline, "run_pipeline", fake_pipeline)
    replicate(parent, Preset(seed=5), seeds=1, full=True)
    assert calls == [(6, 1, "seed-6", "evals")]
    assert parent.is_complete("experiments/replicate-full") and not parent.is_complete("experiments/replicate")
    from reports.claims import claims_section, replicate_runs

    assert list(replicate_runs(parent)) == [5, 6]
    title, items = claims_section(parent)  # the report's claims table gains a column a seed
    assert "2 seeds" in title and items[1][1][0][2:4] == ["seed 5: effect [95% CI]", "seed 6: effect [95% CI]"]
