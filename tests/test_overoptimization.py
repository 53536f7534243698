"""Over-optimization (lab/experiments/overoptimization.py): the exact best-of-n estimator, Gao et al.'s fits, the ensemble
reward, and a whole tiny experiment end to end."""

import itertools
import json
import math
import random
from dataclasses import replace

import pytest
from test_pretrain import small_preset
from test_reward_model import scripted, source  # noqa: F401  (fixture)
from test_rl import at
from test_rlhf import copy_run, rm_run  # noqa: F401  (fixture)

from lab.errors import LabError
from lab.experiments.overoptimization import (
    OUT,
    best_of_n,
    bon_curve,
    bon_kl,
    ensemble_reward_fn,
    fit_bon,
    fit_rl,
    rl_points,
    run_overoptimization,
)
from lab.experiments.settings import OveroptimizationSettings
from lab.train.rl_settings import RLHFSettings
from rewards import preferences
from tasks.world import build_world


def test_best_of_n_is_the_exact_expectation_over_subsets():
    rng = random.Random(0)
    proxy, gold = [rng.random() for _ in range(9)], [rng.random() for _ in range(9)]
    for n in (1, 2, 5, 9):
        subsets = list(itertools.combinations(range(9), n))
        brute = [sum(v[max(s, key=lambda i: proxy[i])] for s in subsets) / len(subsets) for v in (proxy, gold)]
        assert best_of_n(proxy, gold, n) == pytest.approx(tuple(brute))
    assert best_of_n(proxy, gold, 1)[1] == pytest.approx(sum(gold) / 9)  # n = 1: the policy itself
    with pytest.raises(LabError, match="best-of-10"):
        best_of_n(proxy, gold, 10)


def test_bon_curve_uses_the_analytic_kl_and_a_stub_scorer():
    assert bon_kl(1) == 0 and bon_kl(64) == pytest.approx(math.log(64) - 63 / 64)
    # the proxy loves long answers, the gold judge likes them only up to a point
    proxy = [[float(i) for i in range(8)]] * 3
    gold = [[-(i - 3) ** 2 / 10 for i in range(8)]] * 3
    rows = bon_curve(proxy, gold, (1, 2, 4, 8))
    assert [r["n"] for r in rows] == [1, 2, 4, 8] and rows[-1]["proxy"] == 7.0
    assert rows[-1]["gold"] == pytest.approx(-1.6) and max(r["gold"] for r in rows) > rows[-1]["gold"]
    assert all(a["sqrt_kl"] < b["sqrt_kl"] for a, b in itertools.pairwise(rows))


def test_fits_recover_known_coefficients_and_peaks():
    rng = random.Random(1)
    d = [0.1 * i for i in range(1, 30)]
    bon = fit_bon(d, [x * (0.8 - 0.3 * x) + rng.gauss(0, 1e-3) for x in d])
    assert bon["alpha"] == pytest.approx(0.8, abs=0.01) and bon["beta"] == pytest.approx(0.3, abs=0.01)
    assert bon["d_peak"] == pytest.approx(0.8 / 0.6, rel=0.02)
    rl = fit_rl(d, [x * (0.5 - 0.2 * math.log(x)) + rng.gauss(0, 1e-3) for x in d])
    assert rl["alpha"] == pytest.approx(0.5, abs=0.01) and rl["beta"] == pytest.approx(0.2, abs=0.01)
    assert rl["d_peak"] == pytest.approx(math.exp(0.5 / 0.2 - 1), rel=0.05)
    assert fit_bon(d, [0.5 * x + 0.1 * x * x for x in d])["d_peak"] is None  # still accelerating: no peak
    with pytest.raises(LabError, match="at least 2 points"):
        fit_rl([0.5], [0.1])


def test_the_ensemble_reward_is_mean_minus_spread():
    fns = [lambda prompts, completions, **kw: [1.0, 0.0], lambda prompts, completions, **kw: [3.0, 0.0]]
    reward = ensemble_reward_fn(fns, k=0.5)
    assert reward.__name__ == "proxy" and reward(["p", "p"], ["a", "b"]) == pytest.approx([2.0 - 0.5, 0.0])


def test_rl_points_smooth_the_logged_steps():
    logs = [{"step": s, "proxy": float(s), "gold": -float(s), "kl_seq": float(s * s)} for s in (1, 2, 3)]
    logs.append({"train_runtime": 1.0, "step": 3})
    points = rl_points(logs, smooth=2)
    assert [p["step"] for p in points] == [1, 2, 3]
    assert points[2]["proxy"] == 2.5 and points[2]["kl"] == 6.5 and points[2]["sqrt_kl"] == pytest.approx(6.5 ** 0.5)


def test_a_tiny_experiment_writes_tables_plots_and_fits(rm_run, tmp_path, monkeypatch):  # noqa: F811
    run = copy_run(rm_run, tmp_path)
    preset = small_preset()
    scripted(monkeypatch, build_world(preset.data.world))  # the engine's samples replaced by four fixed answers
    settings = OveroptimizationSettings(
        bon_prompts=3, bon_samples=4, ns=(1, 2, 4), max_new_tokens=8, betas=(0.2,), ensemble_seeds=(0, 1),
        rl=RLHFSettings(steps=2, num_generations=4, batch_size=8, max_completion_length=8, lr=1e-3, beta=0.05,
                        ckpt_every=2))
    results = run_overoptimization(settings, at(run, OUT, preset=preset), preset.rm)
    out = run.stage_dir(OUT)
    assert (out / "table.md").exists() and (out / "overoptimization.png").stat().st_size > 1000
    assert [r["n"] for r in json.loads((out / "results.json").read_text())["best_of_n"]] == [1, 2, 4]
    assert set(results["rl"]) == {"beta=0.05", "beta=0.2", "ensemble"}
    assert all(run.is_complete(a["stage"]) and len(a["points"]) == 2 for a in results["rl"].values())
    assert (out / "rm-seed1" / "COMPLETE").exists() and not (out / "rm-seed0").exists()  # seed 0: the rm stage
    assert "Outcome" in (out / "table.md").read_text() and results["best_of_n_fit"]["alpha"] is not None
    monkeypatch.setattr(preferences, "sample_responses", None)  # a rerun reuses samples, RMs and arms
    assert run_overoptimization(settings, at(run, OUT, preset=preset), preset.rm)["best_of_n"] == results["best_of_n"]


def test_bad_input_is_one_clear_error(source, rm_run):  # noqa: F811
    with pytest.raises(LabError, match="stage 'rm' of run .* is not complete"):
        run_overoptimization(OveroptimizationSettings(), at(source, OUT, preset=small_preset()), small_preset().rm)
    with pytest.raises(LabError, match="bon_samples"):
        run_overoptimization(replace(OveroptimizationSettings(), bon_samples=8), at(rm_run, OUT, preset=small_preset()),
                             small_preset().rm)
