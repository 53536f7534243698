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


def newcombe(x1: int, n1: int, x2: int, n2: int) -> dict:
    """p2 - p1 of two independent proportions with Newcombe's hybrid Wilson-score 95% interval (method 10)."""
    if not n1 or not n2:
        return {"difference": float("nan"), "ci95": [float("nan"), float("nan")], "n": n1 + n2}
    a, b = x1 / n1, x2 / n2
    (l1, u1), (l2, u2) = wilson_interval(x1, n1), wilson_interval(x2, n2)
    d = b - a
    return {"difference": d, "ci95": [d - math.sqrt((b - l2) ** 2 + (u1 - a) ** 2),
                                      d + math.sqrt((u2 - b) ** 2 + (a - l1) ** 2)], "n": n1 + n2}


def format_difference(d: dict, n: bool = True) -> str:
    """A paired_difference (or newcombe) dict as "+0.123 [+0.050, +0.196] (n 300)" (without "(n 300)": n=False)."""
    low, high = d["ci95"]
    return f"{d['difference']:+.3f} [{low:+.3f}, {high:+.3f}]" + (f" (n {d['n']})" if n else "")


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
