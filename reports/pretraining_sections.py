"""The report's pretraining sections: the loss curve, the reading probes over pretraining, the knowledge
stage's reading-probe table with the per-head induction map, and exposure stated as presentations
(reports/report.py places them). A field an older run's files lack skips its row or line."""

from __future__ import annotations

from evals.corpus_stats import corpus_epochs
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


# The snapshot's fields (evals/reading.reading_snapshot), copying on the left panel, open-book on the right.
READING_CURVES = {"induction_score": "induction score, uniform ids", "induction_used_32": "induction score, ids the "
                  "corpus uses", "induction_head_best": "best head's induction attention",
                  "copy_digits_8": "copies 8 digits shown twice", "copy_layouts": "exact copy, frozen layouts",
                  "open_book_corpus": "open-book, corpus phrasing", "open_book_novel": "open-book, novel phrasing",
                  "open_book_heldout": "open-book, held-out wording", "open_book_two": "open-book, two people",
                  "open_book_two_other": "two people: the other's value"}


def reading_curve(runs: list[Run]):
    """The reading probes at every pretraining eval: when copying from the context appears."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    plotted = False
    for run in runs:
        log = [r for r in jsonl(run.stage_dir("base") / "logs" / "train.jsonl") if "induction_score" in r]
        for key, label in READING_CURVES.items():
            points = [(r["step"], r[key]) for r in log if key in r]
            if points:
                ax = axes[1] if key.startswith("open_book") else axes[0]
                style = "o--" if key.endswith("_other") else "o-"  # a wrong answer, not a skill
                ax.plot(*zip(*points), style, ms=3, label=f"{run.name}: {label}" if len(runs) > 1 else label)
                plotted = True
    if not plotted:
        plt.close(fig)
        return None
    for ax, title in zip(axes, ("Copying from the context", "Open-book completion")):
        ax.set(xlabel="step", ylim=(-0.05, 1.05), title=title)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("score / accuracy")
    data = png(fig)
    plt.close(fig)
    return data


def _heads_map(run: Run, reading: dict) -> tuple[list[list[float]], str] | None:
    """The final per-head induction map and its draw: the knowledge stage's (corpus-used draw first), else the
    last pretraining snapshot's."""
    if reading.get("induction_heads_used"):
        return reading["induction_heads_used"], "ids the corpus uses"
    if reading.get("induction_heads"):
        return reading["induction_heads"], "uniform ids"
    log = [r for r in jsonl(run.stage_dir("base") / "logs" / "train.jsonl") if "induction_heads" in r]
    if log:
        return log[-1]["induction_heads"], "ids the corpus uses" if "induction_used_32" in log[-1] else "uniform ids"
    return None


