"""The generated report: Markdown + a self-contained HTML page (plots embedded as base64 PNGs).

It is rebuilt from run directories alone, so `lab report RUN` works on any finished (or partial) run;
each section appears once the stage behind it has run, and says so when it has not."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from evals.stats import format_ci
from lab.runs import Run, read_json


def _jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def loss_curve(runs: list[Run]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    plotted = False
    for run in runs:
        log = _jsonl(run.stage_dir("base") / "logs" / "train.jsonl")
        train = [(r["step"], r["loss"]) for r in log if "loss" in r]
        held = [(r["step"], r["heldout_loss"]) for r in log if "heldout_loss" in r]
        if train:
            ax.plot(*zip(*train), label=f"{run.name} train")
            plotted = True
        if held:
            ax.plot(*zip(*held), "o--", label=f"{run.name} held-out")
    if not plotted:
        plt.close(fig)
        return None
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title("Pretraining loss")
    ax.legend()
    ax.grid(alpha=0.3)
    data = _png(fig)
    plt.close(fig)
    return data


def _hallucination_rows(run: Run) -> list[list[str]]:
    rows = []
    for stage in ("sft", "sft-idk"):
        path = run.stage_dir(stage) / "evals" / "hallucination" / "results.json"
        if not path.exists():
            continue
        results = read_json(path)
        for k, r in results["by_group"]["k"].items():
            rows.append([stage, k, format_ci(r["correct"]), format_ci(r["incorrect"]), format_ci(r["not_attempted"]),
                         r["correct"]["n"]])
    return rows


def _spelling_rows(run: Run) -> list[list[str]]:
    rows = []
    for stage in ("sft", "sft-idk"):
        path = run.stage_dir(stage) / "evals" / "spelling" / "results.json"
        if path.exists():
            groups = read_json(path)["by_group"]["condition"]
            rows.append([stage, *(format_ci(groups[c]["correct"]) for c in ("direct", "steps", "tool")),
                         groups["direct"]["correct"]["n"]])
    return rows


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


def _stage_rows(runs: list[Run]) -> list[list[str]]:
    from lab.pipeline import STAGE_NAMES

    rows = []
    for stage in STAGE_NAMES:
        cells = [stage]
        for run in runs:
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
    """Render the simple pipe tables this package writes (plus trailing prose) as HTML."""
    lines = [line for line in text.splitlines() if line.strip()]
    table = [line for line in lines if line.startswith("|")]
    prose = [line for line in lines if not line.startswith("|")]
    rows = [[c.strip() for c in row.strip("|").split("|")] for row in table if not set(row) <= set("|-: ")]
    out = _html_table(rows[0], rows[1:]) if rows else ""
    return out + "".join(f"<p>{html.escape(p)}</p>" for p in prose)


def write_report(runs: list[Run], out: Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = [r.name for r in runs]
    sections: list[tuple[str, list[tuple[str, object]]]] = []  # (title, [(kind, payload)])

    sections.append(("Stages", [("table", (["stage", *names], _stage_rows(runs)))]))
    curve = loss_curve(runs)
    sections.append(("Pretraining", [("figure", ("loss_curve", curve, "Training and held-out loss"))] if curve
                     else [("text", "The base stage has not run yet.")]))
    for run in runs:
        knowledge = run.stage_dir("experiments/knowledge")
        if (knowledge / "table.md").exists():
            data = base64.b64encode((knowledge / "knowledge_vs_exposure.png").read_bytes()).decode()
            sections.append((f"Knowledge vs exposure ({run.name})", [
                ("text", "Greedy completions of fact prompts about every person, by how many times their "
                         "biography appeared in pretraining (k). k = 0 people were never seen: any fluent "
                         "answer about them is invented."),
                ("markdown", (knowledge / "table.md").read_text()),
                ("figure", (f"knowledge_{run.name}", data, "Recall by exposure, in corpus and novel phrasings")),
            ]))
    for run in runs:
        rows = _hallucination_rows(run)
        if rows:
            sections.append((f"Hallucination on held-out people: sft vs sft-idk ({run.name})", [
                ("text", "SimpleQA-style questions about held-out people (never in SFT data), greedy answers. "
                         "sft was trained to answer every question; sft-idk was trained to refuse the questions "
                         "that knowledge probing of the base model found unknown. k = 0 people were never seen: "
                         "'incorrect' there is pure invention. 95% Wilson intervals."),
                ("table", (["stage", "k", "correct", "incorrect (hallucinated)", "not attempted", "n"], rows)),
            ]))
        spelling = _spelling_rows(run)
        if spelling:
            sections.append((f"Spelling and counting by condition ({run.name})", [
                ("text", "Character-level tasks over held-out English words: asked for the answer directly, "
                         "step by step (spell first, the SFT default), or with the python tool. Accuracy of the "
                         "final answer, 95% Wilson intervals."),
                ("table", (["stage", "direct", "step by step", "python tool", "n per condition"], spelling)),
            ]))
        probe = run.stage_dir("sft-idk") / "probe_summary.json"
        if probe.exists():
            summary = read_json(probe)
            sections.append((f"Knowledge probing of SFT questions ({run.name})", [
                ("text", "Questions about SFT people, by exposure k: known if at least half of 8 sampled "
                         "completions (temperature 0.7) of the fact prompt were correct. Unknown ones became "
                         "refusal targets in sft-idk."),
                ("table", (["k", "known", "unknown"], [[k, v["known"], v["unknown"]] for k, v in summary.items()])),
            ]))
    sample_rows = []
    for run in runs:
        for r in _jsonl(run.stage_dir("base") / "samples.jsonl"):
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
