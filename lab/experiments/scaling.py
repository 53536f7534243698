"""The scaling sweep: the same data, models of growing size, and what grows with them.

Every size is pretrained on the run's own corpus and tokenizer with the run's pretraining settings
(same steps and batches, so the same tokens: "fixed data"), into `experiments/scaling/<size>/`.
For each we record parameters (with and without the embedding), training FLOPs (6·N·D plus attention,
from the model config), held-out loss, knowledge recall by exposure k, and reading (evals/reading.py's
snapshot: induction score, 8-digit copying, open-book completion; copying needs at least two layers, as
induction heads do). A power law L(N) = E + A·N^(-alpha) is fitted to held-out loss against non-embedding
parameters: the irreducible loss E by a grid search, A and alpha by least squares in log space for each E.

"Some abilities appear abruptly with size", tested against Schaeffer et al. 2023 ("Are emergent abilities of
LLMs a mirage?"): the same copies are scored by a discontinuous metric (exact match of the 8-digit copy,
reading_snapshot's `copy_digits_8`) and a continuous one (per-digit accuracy of the copy, teacher-forced: the
share of the 8 digits the model ranks first given the right ones before it; the mean log-likelihood per digit
is recorded beside it). The rule, fixed before any sweep was run (ABRUPT_JUMP, `abruptness`): copying is abrupt
when exact match jumps by 0.25 or more between neighbouring sizes; the continuous metric agrees when its own
largest step between neighbouring sizes is at the same place. Verdict: "abrupt under both", "abrupt only under
exact match" (Schaeffer's mirage: the metric, not the model, is discontinuous) or "smooth".

The experiments/scaling stage of the pipeline runs it at the preset's `scaling.*` with the run's `pretrain.*`;
`lab experiment scaling RUN` does the same with other sizes or steps. Sizes train one after another and each
resumes from its own checkpoint, so a killed sweep goes on where it stopped; finished sizes are skipped (and
retrained when their steps differ).
"""

from __future__ import annotations

import dataclasses
import math
import random

import torch

from evals.corpus_stats import corpus_used_ids
from evals.knowledge import probe, summarize
from evals.reading import SNAPSHOT, copy_prompt, copy_string, reading_snapshot
from lab.errors import LabError
from lab.experiments.settings import ScalingSettings, parse_sizes
from lab.model.loading import load_model_and_tokenizer
from lab.model.tokenizer import encode_text
from lab.runs import read_json, write_json
from lab.settings import from_settings
from lab.stage_names import BASE
from lab.train.pretrain import pretrain
from lab.train.pretrain_settings import ModelShape, PretrainSettings

STAGE = "experiments/scaling"
NEEDS = ("tokenizer",)  # the run's data and its tokenizer, shared by every size; the pipeline provides them
__all__ = ["parse_sizes", "run_sweep", "scaling_stage", "abruptness", "fit_power_law"]

ABRUPT_JUMP = 0.25  # the rule, fixed in advance: exact match rising this much between neighbouring sizes is abrupt
VERDICTS = ("abrupt under both", "abrupt only under exact match", "smooth")


