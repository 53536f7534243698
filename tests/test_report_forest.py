"""The report's opening as a reader meets it: the forest plot of every claim (each claim's effect and CI per seed
on one axis, coloured by verdict) before the claims table, legible in a laptop's browser window; the stage table's
row for the report being written; and the smallest effect a difference could detect, beside its verdict."""

import base64
import json
import math
import statistics
from pathlib import Path

import pytest
from test_report import (
    _difference,
    _fake_eval,
    _metric,
    _write_results,
    browser,  # noqa: F401  (fixture)
    rendering_problems,
)

from lab.pipeline import STAGE_NAMES
from lab.presets import Preset
from lab.runs import Run
from reports.report import write_report

FOREST_ALT = "Forest plot of every claim"


def forest_problems(driver, path: Path) -> list[str]:
    """What keeps a reader on a laptop (a 1280 x 800 window) from reading the forest plot the report opens with:
    missing, not loaded, not the page's first figure, after the claims table, wider than the window, or shrunk so
    far that its text (reports/forest.FONT_PT at forest.DPI) shows below 9 pt (12 CSS px)."""
    from reports.forest import DPI, FONT_PT

    driver.set_window_size(1280, 800)
    driver.get(path.resolve().as_uri())
    found = driver.execute_script("""
        const img = Array.from(document.images).find(i => i.alt.startsWith(arguments[0]));
        if (!img) return null;
        const table = Array.from(document.querySelectorAll('table')).find(
            t => t.tHead && Array.from(t.tHead.rows[0].cells).some(c => c.textContent.startsWith('verdict')));
        return {natural: img.naturalWidth, width: img.getBoundingClientRect().width, first: document.images[0] === img,
                viewport: document.documentElement.clientWidth,
                before: table ? Boolean(img.compareDocumentPosition(table) & Node.DOCUMENT_POSITION_FOLLOWING) : null};
        """, FOREST_ALT)
    if found is None:
        return ["no forest plot"]
    problems = [] if found["natural"] > 0 else ["forest plot not loaded"]
    problems += [] if found["first"] else ["the forest plot is not the report's first figure"]
    problems += {None: ["no claims table"], False: ["the forest plot comes after the claims table"]}.get(found["before"], [])
    if found["width"] > found["viewport"]:
        problems.append(f"the forest plot is {found['width']:.0f} px wide in a {found['viewport']} px window")
    if found["width"] < 600:
        problems.append(f"the forest plot is shrunk to {found['width']:.0f} px")
    elif found["natural"] and FONT_PT * DPI / 72 * found["width"] / found["natural"] < 12:
        problems.append("the forest plot's text shows below 9 pt")
    return problems


def _seeded_run(tmp_path: Path) -> Run:
    """A run with a finished full replicate of one more seed, each with spelling and math results: claims shown,
    contradicted, not shown and not measured, in two seeds."""
    from reports.claims import FULL_REPLICATE

    run = Run.create_or_open(tmp_path / "r", Preset(seed=0))
    child = Run.create_or_open(run.stage_dir(FULL_REPLICATE) / "seed-1", Preset(seed=1))
    for r, shift in ((run, 0.0), (child, 0.03)):
        _write_results(r, "sft-idk", "spelling", {
            "steps_minus_direct": _difference(0.12 + shift, 0.05 + shift, 0.19 + shift),
            "tool_minus_direct": _difference(-0.10, -0.16, -0.04)}, {"condition": {"direct": {"correct": _metric(0.3)}}})
        _write_results(r, "sft-math", "math", {"worked_minus_direct_arithmetic": _difference(0.02, -0.03, 0.07)})
    run.stage_dir(FULL_REPLICATE).joinpath("summary.json").write_text(json.dumps({"seeds": [0, 1]}))
    run.stage_dir(FULL_REPLICATE).joinpath("table.md").write_text("| metric | seed 0 | seed 1 |\n|---|---|---|\n")
    run.mark_complete(FULL_REPLICATE)
    return run


def test_forest_plot_puts_every_claim_on_one_axis_with_the_claimed_side_right(tmp_path):
    from reports.claim_verdicts import Claim, Effect
    from reports.claims import CLAIMS, claim_runs, measure_claims
    from reports.forest import DPI, FONT_PT, WIDTH_IN, aligned, forest_figure, forest_png, forest_points

    below = Claim("fails: below 0.5", "x", lambda run: None, "cmd", direction=-1, null=0.5)
    assert aligned(below, Effect(0.3, 0.25, 0.35, 100)) == pytest.approx((0.2, 0.15, 0.25))  # 0.2 below 0.5: right
    rows = [(c, {f"seed {s}": e for s, e in found.items()}) for c, found in measure_claims(claim_runs(_seeded_run(tmp_path)))]
    assert [c for c, _ in rows] == list(CLAIMS)
    kinds = {(rows[p.row][0].claim, p.seed): p.verdict for p in forest_points(rows)}
    assert kinds[("step by step helps (spelling)", "seed 1")] == "shown"
    assert kinds[("a code tool solves them", "seed 0")] == "contradicted"
    assert kinds[("models need tokens to think", "seed 0")] == "not shown at this size"
    assert kinds[("counting and spelling fail on tokens", "seed 1")] == "shown"  # 0.3, below its null 0.5
    assert not any(claim == "similar words get similar embeddings" for claim, _ in kinds)  # not measured: no point
    fig = forest_figure(rows)
    sizes = [t.get_fontsize() for t in fig.findobj(lambda a: hasattr(a, "get_fontsize") and a.get_text().strip())]
    assert sizes and min(sizes) >= FONT_PT
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == len(CLAIMS) and max(len(line) for text in labels for line in text.splitlines()) <= 40
    data = base64.b64decode(forest_png(rows))
    assert int.from_bytes(data[16:20], "big") == round(WIDTH_IN * DPI)  # PNG width: the figure is not cropped


