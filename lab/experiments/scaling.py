"""The scaling sweep: the same data, models of growing size, and what grows with them.

Every size is pretrained on the run's own corpus and tokenizer with the run's pretraining settings
(same steps and batches, so the same tokens: "fixed data"), into `experiments/scaling/<size>/`.
For each we record parameters (with and without the embedding), training FLOPs (6·N·D plus attention,
from the model config), held-out loss, knowledge recall by exposure k, and reading (evals/reading.py's
snapshot: induction score, 8-digit copying, open-book completion; copying needs at least two layers, as
induction heads do, and appears abruptly when it does). A power law
L(N) = E + A·N^(-alpha) is fitted to held-out loss against non-embedding parameters: the irreducible
loss E by a grid search, A and alpha by least squares in log space for each E (numpy only).

Sizes train one after another and each resumes from its own checkpoint, so a killed sweep goes on
where it stopped; finished sizes are skipped.
"""

from __future__ import annotations

import dataclasses
import math

from evals.corpus_stats import corpus_used_ids
from evals.knowledge import probe, summarize
from evals.reading import reading_snapshot
from lab.errors import LabError
from lab.experiments.settings import ScalingSettings
from lab.model.loading import load_model_and_tokenizer
from lab.runs import read_json, write_json
from lab.stage_names import BASE
from lab.train.pretrain import pretrain
from lab.train.pretrain_settings import ModelShape, PretrainSettings

STAGE = "experiments/scaling"
NEEDS = ("tokenizer",)  # the run's data and its tokenizer, shared by every size; the pipeline provides them


def parse_sizes(text: str) -> tuple[tuple[int, int], ...]:
    """"64x2,128x4" -> ((64, 2), (128, 4)): hidden size x layers."""
    try:
        sizes = tuple((int(d), int(layers)) for d, layers in (part.lower().split("x") for part in text.split(",")))
    except ValueError:
        raise LabError(f"sizes must look like 64x2,128x4 (hidden size x layers), got '{text}'") from None
    bad = [d for d, layers in sizes if d % 32 or d <= 0 or layers <= 0]
    if bad:
        raise LabError(f"hidden sizes must be positive multiples of 32 (heads of 32 dimensions), got {bad}")
    return sizes


