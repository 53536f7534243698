"""Statistics for eval results: proportions with confidence intervals.

Wilson score intervals for proportions: unlike the normal approximation they stay inside [0, 1] and
behave at p near 0 or 1, which is where hallucination rates on unseen people live."""

from __future__ import annotations

import math
import random


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def proportion(successes: int, n: int) -> dict:
    """value, stderr (binomial), 95% Wilson CI and n, the shape every metric in results.json takes."""
    p = successes / n if n else float("nan")
    low, high = wilson_interval(successes, n)
    stderr = math.sqrt(p * (1 - p) / n) if n else float("nan")
    return {"value": p, "stderr": stderr, "ci95": [low, high], "n": n}


def format_ci(metric: dict, digits: int = 2) -> str:
    """A metric as "value [low, high]" for tables."""
    low, high = metric["ci95"]
    return f"{metric['value']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def paired_difference(a: list[float], b: list[float], z: float = 1.96) -> dict:
    """Mean of b - a over paired items, with a CLT interval from the per-item differences.

    Pairing removes the between-item variance that two independent intervals would double count: the
    same questions asked of two checkpoints differ far less than two random question sets do."""
    if len(a) != len(b) or not a:
        raise ValueError("paired_difference needs two equally long, non-empty lists")
    diffs = [y - x for x, y in zip(a, b)]
    n = len(diffs)
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
    stderr = math.sqrt(var / n)
    return {"mean_a": sum(a) / n, "mean_b": sum(b) / n, "difference": mean, "stderr": stderr,
            "ci95": [mean - z * stderr, mean + z * stderr], "n": n}


def mean_metric(values: list[float], z: float = 1.96) -> dict:
    """A mean of per-item values (response length, pass@k) with a CLT interval, in the metric shape."""
    n = len(values)
    if n == 0:
        return {"value": float("nan"), "stderr": float("nan"), "ci95": [float("nan"), float("nan")], "n": 0}
    mean = sum(values) / n
    stderr = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n) if n > 1 else 0.0
    return {"value": mean, "stderr": stderr, "ci95": [mean - z * stderr, mean + z * stderr], "n": n}


def bootstrap(items: list, statistic, rng: random.Random, resamples: int = 1000) -> dict:
    """A statistic of a whole sample (ECE, F-score) with a percentile-bootstrap 95% interval.

    Resampling items with replacement captures the statistic's sampling spread without a formula;
    1000 resamples put the 2.5% / 97.5% percentiles within about 0.01 of their limits."""
    n = len(items)
    if n == 0:
        return {"value": float("nan"), "stderr": float("nan"), "ci95": [float("nan"), float("nan")], "n": 0}
    stats = sorted(statistic([items[rng.randrange(n)] for _ in range(n)]) for _ in range(resamples))
    mean = sum(stats) / resamples
    stderr = math.sqrt(sum((s - mean) ** 2 for s in stats) / (resamples - 1))
    return {"value": statistic(items), "stderr": stderr,
            "ci95": [stats[int(0.025 * resamples)], stats[int(0.975 * resamples) - 1]], "n": n}
