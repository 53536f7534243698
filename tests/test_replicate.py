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
    parent = Run.create_or_open(tmp_path / "tiny", Preset(seed=5))
    for stage in ("data", "tokenizer", "base", "experiments/knowledge", "evals"):
        parent.mark_complete(stage)
    _with_results(parent, 0.5)
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
    with pytest.raises(LabError, match="at least 1"):
        replicate(parent, Preset(seed=5), seeds=0)
