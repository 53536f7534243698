"""The generated report: Markdown + a self-contained HTML page (plots embedded as base64 PNGs).

It is rebuilt from run directories alone, so `lab report RUN` works on any finished (or partial) run;
each section appears once the stage behind it has run, and says so when it has not."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from evals.harness import compare
from evals.stats import format_ci
from evals.suites import headline_metrics
from lab.errors import LabError
from lab.model.inspect_model import attention_figure, attention_maps, embedding_map
from lab.model.inspect_tokens import findings, tokenize_view
from lab.model.loading import load_model_and_tokenizer
from lab.presets import run_preset
from lab.runs import Run, read_json
from lab.stage_names import KNOWLEDGE, SFT_IDK
from lab.stages import STAGES, compared, eval_suites
from reports.claims import FULL_REPLICATE, REPLICATE, claim_runs, claims_section, measure_claims
from reports.common import jsonl, png, suite_results
from reports.forest import CAPTION as FOREST_CAPTION
from reports.forest import forest_png
from reports.pretraining_sections import exposure_text, loss_curve, reading_curve, reading_probes_section
from tasks.world import build_world

EVAL_STAGES = tuple(eval_suites(STAGES))  # every policy the evals stage runs suites on, in pipeline order
# (baseline, stage): each evaluated policy compared with the model it was trained from (or its control)
STAGE_PAIRS = tuple(compared(STAGES))


def _eval_rows(run: Run, suite: str, group: str | None, metrics: tuple[str, ...]) -> list[list[str]]:
    """stage x (group value) rows of `metrics` as "value [low, high]", plus n, for every evaluated stage."""
    rows = []
    for stage in EVAL_STAGES:
        results = suite_results(run, stage, suite)
        if results is None:
            continue
        groups = results["by_group"].get(group, {}) if group else {"all": results["metrics"]}
        for value, m in groups.items():
            present = [m[name] for name in metrics if name in m and m[name]["n"]]
            rows.append([stage, *([value] if group else []),
                         *(format_ci(m[name]) if name in m and m[name]["n"] else "–" for name in metrics),
                         max((x["n"] for x in present), default=0)])
    return rows


def report_card(run: Run) -> tuple[list[str], list[list[str]]]:
    """Headline metrics (rows) by stage (columns): "value [low, high]", or "–" where a stage did not run that suite
    or the metric had no items. Only stages with an eval and metrics some stage has appear."""
    found = {stage: {suite: r for suite in headline_metrics() if (r := suite_results(run, stage, suite))}
             for stage in EVAL_STAGES}
    stages = [stage for stage in EVAL_STAGES if found[stage]]
    rows = []
    for suite, names in headline_metrics().items():
        for name in names:
            cells = []
            for stage in stages:
                m = found[stage].get(suite, {}).get("metrics", {}).get(name)
                cells.append(format_ci(m) if m and m["n"] else "–")
            if any(c != "–" for c in cells):
                rows.append([f"{suite}/{name}", *cells])
    return ["suite/metric", *stages], rows


PAIRED_METRICS = (("hallucination", "hallucinated_unseen"), ("hallucination", "correct"),
                  ("hallucination", "not_attempted"), ("context", "follows_context"), ("math", "correct"),
                  ("profile", "gold_score"), ("profile", "refusal"), ("identity", "own_identity"))


def _paired_rows(run: Run) -> list[list[str]]:
    rows = []
    for parent, child in STAGE_PAIRS:
        a, b = run.stage_dir(parent) / "evals", run.stage_dir(child) / "evals"
        for suite, metric in PAIRED_METRICS:
            try:
                r = compare(a, b, suite, metric)
            except LabError:  # a suite not run on both stages, or a metric it does not have: no row
                continue
            low, high = r["ci95"]
            seen = "up" if low > 0 else "down" if high < 0 else "no change seen at this size"
            rows.append([f"{child} − {parent}", suite, metric, f"{r['mean_a']:.3f}", f"{r['mean_b']:.3f}",
                         f"{r['difference']:+.3f} [{low:+.3f}, {high:+.3f}]", seen, r["n"]])
    return rows


def calibration_plot(run: Run):
    """Reliability diagram and accuracy-vs-coverage curve of the hallucination suite, one line a stage."""
    import matplotlib  # lazy: matplotlib is slow to import, and only the plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = {stage: r.get("calibration") for stage in EVAL_STAGES if (r := suite_results(run, stage, "hallucination"))}
    found = {k: v for k, v in found.items() if v}
    if not found:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    for stage, cal in found.items():
        left.plot([b["confidence"] for b in cal["curve"]], [b["accuracy"] for b in cal["curve"]], "o-", label=stage)
        right.plot([c["coverage"] for c in cal["coverage"]], [c["accuracy"] for c in cal["coverage"]], "o-", label=stage)
    left.set(xlabel="confidence (probability of its own answer)", ylabel="accuracy", title="Calibration")
    right.set(xlabel="coverage (share of questions answered)", ylabel="accuracy of answered",
              title="Abstain below a confidence threshold")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    data = png(fig)
    plt.close(fig)
    return data


def _system_rows(runs: list[Run]) -> list[list[str]]:
    rows = []
    for run in runs:
        cfg = read_json(run.config_path)
        summary = run.stage_dir("base") / "summary.json"
        s = read_json(summary) if summary.exists() else {}
        mfu = s.get("mfu")
        rows.append([run.name, cfg.get("git_commit", "?")[:10], cfg["packages"].get("torch", "?"),
                     cfg["packages"].get("transformers", "?"), f"{s.get('parameters', 0):,}",
                     f"{s.get('tokens_trained', 0):,}", f"{s.get('tokens_per_s') or 0:,.0f}",
                     f"{mfu:.1%}" if mfu else "n/a (CPU)", s.get("device", "?")])
    return rows


def _stage_rows(runs: list[Run], stage_names: list[str], out: Path) -> list[list[str]]:
    rows = []
    for stage in stage_names:
        cells = [stage]
        for run in runs:
            if run.stage_dir(stage).resolve() == out.resolve():  # the report stage, being written: marked after this
                cells.append("this report (writing now)")
                continue
            timing = run.stage_dir(stage) / "timing.json"
            seconds = read_json(timing)["seconds"] if timing.exists() else None
            state = "complete" if run.is_complete(stage) else "not run"
            cells.append(f"{state}" + (f" ({seconds:.0f} s)" if seconds is not None else ""))
        rows.append(cells)
    return rows


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _markdown_table_html(text: str) -> str:
    """Render the simple pipe tables this package writes, and the prose between them, as HTML in their order:
    each run of consecutive pipe lines is one table (goodhart's and over-optimization's table.md hold several)."""
    out, table = [], []

    def end_table():
        rows = [[c.strip() for c in row.strip("|").split("|")] for row in table if not set(row) <= set("|-: ")]
        if rows:
            out.append(_html_table(rows[0], rows[1:]))
        table.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        end_table()
        if line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    end_table()
    return "".join(out)


def _eval_sections(run: Run) -> list[tuple[str, list]]:
    """The eval suites of sft and sft-idk: one headline table, then one breakdown a suite."""
    suffix = f" ({run.name})"
    out = []
    header, card = report_card(run)
    if card:
        out.append(("Report card: headline metrics by stage" + suffix, [
            ("text", "Every suite on held-out material, greedy decoding; value [95% CI] (Wilson for proportions, "
                     "bootstrap for F-score and ECE, CLT for means and paired differences); – where the stage did "
                     "not run the suite. n and breakdowns are in the per-suite sections below; per-sample logs in "
                     "STAGE/evals/SUITE/samples.jsonl."),
            ("table", (header, card))]))
    paired = _paired_rows(run)
    if paired:
        out.append(("Each stage against its parent, paired on the same samples" + suffix, [
            ("text", "Per-sample differences on identical questions (CLT interval of the mean difference): pairing "
                     "removes the between-question variance that two separate intervals would count twice."),
            ("table", (["stage − parent", "suite", "metric", "parent", "stage", "difference [95% CI]",
                        "effect (95% CI excludes 0?)", "n"], paired))]))
    rows = _eval_rows(run, "hallucination", "k", ("correct", "incorrect", "not_attempted"))
    if rows:
        items = [("text", "SimpleQA-style questions about held-out people (never in SFT data). sft was trained to "
                          "answer every question; sft-idk to refuse the questions that knowledge probing of the base "
                          "model found unknown. k = 0 people were never seen: 'incorrect' there is pure invention."),
                 ("table", (["stage", "k", "correct", "incorrect (hallucinated)", "not attempted", "n"], rows))]
        plot = calibration_plot(run)
        if plot:
            items.append(("figure", (f"calibration_{run.name}", plot, "Confidence vs accuracy, and accuracy vs "
                                     "coverage when answers below a confidence threshold are withheld")))
        out.append(("Hallucination on held-out people: sft vs sft-idk" + suffix, items))
    breakdowns = [
        ("Spelling and counting by condition", "spelling", "condition", ("correct",),
         "Character-level tasks over held-out English words: answer directly or step by step (spell first) with "
         "tools off, or with the python tool on."),
        ("Tool use by question kind", "tooluse", "kind", ("correct", "called_tool", "right_tool", "faithful_call",
                                                          "unnecessary_call"),
         "Questions without a hint to use tools, with tools on and off; the first three kinds need a tool (faithful "
         "call: a call whose argument carries the question's numbers, word or name, over every such item), the last "
         "two do not (a call there is unnecessary)."),
        ("Math by difficulty band and answer form", "math", "difficulty/condition", ("correct", "format_ok"),
         "Held-out problems graded by the sympy verifier (no last-number fallback), each asked two ways: worked "
         "(the plain question: steps, then the answer) and direct (\"Answer directly with just the answer.\")."),
        ("Context vs memory", "context", "condition", ("correct", "follows_context", "follows_memory"),
         "The same question alone, after the person's encyclopedia article, and after an article in which the "
         "asked fact was changed: does the answer follow the context or the memorised value?"),
    ]
    for title, suite, group, metrics, text in breakdowns:
        rows = _eval_rows(run, suite, group, metrics)
        if rows:
            out.append((title + suffix, [("text", text), ("table", (["stage", group, *metrics, "n"], rows))]))
    return out


INSIDE_TEXT = "{n} was born in 1987 in Krakow and studied at Varnholt University."


def _inside_sections(run: Run, out: Path) -> list[tuple[str, list]]:
    """A tokenization sample, the embedding map and one attention figure of the run's last model stage."""
    stage = next((s for s in (SFT_IDK, "sft", "base") if run.is_complete(s)), None)
    if stage is None:
        return []
    model, tokenizer = load_model_and_tokenizer(run.stage_dir(stage))
    preset = run_preset(run.root)
    text = INSIDE_TEXT.format(n=build_world(preset.data.world).people[0].name if preset else "Mira Tolvane")
    view = tokenize_view(tokenizer, text)
    emb = embedding_map(model, tokenizer, out_png=out / f"embeddings_{run.name}.png")
    tokens, weights = attention_maps(model, tokenizer, text)
    attention_figure(tokens, weights, out / f"attention_{run.name}.png")
    rows = [[g, len(emb.words[g]), f"{c['within']:+.3f}", f"{c['between']:+.3f}"] for g, c in emb.cosines.items()]
    return [(f"Inside the model: {stage} ({run.name})", [
        ("text", f"Tokenization ({view.count} tokens, {view.chars_per_token:.2f} characters a token; · marks a "
                 f"boundary, ␣ a leading space): " + "·".join(t.shown for t in view.tokens)),
        *(("text", "• " + line) for line in findings(view)),
        ("table", (["word group", "words", "mean cosine within", "between"], rows)),
        ("image", (f"embeddings_{run.name}.png", "Input embeddings of world words (averaged over their tokens), "
                                                  "PCA to 2-D: do cities, fields and names form regions?")),
        ("image", (f"attention_{run.name}.png", "Attention weights of every layer and head on the sentence above "
                                                 "(row = query token, column = attended token)")),
    ])]


