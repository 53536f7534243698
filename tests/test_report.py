"""The generated report, checked as a reader sees it: sections from eval results, and the HTML rendered
in headless Chromium with every figure drawn and a clean console."""

import json
import shutil
import statistics
from pathlib import Path

import pytest

from lab.pipeline import STAGE_NAMES
from lab.presets import Preset
from lab.runs import Run
from reports.report import write_report

EXAMPLE = Path(__file__).parent.parent / "reports" / "examples" / "tiny" / "report.html"


def _metric(value: float, n: int = 100) -> dict:
    return {"value": value, "stderr": 0.01, "ci95": [max(0.0, value - 0.05), min(1.0, value + 0.05)], "n": n}


def _fake_eval(run: Run, stage: str, hallucinated: list[int]) -> None:
    """A hallucination result as the harness writes it, small enough to check by hand."""
    folder = run.stage_dir(stage) / "evals" / "hallucination"
    folder.mkdir(parents=True)
    rows = [{"id": str(i), "hallucinated_unseen": h, "correct": 1 - h} for i, h in enumerate(hallucinated)]
    folder.joinpath("samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    rate = sum(hallucinated) / len(hallucinated)
    metrics = {"correct": _metric(1 - rate), "incorrect": _metric(rate), "not_attempted": _metric(0.0),
               "hallucinated_unseen": _metric(rate)}
    results = {"metrics": metrics, "by_group": {"k": {"0": metrics}},
               "calibration": {"curve": [{"confidence": 0.3, "accuracy": 0.2}, {"confidence": 0.8, "accuracy": 0.6}],
                               "coverage": [{"coverage": 1.0, "accuracy": 0.4}, {"coverage": 0.3, "accuracy": 0.7}]}}
    folder.joinpath("results.json").write_text(json.dumps(results))


def test_report_shows_eval_tables_paired_differences_and_calibration(tmp_path):
    run = Run.create_or_open(tmp_path / "r", Preset())
    _fake_eval(run, "sft", [1, 1, 1, 0])
    _fake_eval(run, "sft-idk", [0, 1, 0, 0])
    out = write_report([run], tmp_path / "report", STAGE_NAMES)
    md = (out / "report.md").read_text()
    assert "## Report card: headline metrics by stage (r)" in md and "## Hallucination on held-out people" in md
    assert "| sft-idk − sft | hallucination | hallucinated_unseen | 0.750 | 0.250 | -0.500" in md  # paired on ids
    assert (out / "calibration_r.png").stat().st_size > 1000
    assert "The base stage has not run yet." in md  # a section that cannot be drawn says so


def test_report_plots_reading_during_pretraining_and_tables_the_reading_probes(tmp_path):
    run = Run.create_or_open(tmp_path / "r", Preset())
    logs = run.stage_dir("base") / "logs"
    logs.mkdir(parents=True)
    log = [{"step": s, "loss": 2.0 - s / 1000} for s in (100, 200, 300)]
    log += [{"step": s, "heldout_loss": 2.0, "induction_score": 0.0, "copy_digits_8": c, "open_book_corpus": o,
             "open_book_novel": 0.0} for s, c, o in ((100, 0.0, 0.02), (200, 0.1, 0.4), (300, 0.2, 0.9))]
    logs.joinpath("train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    knowledge = run.stage_dir("experiments/knowledge")
    knowledge.mkdir(parents=True)
    example = [{"continuation": " 58213\nmore"}]
    reading = {"induction": {"score": 0.012}, "copy": [{"kind": "digits", "length": 8, "accuracy": _metric(0.55, 40),
                                                         "exact": _metric(0.1, 40), "examples": example}],
               "open_book": {"corpus": {"accuracy": _metric(0.85, 150), "examples": example},
                             "novel": {"accuracy": _metric(0.0, 150), "examples": []}}}
    knowledge.joinpath("reading.json").write_text(json.dumps(reading))
    out = write_report([run], tmp_path / "report", STAGE_NAMES)
    md = (out / "report.md").read_text()
    assert "## Reading the context (r)" in md and (out / "reading_curve.png").stat().st_size > 1000
    assert "| open-book completion, corpus phrasing | 0.85 [0.80, 0.90] | 150 |" in md
    assert "copy digits, 8 characters (exact: 0.10 [0.05, 0.15])" in md and "0.012" in md
    reading["skipped"] = "Knowledge vs exposure and open-book completion are skipped: a user corpus."
    del reading["open_book"]
    knowledge.joinpath("reading.json").write_text(json.dumps(reading))
    md = (write_report([run], tmp_path / "report2", STAGE_NAMES) / "report.md").read_text()
    assert "are skipped: a user corpus." in md and "open-book completion, corpus" not in md


@pytest.fixture(scope="module")
def browser():
    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        pytest.fail("Debian's chromium and chromium-driver are needed (make test installs them: "
                    "apt-get install chromium chromium-driver)")
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    yield driver
    driver.quit()


def rendering_problems(browser, path: Path) -> list[str]:
    """Figures that did not render, missing tables, and console errors of a page, as a reader would meet them."""
    browser.get(path.resolve().as_uri())
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt])")
    problems = [] if images else ["no figures"]
    problems += [f"figure not rendered: {alt}" for complete, w, h, alt in images if not (complete and w > 100 and h > 100)]
    if browser.execute_script("return document.querySelectorAll('table').length") < 2:
        problems.append("fewer than two tables")
    return problems + [f"console: {e['message']}" for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def test_report_html_renders_every_figure_without_console_errors(browser, tmp_path):
    run = Run.create_or_open(tmp_path / "r", Preset())
    _fake_eval(run, "sft", [1, 0])
    _fake_eval(run, "sft-idk", [0, 0])
    generated = write_report([run], tmp_path / "report", STAGE_NAMES) / "report.html"
    assert rendering_problems(browser, EXAMPLE) == []
    assert rendering_problems(browser, generated) == []
    broken = tmp_path / "broken.html"
    broken.write_text(generated.read_text().replace("base64,", "base64,AAAA", 1) + "<script>undefinedFn()</script>")
    problems = rendering_problems(browser, broken)
    assert any(p.startswith("figure not rendered") for p in problems) and any(p.startswith("console") for p in problems)


def _write_results(run: Run, stage: str, suite: str, metrics: dict, by_group: dict | None = None) -> None:
    folder = run.stage_dir(stage) / "evals" / suite
    folder.mkdir(parents=True, exist_ok=True)
    folder.joinpath("results.json").write_text(json.dumps({"metrics": metrics, "by_group": by_group or {}}))


def _difference(value: float, low: float, high: float, n: int = 200) -> dict:
    return {"value": value, "stderr": 0.01, "ci95": [low, high], "n": n}


def test_claims_give_each_verdict_from_the_run_files_and_flip_with_the_ci(tmp_path):
    from reports.claims import claim_rows

    run = Run.create_or_open(tmp_path / "r", Preset())
    _fake_eval(run, "sft", [1, 1, 1, 1, 0, 1])
    _fake_eval(run, "sft-idk", [0, 0, 1, 0, 0, 0])  # paired on ids: -0.667 (CLT interval clipped at -1)
    _write_results(run, "sft-idk", "spelling", {
        "correct": _metric(0.1), "steps_minus_direct": _difference(0.12, 0.05, 0.19),  # CI above 0: shown
        "tool_minus_direct": _difference(-0.10, -0.16, -0.04)},  # CI below 0, the claim says above: contradicted
        {"condition": {"direct": {"correct": _metric(0.3)}}})
    _write_results(run, "sft-math", "math", {"correct": _metric(0.2),
                                             "worked_minus_direct_arithmetic": _difference(0.02, -0.03, 0.07)})
    rows = {r[0]: r for r in claim_rows(run)}
    assert rows["\"I don't know\" training cuts hallucination"][2:] == ["-0.667 [-1.000, -0.253]", 6, "shown"]
    assert rows["step by step helps (spelling)"][2:] == ["+0.120 [+0.050, +0.190]", 200, "shown"]
    assert rows["a code tool solves them"][4] == "contradicted"
    assert rows["models need tokens to think"][4] == "not shown at this size"  # CI includes 0
    assert "; sft-math" in rows["models need tokens to think"][1]  # says which stage it read
    assert rows["counting and spelling fail on tokens"][4] == "shown"  # 0.3 [0.25, 0.35], below 0.5
    assert rows["loss falls as a power law with size"][4] == "not measured in this run (`lab experiment scaling RUN`)"
    assert rows["similar words get similar embeddings"][2:4] == ["–", "–"]  # no base model in this run

    # The same files with the step-by-step CI flipped below zero, or shrunk to an effect too small to count.
    _write_results(run, "sft-idk", "spelling", {"steps_minus_direct": _difference(-0.12, -0.19, -0.05),
                                                "tool_minus_direct": _difference(0.03, 0.01, 0.05)})
    rows = {r[0]: r for r in claim_rows(run)}
    assert rows["step by step helps (spelling)"][4] == "contradicted"
    assert rows["a code tool solves them"][4] == "not shown at this size"  # CI above 0 but under 0.05
    assert rows["counting and spelling fail on tokens"][4].startswith("not measured")  # no direct condition now


def test_report_opens_with_claims_and_its_report_card_marks_suites_a_stage_did_not_run(tmp_path):
    from reports.report import report_card

    run = Run.create_or_open(tmp_path / "r", Preset())
    _fake_eval(run, "sft", [1, 0])
    _fake_eval(run, "sft-idk", [0, 0])
    tooluse = {"correct": _metric(0.4), "faithful_call": _metric(0.3)}
    _write_results(run, "sft", "tooluse", tooluse, {"kind": {"big_arithmetic": tooluse}})
    header, rows = report_card(run)
    assert header == ["suite/metric", "sft", "sft-idk"]  # only stages that were evaluated
    cells = {r[0]: r[1:] for r in rows}
    assert cells["tooluse/correct"] == ["0.40 [0.35, 0.45]", "–"]  # sft-idk did not run tooluse
    assert cells["hallucination/hallucinated_unseen"] == ["0.50 [0.45, 0.55]", "0.00 [0.00, 0.05]"]
    assert "tooluse/called_tool" not in cells  # no stage has it: no row
    md = (write_report([run], tmp_path / "report", STAGE_NAMES) / "report.md").read_text()
    assert md.index("## Claims and what this run shows (r)") < md.index("## Stages")
    assert "| tooluse/correct | 0.40 [0.35, 0.45] | – |" in md


def test_with_seeds_a_claim_is_shown_only_when_every_seed_shows_it(tmp_path):
    from reports.claims import across_seeds, claim_rows_across

    assert across_seeds(["shown", "shown"]) == "shown in every seed"
    assert across_seeds(["shown", "not shown at this size"]) == "not shown at this size (1 of 2 seeds show it)"
    assert across_seeds(["contradicted", "contradicted", "contradicted"]) == "contradicted in every seed"
    assert across_seeds(["shown", "not measured in this run (`x`)"]) == "shown (measured in 1 of 2 seeds)"
    assert across_seeds(["not measured in this run (`x`)"] * 2) == "not measured in this run (`x`)"
    runs = {}
    for seed, (low, high) in ((0, (0.05, 0.19)), (1, (-0.02, 0.10))):
        runs[seed] = Run.create_or_open(tmp_path / str(seed), Preset(seed=seed))
        _write_results(runs[seed], "sft-idk", "spelling", {"steps_minus_direct": _difference(0.1, low, high)})
    rows = {r[0]: r for r in claim_rows_across(runs)}
    step = rows["step by step helps (spelling)"]
    assert step[2:] == ["+0.100 [+0.050, +0.190]", "+0.100 [-0.020, +0.100]", "+0.100 ± 0.000", "1 of 2",
                        "not shown at this size (1 of 2 seeds show it)"]
    assert rows["models need tokens to think"][2:6] == ["–", "–", "–", "–"]  # unmeasured: no spread, no count


def test_claims_across_seeds_give_mean_spread_and_sign_agreement(tmp_path):
    from reports.claims import claims_across

    runs = {}
    for seed, (value, low, high) in enumerate(((0.30, 0.20, 0.40), (0.10, 0.02, 0.18), (-0.05, -0.09, -0.01))):
        runs[seed] = Run.create_or_open(tmp_path / str(seed), Preset(seed=seed))
        _write_results(runs[seed], "sft-idk", "spelling", {"steps_minus_direct": _difference(value, low, high)})
    record = next(r for r in claims_across(runs) if r["claim"] == "step by step helps (spelling)")
    assert record["mean"] == pytest.approx(0.35 / 3)
    assert record["sd"] == pytest.approx(statistics.stdev([0.30, 0.10, -0.05]))
    assert record["agree"] == 2  # the third seed's CI excludes 0 on the wrong side
    assert record["verdict"] == "not shown at this size (2 of 3 seeds show it)"
    assert record["effects"][2] == {"value": -0.05, "low": -0.09, "high": -0.01, "n": 200, "where": ""}
