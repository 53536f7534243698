"""Statistics behind eval results: calibration, coverage, pass@k and the bootstrap, on known numbers."""

import random

import pytest

from evals.calibration import (
    calibration_curve,
    coverage_curve,
    expected_calibration_error,
)
from evals.harness import pass_at_k
from evals.stats import bootstrap, mean_metric


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_overconfident():
    conf = [0.25] * 4 + [0.75] * 4
    hits = [True, False, False, False, True, True, True, False]
    assert expected_calibration_error(conf, hits) == pytest.approx(0.0)
    assert expected_calibration_error([0.95] * 10, [True] * 5 + [False] * 5) == pytest.approx(0.45)
    curve = calibration_curve(conf, hits)
    assert [(r["n"], r["accuracy"]) for r in curve] == [(4, 0.25), (4, 0.75)]
    assert calibration_curve([1.0], [True])[-1]["high"] == 1.0  # confidence 1.0 lands in the last bin


def test_coverage_curve_keeps_refusals_unanswered_and_trades_coverage_for_accuracy():
    conf = [0.9, 0.8, 0.3, 0.2, None]  # the last question was refused by the model itself
    hits = [True, True, False, False, False]
    rows = coverage_curve(conf, hits, points=4)
    assert rows[0]["coverage"] == pytest.approx(0.8) and rows[0]["accuracy"] == pytest.approx(0.5)
    assert rows[-1]["accuracy"] == 1.0 and rows[-1]["coverage"] < rows[0]["coverage"]
    assert coverage_curve([None, None], [False, False]) == []


def test_pass_at_k_matches_the_combinatorial_formula():
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert pass_at_k(5, 0, 5) == 0.0 and pass_at_k(5, 1, 5) == 1.0
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - 3 / 6)  # 1 - C(3,2)/C(4,2)


def test_bootstrap_interval_covers_the_statistic_and_mean_metric_uses_the_clt():
    rng = random.Random(0)
    items = [rng.random() < 0.3 for _ in range(400)]
    r = bootstrap(items, lambda xs: sum(xs) / len(xs), random.Random(1))
    assert r["ci95"][0] < r["value"] < r["ci95"][1] and r["n"] == 400
    assert r["stderr"] == pytest.approx((0.3 * 0.7 / 400) ** 0.5, rel=0.25)
    m = mean_metric([1.0, 2.0, 3.0])
    assert m["value"] == 2.0 and m["stderr"] == pytest.approx((1 / 3) ** 0.5)