def test_report_opens_with_a_forest_plot_legible_at_a_laptops_width(browser, tmp_path):  # noqa: F811
    run = _seeded_run(tmp_path)
    out = write_report([run], tmp_path / "report", STAGE_NAMES)
    md = (out / "report.md").read_text()
    assert md.index(f"![{FOREST_ALT}") < md.index("## Claims and what this run shows (r, 2 seeds)")
    assert (out / "claims_forest.png").stat().st_size > 10_000
    page = out / "report.html"
    assert forest_problems(browser, page) == []
    assert rendering_problems(browser, page) == []
    # the same page broken the ways the check is for: each is caught
    text = page.read_text()
    start = text.index("<figure><img alt=\"" + FOREST_ALT)
    figure = text[start:text.index("</figure>", start) + len("</figure>")]
    after = text.replace(figure, "").replace("</table>", "</table>" + figure, 1)
    wide = text.replace("img{max-width:100%}", "img{max-width:none}")
    tiny = text.replace("<img alt=\"" + FOREST_ALT, "<img width=\"400\" alt=\"" + FOREST_ALT)
    for name, html, problem in (("missing", text.replace(figure, ""), "no forest plot"),
                                ("after", after, "the forest plot comes after the claims table"),
                                ("wide", wide, "the forest plot is 1600 px wide in a"),
                                ("tiny", tiny, "the forest plot is shrunk to 400 px")):
        broken = tmp_path / f"{name}.html"
        broken.write_text(html)
        assert any(p.startswith(problem) for p in forest_problems(browser, broken)), name


def test_the_stage_table_shows_the_report_being_written_not_as_not_run(tmp_path):
    run = Run.create_or_open(tmp_path / "r", Preset())
    _fake_eval(run, "sft", [1, 0])
    md = (write_report([run], run.stage_dir("report"), STAGE_NAMES) / "report.md").read_text()  # the report stage
    assert "| report | this report (writing now) |" in md and "| sft | not run |" in md
    md = (write_report([run], tmp_path / "elsewhere", STAGE_NAMES) / "report.md").read_text()  # `lab report --out`
    assert "| report | not run |" in md


def test_online_vs_dpo_states_the_smallest_effect_its_n_could_detect(tmp_path):
    """The PPO-vs-DPO row read from the files rlhf-methods writes: gold of the same prompts, paired; its verdict
    names the effect detectable at 80% power, (1.96 + 0.84) x the standard error of the paired differences."""
    from reports.claims import claim_rows, claim_rows_across

    row = "PPO vs GRPO vs RLOO vs DPO: online RL beats offline DPO"
    ppo, dpo = [0.5, 0.6, 0.4, 0.7, 0.5, 0.6, 0.3, 0.6], [0.5] * 8
    runs = {}
    for seed, scale in ((0, 1.0), (1, 2.0)):
        runs[seed] = run = Run.create_or_open(tmp_path / str(seed), Preset(seed=seed))
        folder = run.stage_dir("experiments/rlhf-methods")
        (folder / "samples").mkdir(parents=True)
        for method, golds in (("rlhf-ppo", [0.5 + (g - 0.5) * scale for g in ppo]), ("dpo", dpo)):
            folder.joinpath("samples", f"{method}.jsonl").write_text(
                "".join(json.dumps({"person": f"p{i}", "gold": g}) + "\n" for i, g in enumerate(golds)))
        folder.joinpath("results.json").write_text(json.dumps(
            {"methods": {"rlhf-ppo": {"kl": {"value": 1.0}}, "dpo": {"kl": {"value": 0.5}}}}))
        run.mark_complete("experiments/rlhf-methods")
    se = statistics.stdev([a - b for a, b in zip(ppo, dpo)]) / math.sqrt(len(ppo))  # 0.0453
    assert claim_rows(runs[0])[[r[0] for r in claim_rows(runs[0])].index(row)][4] == (
        f"not shown at this size (detectable at 80% power: ≥ {2.8 * se:.3f})")
    across = {r[0]: r for r in claim_rows_across(runs)}[row]  # seed 1's differences are twice as spread
    assert across[-1] == f"not shown at this size (0 of 2 seeds show it; detectable at 80% power: ≥ {5.6 * se:.3f} in every seed)"
