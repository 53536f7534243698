"""Is the model's confidence worth anything? Calibration curve, expected calibration error, and
accuracy vs coverage when the model abstains below a confidence threshold.

Confidence is the probability the model gave its own answer (evals/loglik.py). A calibrated model
that is 70% sure is right 70% of the time; then abstaining below a threshold trades coverage for
accuracy, which is exactly what "I don't know" training tries to teach the model to do by itself.
"""

from __future__ import annotations

import random

from evals.stats import bootstrap


def calibration_curve(confidence: list[float], correct: list[bool], bins: int = 10) -> list[dict]:
    """Equal-width confidence bins: mean confidence vs accuracy in each non-empty bin."""
    rows = []
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = [i for i, c in enumerate(confidence) if low <= c < high or (b == bins - 1 and c == 1.0)]
        if inside:
            rows.append({"low": low, "high": high, "n": len(inside),
                         "confidence": sum(confidence[i] for i in inside) / len(inside),
                         "accuracy": sum(correct[i] for i in inside) / len(inside)})
    return rows


def expected_calibration_error(confidence: list[float], correct: list[bool], bins: int = 10) -> float:
    """Sum over bins of (bin share) x |accuracy - mean confidence|; one pass, since the bootstrap calls it often."""
    count, conf_sum, hit_sum = [0] * bins, [0.0] * bins, [0] * bins
    for c, k in zip(confidence, correct):
        b = min(int(c * bins), bins - 1)
        count[b] += 1
        conf_sum[b] += c
        hit_sum[b] += k
    return sum(abs(hit_sum[b] - conf_sum[b]) for b in range(bins)) / max(len(confidence), 1)


def ece_metric(confidence: list[float], correct: list[bool], seed: int = 0) -> dict:
    """ECE with a percentile-bootstrap 95% CI (ECE is not a mean of per-item values, so no CLT interval)."""
    items = list(zip(confidence, correct))
    return bootstrap(items, lambda xs: expected_calibration_error([c for c, _ in xs], [k for _, k in xs]),
                     rng=random.Random(seed))


def coverage_curve(confidence: list[float | None], correct: list[bool], points: int = 10) -> list[dict]:
    """Accuracy on the answered questions when the model answers only at confidence >= threshold.

    `confidence` is None where the model abstained by itself (a refusal): those stay unanswered at
    every threshold. Thresholds are quantiles of the attempted answers' confidences, so the curve runs
    from "answer everything attempted" down to "answer only the most confident tenth"."""
    n = len(confidence)
    attempted = sorted(c for c in confidence if c is not None)
    if not attempted:
        return []
    thresholds = sorted({attempted[int(q * (len(attempted) - 1) / points)] for q in range(points)})
    rows = []
    for t in thresholds:
        answered = [i for i, c in enumerate(confidence) if c is not None and c >= t]
        hits = sum(correct[i] for i in answered)
        rows.append({"threshold": t, "coverage": len(answered) / n, "accuracy": hits / len(answered),
                     "incorrect_share_of_all": (len(answered) - hits) / n})
    return rows