def sized(shape: ModelShape, pretrain: PretrainSettings, hidden: int, layers: int, steps: int):
    """(shape, pretraining settings) of one size of the sweep."""
    heads = hidden // 32  # key/value heads: half of them (GQA), as in the presets
    shape = dataclasses.replace(shape, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                                num_key_value_heads=max(1, heads // 2), intermediate_size=0)
    train = dataclasses.replace(pretrain, max_steps=steps, eval_every=steps,
                                warmup_steps=min(pretrain.warmup_steps, steps // 10))
    return shape, train


def fit_power_law(params: list[float], losses: list[float]) -> dict:
    """L = E + A * N^-alpha: grid over E below the smallest loss, log-linear least squares for A, alpha."""
    best = None
    low = min(losses)
    for i in range(200):
        e = low * i / 200
        xs = [math.log(n) for n in params]
        ys = [math.log(loss - e) for loss in losses]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        intercept = my - slope * mx
        sse = sum((e + math.exp(intercept + slope * x) - loss) ** 2 for x, loss in zip(xs, losses))
        if best is None or sse < best["sse"]:
            best = {"E": e, "A": math.exp(intercept), "alpha": -slope, "sse": sse}
    return best


def run_sweep(settings: ScalingSettings, context, pretrain_settings: PretrainSettings,
              sizes: tuple[tuple[int, int], ...] | None = None, steps: int | None = None) -> list[dict]:
    """Pretrain every size (default: `settings`' sizes and steps, the run's pretraining otherwise) and write
    table, fit and plot."""
    run = context.run
    sizes = sizes or parse_sizes(settings.sizes)
    steps = steps or settings.steps
    if len(sizes) < 2:
        raise LabError("a scaling sweep needs at least two sizes")
    run.require("tokenizer")
    world = context.world if context.data.source == "world" else None
    rows = []
    allowed_ids = None  # the induction probe's corpus-used ids: every size reads the same base/data, counted once
    for hidden, layers in sizes:
        name = f"d{hidden}-l{layers}"
        stage = f"{STAGE}/{name}"
        shape, train = sized(context.model, pretrain_settings, hidden, layers, steps)
        if not run.is_complete(stage):
            pretrain(train, dataclasses.replace(context.at(stage), model=shape))
        summary = read_json(run.stage_dir(stage) / "summary.json")
        model, tokenizer = load_model_and_tokenizer(run.stage_dir(stage))
        total = model.config.num_parameters()
        embedding = model.config.vocab_size * hidden
        row = {"size": name, "hidden_size": hidden, "layers": layers, "parameters": total,
               "non_embedding_parameters": total - embedding * (1 if model.config.tie_word_embeddings else 2),
               "tokens": summary["tokens_trained"], "heldout_loss": summary["heldout_loss"],
               "final_loss": summary["final_loss"], "tokens_per_s": summary["tokens_per_s"],
               "flops": model.config.flops_per_token(train.seq_len) * summary["tokens_trained"]}
        if world is not None:
            recall = [r for r in summarize(probe(model, tokenizer, world)) if r["phrasing"] == "corpus"]
            row["recall_by_k"] = {str(r["k"]): r["accuracy"]["value"] for r in recall}
        if allowed_ids is None:
            allowed_ids = corpus_used_ids(run.stage_dir(BASE) / "data")
        row["reading"] = reading_snapshot(model, tokenizer, world_probes=world is not None,
                                          allowed_ids=allowed_ids)
        rows.append(row)
    out = run.stage_dir(STAGE)
    fit = fit_power_law([r["non_embedding_parameters"] for r in rows], [r["heldout_loss"] for r in rows])
    write_json(out / "results.json", {"rows": rows, "fit": fit, "steps": steps})
    (out / "table.md").write_text(table_markdown(rows, fit) + "\n")
    plot(rows, fit, out / "scaling.png")
    run.mark_complete(STAGE, {"sizes": len(rows), "alpha": fit["alpha"]})
    return rows


READING_COLUMNS = {"induction_score": "induction score", "copy_digits_8": "copy 8 digits",
                   "open_book_corpus": "open-book (corpus)", "open_book_novel": "open-book (novel)"}


def table_markdown(rows: list[dict], fit: dict) -> str:
    ks = sorted({k for r in rows for k in r.get("recall_by_k", {})}, key=int)
    reading = [key for key in READING_COLUMNS if key in rows[0].get("reading", {})]
    head = ["size", "parameters", "non-embedding", "tokens", "training FLOPs", "held-out loss",
            *(f"recall k={k}" for k in ks), *(READING_COLUMNS[key] for key in reading)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        recall = [f"{r['recall_by_k'][k]:.2f}" for k in ks] + [f"{r['reading'][key]:.2f}" for key in reading]
        lines.append(f"| {r['size']} | {r['parameters']:,} | {r['non_embedding_parameters']:,} | {r['tokens']:,} | "
                     f"{r['flops']:.2e} | {r['heldout_loss']:.3f} | " + " | ".join(recall) + (" |" if recall else ""))
    lines.append("")
    lines.append(f"Fit: held-out loss = {fit['E']:.3f} + {fit['A']:.3g} · N^(-{fit['alpha']:.3f}), N = non-embedding "
                 "parameters.")
    return "\n".join(lines)


def plot(rows: list[dict], fit: dict, path) -> None:
    import matplotlib  # lazy: matplotlib is slow to import, and only the plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3 if rows[0].get("recall_by_k") else 2, figsize=(15, 3.8))
    fig.subplots_adjust(wspace=0.35)
    n = [r["non_embedding_parameters"] for r in rows]
    loss = [r["heldout_loss"] for r in rows]
    axes[0].loglog(n, loss, "o", label="measured")
    grid = [min(n) * (max(n) / min(n)) ** (i / 50) for i in range(51)]
    axes[0].loglog(grid, [fit["E"] + fit["A"] * x ** -fit["alpha"] for x in grid], "--",
                   label=f"E + A·N^-{fit['alpha']:.2f}")
    axes[0].set(xlabel="non-embedding parameters", ylabel="held-out loss", title="Loss vs parameters (fixed data)")
    axes[1].loglog([r["flops"] for r in rows], loss, "o-")
    axes[1].set(xlabel="training FLOPs", ylabel="held-out loss", title="Loss vs compute")
    if len(axes) == 3:
        for r in rows:
            ks = sorted(r["recall_by_k"], key=int)
            axes[2].plot([int(k) for k in ks], [r["recall_by_k"][k] for k in ks], "o-", label=r["size"])
        axes[2].set(xscale="symlog", xlabel="exposure k", ylabel="recall (corpus phrasing)", title="Knowledge by size")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
