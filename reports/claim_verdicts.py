"""What a claim of the report's claims table is, and how its verdict follows from the effect that tests it.

Verdicts, from the effect's 95% CI against the claim's no-effect value:
  shown                    the CI excludes no effect, on the claimed side, and the effect is big enough to count
  not shown at this size   the CI includes no effect, or the effect is below the claim's smallest effect
  contradicted             the CI excludes no effect on the other side
  not measured in this run the run lacks the stage or file (the row says which command measures it)
Beside its verdict, a difference states the smallest effect its n could detect at 80% power (detectable_effect).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from lab.runs import Run


@dataclass(frozen=True)
class Effect:
    value: float
    low: float
    high: float
    n: int
    where: str = ""  # appended to the experiment's description (e.g. which stage it was read from)
    # a side condition the claim also needs, unmet (e.g. "accuracy with a check is not higher"); empty: met or none.
    # A CI on the claimed side with an unmet condition reads "not shown at this size".
    unmet: str = ""

    @classmethod
    def from_difference(cls, d: dict, sign: int = +1, where: str = "", means: bool = False, binary: bool = False,
                        unmet: str = "") -> Effect:
        """A paired_difference (or newcombe) dict as an effect; sign -1 flips it (A - B instead of B - A). `means`
        names the two means in the row ("A → B"); `binary`: a difference of 0/1 values, whose CLT interval is
        clipped to [-1, 1]."""
        low, high = sorted(x * sign for x in d["ci95"])
        if binary:
            low, high = max(low, -1.0), min(high, 1.0)
        said = [f"{d['mean_a']:.2f} → {d['mean_b']:.2f}"] if means else []
        return cls(d["difference"] * sign, low, high, d["n"], "; ".join(said + [where] if where else said), unmet)


@dataclass(frozen=True)
class Claim:
    claim: str
    experiment: str  # what is measured, named so a reader can find it in the run
    measure: Callable[[Run], Effect | None]  # None: the run lacks the stage or file
    command: str  # what measures it when the run lacks it
    direction: int = +1  # +1: the claim predicts an effect above `null`; -1: below
    null: float = 0.0  # the value of "no effect"
    min_effect: float = 0.05  # smaller effects do not count, even when the CI excludes no effect
    signed: bool = True  # a difference (shown with its sign) rather than a level


NOT_MEASURED = "not measured in this run"


def is_measured(effect: Effect | None) -> bool:
    return effect is not None and not any(math.isnan(x) for x in (effect.value, effect.low, effect.high))


def ci_side(claim: Claim, effect: Effect) -> int:
    """+1 when the whole CI lies on the claimed side of no effect, -1 on the other side, 0 when it straddles."""
    low, high = (effect.low - claim.null) * claim.direction, (effect.high - claim.null) * claim.direction
    if min(low, high) > 0:  # direction -1 swaps the ends
        return +1
    return -1 if max(low, high) < 0 else 0


def verdict(claim: Claim, effect: Effect | None) -> str:
    if not is_measured(effect):
        return f"{NOT_MEASURED} (`{claim.command}`)"
    side = ci_side(claim, effect)
    if side > 0:
        big_enough = (effect.value - claim.null) * claim.direction >= claim.min_effect
        return "shown" if big_enough and not effect.unmet else "not shown at this size"
    return "contradicted" if side < 0 else "not shown at this size"


def format_effect(effect: Effect, signed: bool) -> str:
    f = "{:+.3f}" if signed else "{:.3f}"
    return f"{f.format(effect.value)} [{f.format(effect.low)}, {f.format(effect.high)}]"


Z_95, Z_POWER_80 = 1.96, 0.84  # two-sided 5% test; 80% power


def detectable_effect(effect: Effect) -> float:
    """The smallest true effect this measurement would show (two-sided 5% test) with 80% power: (1.96 + 0.84) x SE,
    the standard error read back from the effect's 95% CI, SE = (high - low) / (2 x 1.96). A "not shown" beside a
    detectable effect larger than any that matters says the experiment was too small to decide, not that there is
    no effect."""
    return (Z_95 + Z_POWER_80) * (effect.high - effect.low) / (2 * Z_95)
