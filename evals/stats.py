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
