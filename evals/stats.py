"""Statistics for eval results: proportions with confidence intervals.

Wilson score intervals for proportions: unlike the normal approximation they stay inside [0, 1] and
behave at p near 0 or 1, which is where hallucination rates on unseen people live."""

from __future__ import annotations

import math


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