def sized(shape: ModelShape, pretrain: PretrainSettings, hidden: int, layers: int, steps: int, warmup: int):
    """(shape, pretraining settings) of one size of the sweep."""
    heads = hidden // 32
    # key/value heads: half of them (GQA, as in the presets) where that divides the heads, else the largest
    # divisor below (5 heads of a 160-wide model share 1; half, 2, would not group them)
    kv = max(d for d in range(1, max(1, heads // 2) + 1) if heads % d == 0)
    shape = dataclasses.replace(shape, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                                num_key_value_heads=kv, intermediate_size=0)
    # the sweep takes its own reading snapshot of each finished size: none at pretraining's eval as well
    train = dataclasses.replace(pretrain, max_steps=steps, eval_every=steps, warmup_steps=warmup, reading_probes=False)
    return shape, train


@torch.no_grad()
def copy_per_digit(model, tokenizer, settings=SNAPSHOT) -> dict:
    """The continuous score of reading_snapshot's 8-digit copies (the same strings, drawn with the same seed):
    per-digit accuracy teacher-forced (the target digit ranked first, the right digits before it given) and
    the mean log-likelihood per digit. The digits are a token each, so a digit is a token."""
    rng = random.Random(settings.seed)
    strings = [copy_string("digits", 8, rng) for _ in range(settings.copy_per_cell)]
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    prompts = [bos + encode_text(tokenizer, copy_prompt(s)) for s in strings]
    targets = [encode_text(tokenizer, s) for s in strings]
    was_training = model.training
    model.eval()
    try:
        right, loglik, n = 0, 0.0, 0
        device = next(model.parameters()).device
        for prompt, target in zip(prompts, targets):  # equal lengths within a string: no padding to get wrong
            ids = torch.tensor([prompt + target], device=device)
            logprobs = torch.log_softmax(model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float(), dim=-1)
            wanted = torch.tensor(target, device=device)
            right += int((logprobs.argmax(-1) == wanted).sum())
            loglik += float(logprobs.gather(-1, wanted[:, None]).sum())
            n += len(target)
    finally:
        model.train(was_training)
    return {"copy_digit_accuracy": right / n, "copy_digit_loglik": loglik / n}


def abruptness(rows: list[dict]) -> dict:
    """The rule of the module docstring on the sweep's rows (smallest to largest): each neighbouring step in
    exact match and in per-digit accuracy, where each is largest, and the verdict."""
    rows = sorted(rows, key=lambda r: r["non_embedding_parameters"])
    exact = [r["reading"]["copy_digits_8"] for r in rows]
    digits = [r["reading"]["copy_digit_accuracy"] for r in rows]
    steps = [{"from": a["size"], "to": b["size"], "exact": exact[i + 1] - exact[i],
              "continuous": digits[i + 1] - digits[i]} for i, (a, b) in enumerate(zip(rows, rows[1:]))]
    at_exact = max(range(len(steps)), key=lambda i: steps[i]["exact"])
    at_continuous = max(range(len(steps)), key=lambda i: steps[i]["continuous"])
    if steps[at_exact]["exact"] < ABRUPT_JUMP:
        verdict = "smooth"
    else:
        verdict = VERDICTS[0] if at_continuous == at_exact else VERDICTS[1]
    return {"rule": f"abrupt: exact match jumps by {ABRUPT_JUMP} or more between neighbouring sizes; the continuous "
                    "metric (per-digit accuracy, teacher-forced) agrees when its largest step is at the same place",
            "exact_metric": "copy_digits_8", "continuous_metric": "copy_digit_accuracy", "n": SNAPSHOT.copy_per_cell,
            "steps": steps, "largest_exact": steps[at_exact], "largest_continuous": steps[at_continuous],
            "verdict": verdict}


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


def scaling_stage(settings: ScalingSettings, context) -> None:
    """The experiments/scaling stage: the sweep at `settings`, every size with the run's own pretraining settings
    (its config.json, which the pipeline wrote from the preset it runs)."""
    pretrain_settings = from_settings(PretrainSettings, context.run.settings()["pretrain"])
    run_sweep(settings, context, pretrain_settings)


def run_sweep(settings: ScalingSettings, context, pretrain_settings: PretrainSettings,
              sizes: tuple[tuple[int, int], ...] | None = None, steps: int | None = None) -> list[dict]:
    """Pretrain every size (default: `settings`' sizes and steps, the run's pretraining otherwise) and write
    table, fit and plot."""
    run = context.run
    sizes = sizes or parse_sizes(settings.sizes)
    steps = steps or settings.steps
    if len(sizes) < 2:
        raise LabError("a scaling sweep needs at least two sizes")
    if steps < settings.warmup_steps:
        raise LabError(f"scaling steps ({steps}) must be at least scaling.warmup_steps ({settings.warmup_steps})")
    run.require("tokenizer")
    world = context.world if context.data.source == "world" else None
    rows = []
    allowed_ids = None  # the induction probe's corpus-used ids: every size reads the same base/data, counted once
    for hidden, layers in sizes:
        name = f"d{hidden}-l{layers}"
        stage = f"{STAGE}/{name}"
        shape, train = sized(context.model, pretrain_settings, hidden, layers, steps, settings.warmup_steps)
        done = run.is_complete(stage) and all(read_json(run.stage_dir(stage) / "summary.json")["settings"].get(key) ==
                                              getattr(train, key) for key in ("max_steps", "warmup_steps"))
        if not done:  # a size trained otherwise (other steps) starts over rather than standing in for this one
            pretrain(train, dataclasses.replace(context.at(stage), model=shape), restart=run.is_complete(stage))
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
        row["reading"].update(copy_per_digit(model, tokenizer))
        rows.append(row)
    out = run.stage_dir(STAGE)
    fit = fit_power_law([r["non_embedding_parameters"] for r in rows], [r["heldout_loss"] for r in rows])
    abrupt = abruptness(rows)
    write_json(out / "results.json", {"rows": rows, "fit": fit, "steps": steps, "abruptness": abrupt})
    (out / "table.md").write_text(table_markdown(rows, fit, abrupt) + "\n")
    plot(rows, fit, out / "scaling.png")
    run.mark_complete(STAGE, {"sizes": len(rows), "alpha": fit["alpha"], "copying": abrupt["verdict"]})
    return rows


READING_COLUMNS = {"induction_score": "induction score", "copy_digits_8": "copy 8 digits (exact)",
                   "copy_digit_accuracy": "copy per digit", "open_book_corpus": "open-book (corpus)",
                   "open_book_novel": "open-book (novel)"}


def abruptness_text(abrupt: dict) -> str:
    """The verdict on copying with the steps it rests on, one sentence."""
    e, c = abrupt["largest_exact"], abrupt["largest_continuous"]
    return (f"Copying 8 digits: {abrupt['verdict']}. Largest step in exact match {e['from']} → {e['to']} "
            f"({e['exact']:+.2f}); in per-digit accuracy {c['from']} → {c['to']} ({c['continuous']:+.2f}). Rule, "
            f"fixed in advance: {abrupt['rule']} (Schaeffer et al. 2023: a jump only exact match shows is the "
            "metric's, not the model's).")


def table_markdown(rows: list[dict], fit: dict, abrupt: dict | None = None) -> str:
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
    if abrupt is not None:
        lines += ["", abruptness_text(abrupt)]
    return "\n".join(lines)


def plot(rows: list[dict], fit: dict, path) -> None:
    import matplotlib  # lazy: matplotlib is slow to import, and only the plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    recall = bool(rows[0].get("recall_by_k"))
    fig, axes = plt.subplots(1, 4 if recall else 3, figsize=(20 if recall else 15, 3.8))
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
    copying = sorted(rows, key=lambda r: r["non_embedding_parameters"])
    for key, label in (("copy_digits_8", "exact match (discontinuous)"), ("copy_digit_accuracy", "per digit (continuous)")):
        axes[2].semilogx([r["non_embedding_parameters"] for r in copying], [r["reading"][key] for r in copying], "o-",
                         label=label)
    axes[2].set(xlabel="non-embedding parameters", ylabel="score", ylim=(-0.03, 1.03),
                title="Copying 8 digits: one ability, two metrics")
    if recall:
        for r in rows:
            ks = sorted(r["recall_by_k"], key=int)
            axes[3].plot([int(k) for k in ks], [r["recall_by_k"][k] for k in ks], "o-", label=r["size"])
        axes[3].set(xscale="symlog", xlabel="exposure k", ylabel="recall (corpus phrasing)", title="Knowledge by size")
    for ax in axes[:3]:  # the log x axes' minor labels ran into each other over a decade or two
        ax.xaxis.set_minor_formatter(NullFormatter())
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
