"""The forest plot the report opens with: every claim a row, its effect and 95% CI in each seed on one axis.

Claims are measured on different scales (differences of proportions, levels against a null such as 0.5, a fitted
exponent, an induction score), so the common axis is each effect minus its claim's no-effect value, times the
direction the claim predicts: right of 0 is the claimed side in every row, and each row's smallest effect that
counts (claim.min_effect) is marked on it. Markers are coloured by the seed's verdict (reports/claim_verdicts.py).
reports/report.py draws it from reports/claims.measure_claims; `forest_png(rows)` returns the base64 PNG.
"""

from __future__ import annotations

import base64
import io
import textwrap
from dataclasses import dataclass

from reports.claim_verdicts import NOT_MEASURED, Claim, Effect, verdict

# Okabe-Ito colours: told apart with the commonest colour-vision deficiencies.
COLOURS = {"shown": "#0072B2", "not shown at this size": "#E69F00", "contradicted": "#D55E00",
           NOT_MEASURED: "#8C8C8C"}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")  # one a seed (or run and seed), in order
WIDTH_IN = 10.0  # the HTML column is ~1000 CSS px (10.4 in at 96 px an inch): text shows near its point size
DPI = 160  # sharp on high-density screens; the page scales it down to the column
FONT_PT = 10.5  # every text of the figure; the browser test checks its size as displayed
LABEL_CHARS = 36  # claim names wrap at this many characters
LIMIT = 1.2  # the axis stops here (either side): CIs running past it end in an arrow at the edge

CAPTION = ("Forest plot of every claim: each claim's effect and 95% CI in each seed (marker shape) on one axis, the "
           "effect minus the claim's no-effect value, times the direction it predicts, so right of 0 is the claimed "
           "side in every row; the black tick is the smallest effect the claim counts. Colour: that seed's verdict. "
           "Rows are on their own scales (differences of proportions, levels, a fitted exponent): read each against "
           "0 and its tick, not against the other rows.")


@dataclass(frozen=True)
class Point:
    row: int  # the claim's row, top first
    seed: str
    value: float  # on the common axis
    low: float
    high: float
    verdict: str  # shown, not shown at this size, contradicted


def aligned(claim: Claim, effect: Effect) -> tuple[float, float, float]:
    """(value, low, high) on the common axis: minus the claim's no effect, times its direction."""
    ends = sorted(((effect.low - claim.null) * claim.direction, (effect.high - claim.null) * claim.direction))
    return (effect.value - claim.null) * claim.direction, ends[0], ends[1]


def verdict_kind(claim: Claim, effect: Effect | None) -> str:
    """The verdict without the command a "not measured" row names: the key of COLOURS."""
    said = verdict(claim, effect)
    return NOT_MEASURED if said.startswith(NOT_MEASURED) else said


def forest_points(rows: list[tuple[Claim, dict[str, Effect | None]]]) -> list[Point]:
    """One point a measured (claim, seed); a seed that did not measure a claim has none."""
    return [Point(i, seed, *aligned(claim, e), verdict_kind(claim, e))
            for i, (claim, effects) in enumerate(rows) for seed, e in effects.items() if e is not None]


def _limits(rows, points: list[Point]) -> tuple[float, float]:
    """Every value and smallest effect in view; CIs as far as LIMIT."""
    values = [p.value for p in points] + [c.min_effect for c, _ in rows] + [0.0]
    low = min(min(values), max(-LIMIT, min((p.low for p in points), default=0.0)))
    high = max(max(values), min(LIMIT, max((p.high for p in points), default=0.0)))
    pad = 0.05 * (high - low or 1.0)
    return low - pad, high + pad


def forest_figure(rows: list[tuple[Claim, dict[str, Effect | None]]]):
    """The figure: a row a claim (top first), one marker and CI line a seed, coloured by that seed's verdict."""
    import matplotlib  # lazy: matplotlib is slow to import, and only the plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    points = forest_points(rows)
    seeds = list(dict.fromkeys(seed for _, effects in rows for seed in effects))
    marker = {seed: MARKERS[i % len(MARKERS)] for i, seed in enumerate(seeds)}
    offset = {seed: (i - (len(seeds) - 1) / 2) * min(0.5 / max(len(seeds) - 1, 1), 0.2) for i, seed in enumerate(seeds)}
    left, right = _limits(rows, points)
    height = 0.42 * len(rows) + 1.9  # inches: two lines of label a row, the legend and both axes' ticks
    fig, ax = plt.subplots(figsize=(WIDTH_IN, height))
    fig.subplots_adjust(left=0.33, right=0.98, top=1 - 1.15 / height, bottom=0.6 / height)
    for i in range(0, len(rows), 2):  # banded rows guide the eye from a label to its markers
        ax.axhspan(i - 0.5, i + 0.5, color="#f2f2f2", zorder=0)
    ax.axvline(0, color="#444444", lw=1, zorder=1)
    for i, (claim, effects) in enumerate(rows):
        if claim.min_effect > 0:
            ax.plot([claim.min_effect], [i], marker="|", color="black", markersize=16, mew=2, zorder=2)
        if all(e is None for e in effects.values()):  # right-aligned: clear of 0 and of the smallest-effect tick
            ax.text(right - 0.01 * (right - left), i, "not measured in this run", va="center", ha="right",
                    fontsize=FONT_PT, color=COLOURS[NOT_MEASURED], style="italic")
    for p in points:
        y, colour = p.row + offset[p.seed], COLOURS[p.verdict]
        low, high = max(p.low, left), min(p.high, right)
        ax.plot([low, high], [y, y], color=colour, lw=2, zorder=3, solid_capstyle="butt")
        for end, edge, arrow in ((p.low, left, "<"), (p.high, right, ">")):
            if (end < edge) if arrow == "<" else (end > edge):
                ax.plot([edge], [y], marker=arrow, color=colour, markersize=7, zorder=3)
        ax.plot([min(max(p.value, left), right)], [y], marker=marker[p.seed], color=colour, markersize=7.5,
                markeredgecolor="white", mew=0.8, zorder=4)
    ax.set_yticks(range(len(rows)), [textwrap.fill(c.claim, LABEL_CHARS) for c, _ in rows], fontsize=FONT_PT)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(left, right)
    ax.tick_params(axis="x", labelsize=FONT_PT, top=True, labeltop=True)
    ax.grid(axis="x", alpha=0.35, zorder=0)
    ax.set_xlabel("effect − no effect, signed so that right of 0 is the claimed side", fontsize=FONT_PT)
    verdicts = [Line2D([], [], color=c, marker="o", lw=2, label=k) for k, c in COLOURS.items() if k != NOT_MEASURED]
    extra = [Line2D([], [], color="black", marker="|", lw=0, markersize=12, mew=2, label="smallest effect that counts")]
    shapes = [Line2D([], [], color="#555555", marker=marker[s], lw=0, label=str(s)) for s in seeds]
    fig.legend(handles=verdicts + extra + shapes, loc="upper center", ncol=min(4, len(verdicts + extra + shapes)),
               fontsize=FONT_PT, frameon=False, bbox_to_anchor=(0.5, 1.0))
    return fig


def forest_png(rows: list[tuple[Claim, dict[str, Effect | None]]]) -> str | None:
    """The figure as a base64 PNG, None when there is no claim to draw."""
    if not rows:
        return None
    fig = forest_figure(rows)
    import matplotlib.pyplot as plt  # after forest_figure chose the Agg backend

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)  # no tight bbox: the width stays WIDTH_IN, so text keeps its size
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()