def knowledge_probe_sections(run: Run, stage: str = SFT_IDK) -> list[tuple[str, list]]:
    """sft-idk's probe of what the base model knows about SFT people: known and unknown questions by exposure."""
    probe = run.stage_dir(stage) / "probe_summary.json"
    if not probe.exists():
        return []
    summary = read_json(probe)
    unit, threshold = summary.pop("unit", "question"), summary.pop("threshold", 0.5)
    rule = (f"a question is known if at least {threshold:g} of its sampled completions (temperature 0.7) "
            "of the fact prompt were correct." if unit == "question" else
            f"a person is known if, averaged over their questions, at least {threshold:g} of the sampled "
            "completions (temperature 0.7) of the fact prompt were correct, and every question about them "
            "follows.")
    return [(f"Knowledge probing of SFT questions ({run.name})", [
        ("text", f"Questions about SFT people, by exposure k: {rule} Unknown ones became refusal (or, tools "
                 "on, look-up) targets in sft-idk."),
        ("table", (["k", "known", "unknown"], [[k, v["known"], v["unknown"]] for k, v in summary.items()])),
    ])]


def write_report(runs: list[Run], out: Path, stage_names: list[str]) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = [r.name for r in runs]
    sections: list[tuple[str, list[tuple[str, object]]]] = []  # (title, [(kind, payload)])

    # The report opens with what the run shows: every claim in one figure, then the claims tables, read once for both.
    measured = [measure_claims(claim_runs(run)) for run in runs]
    forest = forest_png([(claim, {(f"{run.name}, " if len(runs) > 1 else "") + f"seed {seed}": e
                                  for run, found in zip(runs, measured) for seed, e in found[i][1].items()})
                         for i, (claim, _) in enumerate(measured[0] if measured else [])])
    if forest:
        sections.append((f"Every claim at a glance ({', '.join(names)})", [
            ("figure", ("claims_forest", forest, FOREST_CAPTION))]))
    sections += [claims_section(run, found) for run, found in zip(runs, measured)]
    sections.append(("Stages", [("table", (["stage", *names], _stage_rows(runs, stage_names, out)))]))
    curve = loss_curve(runs)
    sections.append(("Pretraining", [("figure", ("loss_curve", curve, "Training and held-out loss"))] if curve
                     else [("text", "The base stage has not run yet.")]))
    reading = reading_curve(runs)
    if reading:
        sections[-1][1].append(("figure", ("reading_curve", reading, "Induction score, copying and open-book accuracy "
                                                                     "at every pretraining eval")))
    for run in runs:
        knowledge = run.stage_dir(KNOWLEDGE)
        reading_section = reading_probes_section(run)
        if reading_section:
            sections.append(reading_section)
        if (knowledge / "table.md").exists():
            data = base64.b64encode((knowledge / "knowledge_vs_exposure.png").read_bytes()).decode()
            sections.append((f"Knowledge vs exposure ({run.name})", [
                ("text", " ".join(["Greedy completions of fact prompts about every person, by how many times "
                                   "their biography appears in the pretraining corpus (k). k = 0 people were never "
                                   "seen: any fluent answer about them is invented.", exposure_text(run)]).strip()),
                ("markdown", (knowledge / "table.md").read_text()),
                ("figure", (f"knowledge_{run.name}", data, "Recall by exposure, in corpus and novel phrasings")),
            ]))
    for run in runs:
        sections += _eval_sections(run)
    replicate_kinds = ((REPLICATE, "every stage after pretraining rerun from the same base with other seeds "
                                   "(`lab experiment replicate`)"),
                       (FULL_REPLICATE, "the whole pipeline rerun with other seeds, world and corpus included "
                                        "(`lab experiment replicate --full`)"))
    for run in runs:
        for stage, what in replicate_kinds:
            if run.is_complete(stage):
                sections.append((f"Seed replicates: {stage.split('/')[-1]} ({run.name})", [
                    ("text", f"sft and sft-idk's headline metrics, {what}: the spread across seeds (training "
                             "noise) next to the 95% CI over eval items of one model (measurement noise)."),
                    ("markdown", (run.stage_dir(stage) / "table.md").read_text())]))
    for stage in STAGES:  # the sections each stage declares, in pipeline order
        if (stage_sections := stage.report_sections()) is not None:
            for run in runs:
                sections += stage_sections(run, stage.name)
    for run in runs:
        sections += _inside_sections(run, out)
    sample_rows = []
    for run in runs:
        for r in jsonl(run.stage_dir("base") / "samples.jsonl"):
            sample_rows.append([run.name, r["prompt"], r["completion"].replace("\n", " ")[:200]])
    sections.append(("Samples from the base model", [("table", (["run", "prompt", "completion"], sample_rows))]
                     if sample_rows else [("text", "No samples yet.")]))
    sections.append(("System", [("table", (["run", "commit", "torch", "transformers", "parameters", "tokens",
                                            "tokens/s", "MFU", "device"], _system_rows(runs)))]))

    md = [f"# Lab report: {', '.join(names)}", ""]
    body = []
    for title, items in sections:
        md += [f"## {title}", ""]
        body.append(f"<h2>{html.escape(title)}</h2>")
        for kind, payload in items:
            if kind == "table":
                header, rows = payload
                md += [_md_table(header, rows), ""]
                body.append(_html_table(header, rows))
            elif kind == "figure":
                name, data, caption = payload
                (out / f"{name}.png").write_bytes(base64.b64decode(data))
                md += [f"![{caption}]({name}.png)", ""]
                body.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                            f"<figcaption>{html.escape(caption)}</figcaption></figure>")
            elif kind == "image":  # a PNG already written into `out` by its section
                name, caption = payload
                data = base64.b64encode((out / name).read_bytes()).decode()
                md += [f"![{caption}]({name})", ""]
                body.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                            f"<figcaption>{html.escape(caption)}</figcaption></figure>")
            elif kind == "markdown":
                md += [str(payload), ""]
                body.append(_markdown_table_html(str(payload)))
            else:
                md += [str(payload), ""]
                body.append(f"<p>{html.escape(str(payload))}</p>")
    (out / "report.md").write_text("\n".join(md))
    style = ("body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px}"
             "th{background:#f3f3f3}img{max-width:100%}figcaption{color:#666;font-size:13px}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>Lab report</title><style>{style}</style>"
            f"</head><body><h1>Lab report: {html.escape(', '.join(names))}</h1>{''.join(body)}</body></html>")
    (out / "report.html").write_text(page)
    return out
