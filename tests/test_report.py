"""The generated report, checked as a reader sees it: sections from eval results, and the HTML rendered
in headless Chromium with every figure drawn and a clean console, for a run with every RL, RLHF and reward-model
stage trained for real at a toy size."""

import json
import shutil
import statistics
from dataclasses import replace
from pathlib import Path

import pytest
from test_pretrain import small_preset
from test_reward_model import scripted, source  # noqa: F401  (fixture rm_run builds on)
from test_rl import FAST as RL_FAST
from test_rlhf import rm_run  # noqa: F401  (fixture: a tiny run with sft-idk and rm stages)
from test_rlhf_methods import TINY as RLHF_TINY

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


def test_report_tables_the_new_reading_probes_maps_the_heads_and_states_exposure_as_presentations(tmp_path):
    run = Run.create_or_open(tmp_path / "r", Preset())
    base = run.stage_dir("base")
    (base / "logs").mkdir(parents=True)
    (base / "data").mkdir()
    (base / "data" / "meta.json").write_text(json.dumps({"tokens": {"train": 1000}, "dtype": "uint16"}))
    (base / "summary.json").write_text(json.dumps({"tokens_trained": 14000}))
    heads = [[0.01, 0.02], [0.30, 0.05]]
    log = [{"step": s, "heldout_loss": 2.0, "induction_score": 0.0, "induction_used_32": s / 1000, "copy_layouts": 0.1,
            "induction_heads": heads, "induction_head_best": 0.3, "open_book_heldout": 0.2, "open_book_two": 0.4,
            "open_book_two_other": 0.3} for s in (100, 200)]
    base.joinpath("logs", "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    knowledge = run.stage_dir("experiments/knowledge")
    knowledge.mkdir(parents=True)
    example = [{"continuation": "58213094;"}]
    reading = {
        "induction": {"score": 0.01, "by_row": _metric(0.02, 32), "rows": 32, "length": 32},
        "induction_used": [{"length": n, "score": 0.1, "by_row": _metric(0.1, 32), "rows": 32, "ids": 632}
                           for n in (16, 32, 64)],
        "induction_used_min_count": 100, "induction_heads_used": heads, "copy": [],
        "copy_layouts": [{"layout": "id", "template": "id={s};\nid=", "kind": "digits", "length": 8,
                          "accuracy": _metric(0.25, 100), "examples": example}],
        "open_book": {"heldout": {"accuracy": _metric(0.3, 150), "examples": example}},
        "open_book_two": {"accuracy": _metric(0.4, 150), "other": _metric(0.35, 150), "examples": example,
                          "by_position": {"first": _metric(0.5, 75), "second": _metric(0.3, 75)}}}
    knowledge.joinpath("reading.json").write_text(json.dumps(reading))
    rows = [{"k": k, "phrasing": "corpus", "accuracy": _metric(k / 10), "confident_wrong": _metric(0.5)} for k in (0, 1, 8)]
    knowledge.joinpath("results.json").write_text(json.dumps({"rows": rows}))
    knowledge.joinpath("table.md").write_text("| exposure k |\n|---|\n| 8 |\n")
    shutil.copy(EXAMPLE.parent / "knowledge_tiny.png", knowledge / "knowledge_vs_exposure.png")
    out = write_report([run], tmp_path / "report", STAGE_NAMES)
    md = (out / "report.md").read_text()
    assert "| induction score, the 632 ids the corpus uses 100+ times, 32 tokens | 0.100 [0.050, 0.150] | 32 |" in md
    assert "| induction score, uniform ids, 32 tokens (1 - loss on 2nd copy / 1st) | 0.020 [0.000, 0.070] |" in md
    assert "best head's induction attention (layer 1, head 0; ids the corpus uses) | 0.300" in md
    assert "| exact copy, layout id, digits (8 characters) | 0.25 [0.20, 0.30] | 100 |" in md
    assert "Copy layouts (id: id=X;⏎id=)." in md
    assert "open-book completion, held-out wording" in md and "two people: the other person's value | 0.35" in md
    assert "asked first: 0.50 [0.45, 0.55]" in md
    assert (out / "induction_heads_r.png").stat().st_size > 1000 and (out / "reading_curve.png").stat().st_size > 1000
    assert "pretraining made 14.0 epochs over it" in md and "k = 1, 8 are ~14, ~112 presentations" in md


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


# The toy RL run's stages: rlhf-methods' sizes (RLHF_TINY), the RMs goodhart trains at test_goodhart's size, and
# rl-math at test_rl's (2 steps of 8 completions, 6 held-out problems).
RL_TINY = [*RLHF_TINY, "rm.epochs=1", "rm.max_new_tokens=8", "rm.batch_size=8", "rm.label_mode=argmax",
           "rm.heldout_share=0.3"]


def rl_preset() -> Preset:
    preset = small_preset(*RL_TINY)
    preset.rl = replace(RL_FAST, rewards=preset.rl.rewards, reward_weights=preset.rl.reward_weights, eval_every=0)
    return preset


@pytest.fixture(scope="module")
def rl_run(rm_run, tmp_path_factory):  # noqa: F811
    """rm_run (an untrained tiny sft-idk and a reward model trained on scripted comparisons) with every stage and
    experiment the report's RL, RLHF and reward-model sections read, each run for real by its own code at a toy size
    (~15 s with rm_run), so the report reads the files those stages write, not copies of their format: dpo,
    rlhf-grpo, rlhf-ppo and rlhf-rloo through the pipeline's stage functions, the rlhf-methods comparison, rl-math
    and the math-rewards grid (from sft-idk: the run has no sft-math), goodhart, over-optimization and rm-scaling.
    Only the eval results are made up (_fake_eval): sft, sft-idk and two RL stages, for the report card."""
    from lab.experiments import goodhart, math_rewards, overoptimization, rlhf_methods
    from lab.experiments.goodhart import run_goodhart
    from lab.experiments.math_rewards import run_math_rewards
    from lab.experiments.overoptimization import run_overoptimization
    from lab.experiments.rlhf_methods import NEEDS, run_rlhf_methods
    from lab.experiments.rm_scaling import run_rm_scaling
    from lab.experiments.settings import GoodhartSettings, MathRewardsSettings, OveroptimizationSettings
    from lab.pipeline import provide
    from lab.presets import stage_context
    from lab.train.rl_math import rl_math
    from tasks.world import build_world

    root = tmp_path_factory.mktemp("rl") / "r"
    shutil.copytree(rm_run.root, root)
    run, preset = Run(root), rl_preset()
    context = stage_context(run, preset)
    with pytest.MonkeyPatch.context() as mp:
        scripted(mp, build_world(preset.data.world))  # the new RMs' comparisons: fixed answers, as rm_run's
        provide(run, preset, NEEDS)
        run_rlhf_methods(preset.rlhf_methods, context.at(rlhf_methods.OUT, "sft-idk"))
        rl_math(preset.rl, context.at("rl-math", "sft-idk"))
        run_math_rewards(MathRewardsSettings(arms=("sft",)), context.at(math_rewards.OUT, "sft-idk"), preset.rl)
        run_goodhart(GoodhartSettings(pairs=(16,), seeds=(0,), steps=2, snapshot_every=1),
                     context.at(goodhart.OUT, "sft-idk"), preset.rm, preset.rlhf, preset.rlhf_methods)
        run_overoptimization(OveroptimizationSettings(
            bon_prompts=3, bon_samples=4, ns=(1, 2, 4), max_new_tokens=8, betas=(0.2,), ensemble_seeds=(0, 1),
            rl=replace(preset.rlhf, steps=2, ckpt_every=2)), context.at(overoptimization.OUT, "sft-idk"), preset.rm)
        run_rm_scaling(run, preset.rm, (0.5, 1.0))
    for stage, hallucinated in (("sft", [1, 0]), ("sft-idk", [0, 0]), ("dpo", [0, 1]), ("rlhf-grpo", [1, 1])):
        _fake_eval(run, stage, hallucinated)
    return run


# Each RL, RLHF and reward-model section of rl_run's report (its heading less " (r)"): the figures it shows
# (their captions) and how many tables (a table.md of several tables renders as several, not one merged).
RL_SECTIONS = {
    "RL with verifiable math rewards": (["RL on math, per step (faint) and over 10 steps"], 1),
    "What matters in RL on math: the math-rewards grid": (
        ["Held-out accuracy by arm; sampled accuracy while training"], 1),
    "Reward model": ([], 2),  # the RM's accuracy by split, and rm-scaling's table
    "RLHF against the learned reward model: rlhf-grpo": (["rlhf-grpo per step (faint) and over 10 steps"], 0),
    "RLHF against the learned reward model: rlhf-rloo": (["rlhf-rloo per step (faint) and over 10 steps"], 0),
    "RLHF against the learned reward model: rlhf-ppo": (
        ["rlhf-ppo per step (faint) and over 10 steps",
         "PPO's own health: the critic, the trust region, entropy, the KL controller"], 0),
    "DPO on the reward model's comparisons": ([], 0),
    "PPO, GRPO, RLOO and DPO on one reward model": (["Gold and proxy reward against KL to sft-idk"], 1),
    "When optimising the reward model turns gold down": (  # by RM, then by RM size
        ["Gold and proxy along each run, by reward model"], 2),
    "Reward over-optimization": (["Gold and proxy reward against sqrt(KL): best-of-n and RL, with Gao et al.'s "
                                  "fitted forms"], 2),  # best-of-n, then the RL arms
}


def page_sections(browser) -> dict[str, tuple[list[str], int, list[str]]]:
    """The loaded page's sections as a reader sees them: each h2's text -> (captions of the figures under it,
    number of tables under it, the first cell of each of their body rows), up to the next h2."""
    return {title: tuple(v) for title, v in browser.execute_script("""
        const out = {}; let current = null;
        for (const el of document.body.children) {
            if (el.tagName === 'H2') { current = el.textContent; out[current] = [[], 0, []]; continue; }
            if (current === null) continue;
            out[current][0].push(...Array.from(el.querySelectorAll('img'), i => i.alt));
            const tables = el.tagName === 'TABLE' ? [el] : Array.from(el.querySelectorAll('table'));
            out[current][1] += tables.length;
            for (const t of tables) out[current][2].push(...Array.from(t.tBodies[0].rows, r => r.cells[0].textContent));
        }
        return out;""").items()}


def test_report_html_renders_every_figure_without_console_errors(browser, rl_run, tmp_path):
    generated = write_report([rl_run], tmp_path / "report", STAGE_NAMES) / "report.html"
    assert rendering_problems(browser, EXAMPLE) == []
    assert rendering_problems(browser, generated) == []  # every figure of every section drawn, a clean console
    sections = page_sections(browser)
    for title, (figures, tables) in RL_SECTIONS.items():
        assert f"{title} (r)" in sections, title
        shown, tables_shown, _ = sections[f"{title} (r)"]
        assert shown == figures and tables_shown == tables, (title, shown, tables_shown)
    # every method of the comparison has its row: the two that have no section of their own (rlhf-rloo, dpo) too
    assert sections["PPO, GRPO, RLOO and DPO on one reward model (r)"][2] == ["sft-idk", "rlhf-ppo", "rlhf-grpo",
                                                                            "rlhf-rloo", "dpo"]
    scaling = json.loads((rl_run.stage_dir("experiments/rm-scaling") / "results.json").read_text())
    assert sections["Reward model (r)"][2] == ["train", "heldout", *(str(r["train_pairs"]) for r in scaling)]
    assert sections["Hallucination on held-out people: sft vs sft-idk (r)"][0] == [
        "Confidence vs accuracy, and accuracy vs coverage when answers below a confidence threshold are withheld"]
    broken = tmp_path / "broken.html"
    broken.write_text(generated.read_text().replace("base64,", "base64,AAAA", 1) + "<script>undefinedFn()</script>")
    problems = rendering_problems(browser, broken)
    assert any(p.startswith("figure not rendered") for p in problems) and any(p.startswith("console") for p in problems)


def test_claims_about_rl_and_rlhf_are_read_from_the_files_those_stages_write(rl_run):
    """The claims table's RL rows, from rl_run's real stage outputs: measured, with the sample counts the toy
    stages were run at, and the RL stages' evals in the report card beside sft's."""
    from reports.claims import claim_rows
    from reports.report import report_card

    rows = {r[0]: r for r in claim_rows(rl_run)}
    n = {"RL on a verifiable reward improves a half-known procedure": RL_FAST.eval_problems,
         "checking one's work emerges under RL": RL_FAST.eval_problems,
         "... and beats SFT at matched compute": RL_FAST.eval_problems,
         "a learned reward model gets gamed": rl_preset().rlhf_methods.prompts // 2,  # the other half of the prompts
         "PPO vs GRPO vs RLOO vs DPO: online RL beats offline DPO": rl_preset().rlhf_methods.prompts}
    for claim, count in n.items():
        assert rows[claim][3] == count and not rows[claim][4].startswith("not measured"), rows[claim]
    assert report_card(rl_run)[0] == ["suite/metric", "sft", "sft-idk", "dpo", "rlhf-grpo"]


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
    # a difference's verdict states the smallest effect its n could detect at 80% power: 2.8 x CI width / 3.92
    assert rows["\"I don't know\" training cuts hallucination"][2:] == [
        "-0.667 [-1.000, -0.253]", 6, "shown (detectable at 80% power: ≥ 0.533)"]
    assert rows["step by step helps (spelling)"][2:] == ["+0.120 [+0.050, +0.190]", 200,
                                                         "shown (detectable at 80% power: ≥ 0.100)"]
    assert rows["a code tool solves them"][4] == "contradicted (detectable at 80% power: ≥ 0.086)"
    assert rows["models need tokens to think"][4] == ("not shown at this size (detectable at 80% power: ≥ 0.071)")
    assert "; sft-math" in rows["models need tokens to think"][1]  # says which stage it read
    assert rows["counting and spelling fail on tokens"][4] == "shown"  # 0.3 [0.25, 0.35], below 0.5
    assert rows["loss falls as a power law with size"][4] == "not measured in this run (`lab experiment scaling RUN`)"
    assert rows["similar words get similar embeddings"][2:4] == ["–", "–"]  # no base model in this run

    # The same files with the step-by-step CI flipped below zero, or shrunk to an effect too small to count.
    _write_results(run, "sft-idk", "spelling", {"steps_minus_direct": _difference(-0.12, -0.19, -0.05),
                                                "tool_minus_direct": _difference(0.03, 0.01, 0.05)})
    rows = {r[0]: r for r in claim_rows(run)}
    assert rows["step by step helps (spelling)"][4].startswith("contradicted (")
    assert rows["a code tool solves them"][4].startswith("not shown at this size (")  # CI above 0 but under 0.05
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
                        "not shown at this size (1 of 2 seeds show it; detectable at 80% power: ≥ 0.100 in every seed)"]
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
    assert record["effects"][2] == {"value": -0.05, "low": -0.09, "high": -0.01, "n": 200, "where": "", "unmet": ""}


def test_the_rl_texts_state_the_settings_this_run_used(rl_run, tmp_path):
    """The methods' snapshot interval, goodhart's steps and the math-rewards grid's start come from the run's files,
    not from the defaults (rl_run trains at toy sizes, unlike the pipeline)."""
    md = (write_report([rl_run], tmp_path / "report", STAGE_NAMES) / "report.md").read_text()
    every = json.loads((rl_run.stage_dir("rlhf-grpo") / "summary.json").read_text())["settings"]["snapshot_every"]
    assert f"snapshots (every {every} steps)" in md
    assert "GRPO for 2 steps against each, every 1-step snapshot" in md  # run_goodhart(steps=2, snapshot_every=1)
    assert "every arm from sft-idk with the same steps" in md  # the grid ran from sft-idk: this run has no sft-math
