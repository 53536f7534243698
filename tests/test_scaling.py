"""The scaling sweep: size parsing, the power-law fit on known numbers, and a two-size sweep end to end."""

import json

import pytest
from test_pretrain import small_preset

from lab.errors import LabError
from lab.experiments.scaling import fit_power_law, parse_sizes, run_sweep
from lab.pipeline import run_pipeline
from lab.presets import stage_context
from lab.runs import Run


def test_parse_sizes_and_its_errors():
    assert parse_sizes("32x1, 64X2") == ((32, 1), (64, 2))
    with pytest.raises(LabError, match="hidden size x layers"):
        parse_sizes("32-1")
    with pytest.raises(LabError, match="multiples of 32"):
        parse_sizes("48x2")


def test_power_law_fit_recovers_known_coefficients():
    params = [1e4, 3e4, 1e5, 3e5, 1e6]
    losses = [1.5 + 40 * n ** -0.35 for n in params]
    fit = fit_power_law(params, losses)
    assert fit["alpha"] == pytest.approx(0.35, abs=0.03) and fit["E"] == pytest.approx(1.5, abs=0.1)


def test_sweep_trains_each_size_once_and_writes_table_and_plot(tmp_path):
    preset = small_preset("pretrain.max_steps=4", "pretrain.ckpt_every=2", "pretrain.log_every=2")
    run_pipeline(preset, tmp_path, "r", until="tokenizer")
    run = Run.open_existing(tmp_path / "r")
    context = stage_context(run, preset).at("experiments/scaling")
    rows = run_sweep(preset.scaling, context, preset.pretrain, ((32, 1), (64, 1)), steps=4)
    assert [r["size"] for r in rows] == ["d32-l1", "d64-l1"]
    assert rows[0]["parameters"] < rows[1]["parameters"] and rows[0]["flops"] < rows[1]["flops"]
    assert set(rows[0]["recall_by_k"]) == {"0", "1", "2"}
    assert {"induction_score", "copy_digits_8", "open_book_corpus", "open_book_novel"} <= set(rows[0]["reading"])
    out = run.stage_dir("experiments/scaling")
    assert "induction score" in (out / "table.md").read_text()
    assert json.loads((out / "results.json").read_text())["fit"]["alpha"] is not None
    assert (out / "scaling.png").stat().st_size > 1000 and "| d64-l1 |" in (out / "table.md").read_text()
    stamp = (out / "d32-l1" / "COMPLETE").stat().st_mtime_ns
    run_sweep(preset.scaling, context, preset.pretrain, ((32, 1), (64, 1)), steps=4)
    assert (out / "d32-l1" / "COMPLETE").stat().st_mtime_ns == stamp  # finished sizes are not retrained


def test_every_preset_has_a_valid_sweep():
    from lab.presets import PRESETS, get_preset

    for name in PRESETS:
        assert len(parse_sizes(get_preset(name).scaling.sizes)) >= 4
