"""The report's pretraining sections: the loss curve, the reading probes over pretraining, and the knowledge
stage's reading-probe table (reports/report.py places them)."""

from __future__ import annotations

from evals.stats import format_ci
from lab.runs import Run, read_json
from lab.stage_names import KNOWLEDGE
from reports.common import jsonl, png


def loss_curve(runs: list[Run]):
    import matplotlib  # lazy: matplotlib is slow to import, and only the plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    plotted = False
    for run in runs:
        log = jsonl(run.stage_dir("base") / "logs" / "train.jsonl")
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
    data = png(fig)
    plt.close(fig)
    return data


READING_CURVES = {"induction_score": "induction score", "copy_digits_8": "copies 8 digits",
                  "open_book_corpus": "open-book, corpus phrasing", "open_book_novel": "open-book, novel phrasing"}


def reading_curve(runs: list[Run]):
    """The reading probes at every pretraining eval: when copying from the context appears."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    plotted = False
    for run in runs:
        log = [r for r in jsonl(run.stage_dir("base") / "logs" / "train.jsonl") if "induction_score" in r]
        for key, label in READING_CURVES.items():
            points = [(r["step"], r[key]) for r in log if key in r]
            if points:
                ax.plot(*zip(*points), "o-", label=f"{run.name}: {label}" if len(runs) > 1 else label)
                plotted = True
    if not plotted:
        plt.close(fig)
        return None
    ax.set(xlabel="step", ylabel="score / accuracy", ylim=(-0.05, 1.05), title="Reading the context during pretraining")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    data = png(fig)
    plt.close(fig)
    return data


def reading_probes_section(run: Run) -> tuple[str, list] | None:
    """The knowledge stage's reading.json as a table, with the line saying which probes a run skipped."""
    path = run.stage_dir(KNOWLEDGE) / "reading.json"
    if not path.exists():
        return None
    reading = read_json(path)

    def example(examples: list[dict]) -> str:
        return examples[0]["continuation"].replace("\n", " ")[:40] if examples else ""

    rows = [["induction score (1 - loss on 2nd copy / 1st)", f"{reading['induction']['score']:.3f}", "", ""]]
    rows += [[f"copy {r['kind']}, {r['length']} characters (exact: {format_ci(r['exact'])})" if "exact" in r else
              f"copy {r['kind']}, {r['length']} characters", format_ci(r["accuracy"]), r["accuracy"]["n"],
              example(r["examples"])] for r in reading["copy"]]
    rows += [[f"open-book completion, {p} phrasing", format_ci(v["accuracy"]), v["accuracy"]["n"], example(v["examples"])]
             for p, v in reading.get("open_book", {}).items() if v["accuracy"]["n"]]
    return (f"Reading the context ({run.name})", [
        ("text", "Does the base model use its prompt? The induction score compares next-token loss on a repeated "
                 "random token sequence's second copy with its first; copying shows a string twice and asks for it "
                 "a third time; open-book completion states a never-seen person's facts, then prompts for one "
                 "(evals/reading.py). No training document uses these layouts."),
        ("table", (["probe", "value [95% CI]", "n", "example continuation"], rows)),
        *([("text", reading["skipped"])] if "skipped" in reading else []),
    ])