def induction_heads_figure(heads: list[list[float]], draw: str):
    """A layers x heads heat map of each head's induction attention, each cell labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers, per_layer = len(heads), max(len(layer) for layer in heads)
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * per_layer, 0.8 + 0.6 * layers))
    # a fixed 0-1 scale: runs and steps compare, and a head that attends 0.02 looks like what it is
    image = ax.imshow(heads, cmap="viridis", vmin=0.0, vmax=1.0)
    for i, layer in enumerate(heads):
        for j, w in enumerate(layer):
            ax.text(j, i, f"{w:.2f}", ha="center", va="center", fontsize=8, color="white" if w < 0.5 else "black")
    ax.set(xticks=range(per_layer), yticks=range(layers), xlabel="head", ylabel="layer",
           title=f"Induction attention per head ({draw})")
    fig.colorbar(image, ax=ax, fraction=0.046)
    data = png(fig)
    plt.close(fig)
    return data


OPEN_BOOK_LABELS = {"corpus": "corpus phrasing", "novel": "novel phrasing (words no document uses)",
                    "heldout": "held-out wording (the corpus's words, in no document's order)"}


def _layouts(reading: dict) -> str:
    """The frozen copy layouts a reading.json measured, named and spelled out (in the text: a table cell would
    take a layout's "|" for a column)."""
    named = {r["layout"]: r["template"].replace("{s}", "X").replace("\n", "⏎") for r in reading.get("copy_layouts", [])}
    return "; ".join(f"{name}: {shown}" for name, shown in named.items())


def _induction_rows(reading: dict) -> list[list]:
    uniform = reading["induction"]
    rows = [[f"induction score, uniform ids, {uniform.get('length', 32)} tokens (1 - loss on 2nd copy / 1st)",
             format_ci(uniform["by_row"], 3) if "by_row" in uniform else f"{uniform['score']:.3f}",
             uniform.get("rows", ""), ""]]
    minimum = reading.get("induction_used_min_count", 100)
    rows += [[f"induction score, the {r['ids']} ids the corpus uses {minimum}+ times, {r['length']} tokens",
              format_ci(r["by_row"], 3), r["rows"], ""] for r in reading.get("induction_used", [])]
    heads = reading.get("induction_heads_used") or reading.get("induction_heads")
    if heads:
        best = max((w, i, j) for i, layer in enumerate(heads) for j, w in enumerate(layer))
        draw = "ids the corpus uses" if reading.get("induction_heads_used") else "uniform ids"
        rows.append([f"best head's induction attention (layer {best[1]}, head {best[2]}; {draw})", f"{best[0]:.3f}",
                     "", ""])
    return rows


def reading_probes_section(run: Run) -> tuple[str, list] | None:
    """The knowledge stage's reading.json as a table and the per-head induction map, with the line saying which
    probes a run skipped."""
    path = run.stage_dir(KNOWLEDGE) / "reading.json"
    if not path.exists():
        return None
    reading = read_json(path)

    def example(examples: list[dict]) -> str:  # "|" shown as "¦": the Markdown table would take it for a column
        return examples[0]["continuation"].replace("\n", " ").replace("|", "¦")[:40] if examples else ""

    rows = _induction_rows(reading)
    rows += [[f"copy {r['kind']}, {r['length']} characters (exact: {format_ci(r['exact'])})" if "exact" in r else
              f"copy {r['kind']}, {r['length']} characters", format_ci(r["accuracy"]), r["accuracy"]["n"],
              example(r["examples"])] for r in reading["copy"]]
    rows += [[f"exact copy, layout {r['layout']}, {r['kind']} ({r['length']} characters)",
              format_ci(r["accuracy"]), r["accuracy"]["n"], example(r["examples"])]
             for r in reading.get("copy_layouts", [])]
    rows += [[f"open-book completion, {OPEN_BOOK_LABELS.get(p, p + ' phrasing')}", format_ci(v["accuracy"]),
              v["accuracy"]["n"], example(v["examples"])] for p, v in reading.get("open_book", {}).items()
             if v["accuracy"]["n"]]
    two = reading.get("open_book_two")
    if two and two["accuracy"]["n"]:
        position = ", ".join(f"asked {p}: {format_ci(m)}" for p, m in two["by_position"].items() if m["n"])
        rows += [[f"open-book, two people: the asked person's value ({position})", format_ci(two["accuracy"]),
                  two["accuracy"]["n"], example(two["examples"])],
                 ["open-book, two people: the other person's value", format_ci(two["other"]), two["other"]["n"], ""]]
    heads = _heads_map(run, reading)
    return (f"Reading the context ({run.name})", [
        ("text", "Does the base model use its prompt? The induction score compares next-token loss on a repeated "
                 "random token sequence's second copy with its first, drawn uniformly over the vocabulary and from "
                 "the ids the training tokens use; copying shows a string twice on lines of its own and asks for "
                 "it a third time, and (exact copies) once more in two frozen layouts no training source writes; "
                 "open-book completion states a never-seen person's facts, then prompts for one in the corpus's "
                 "phrasing, a novel one and a held-out wording, or states two people's and asks about one "
                 "(evals/reading.py). No training document uses these layouts. 95% intervals: Wilson, or CLT over "
                 "sequences for the induction score."),
        *([("text", f"Copy layouts ({_layouts(reading)}).")] if reading.get("copy_layouts") else []),
        ("table", (["probe", "value [95% CI]", "n", "example continuation"], rows)),
        *([("figure", (f"induction_heads_{run.name}", induction_heads_figure(*heads),
                       f"Each head's induction attention, final base model ({heads[1]})"))] if heads else []),
        *([("text", reading["skipped"])] if "skipped" in reading else []),
    ])


def exposure_text(run: Run) -> str:
    """Exposure k as presentations: k biographies x the epochs pretraining made over the corpus ("" when the
    run's base stage says neither)."""
    epochs = corpus_epochs(run)
    if not epochs:
        return ""
    path = run.stage_dir(KNOWLEDGE) / "results.json"
    ks = sorted({r["k"] for r in read_json(path).get("rows", [])} - {0}) if path.exists() else []

    def times(x: float) -> str:  # whole numbers from 10 up; a short run's fractions keep two digits
        return f"{x:.0f}" if x >= 10 else f"{x:.2g}"

    listed = f": k = {', '.join(map(str, ks))} are ~{', ~'.join(times(k * epochs) for k in ks)} presentations" if ks else ""
    return (f"k counts biographies in the corpus; pretraining made {epochs:.1f} epochs over it, so each biography was "
            f"presented about {times(epochs)} times{listed}." if epochs >= 1 else
            f"k counts biographies in the corpus; pretraining made {epochs:.2g} epochs over it{listed}.")
