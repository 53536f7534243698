"""Reward models trained on growing shares of the rm stage's comparisons: held-out pairwise accuracy, sign
agreement with the gold judge and Spearman correlation by the number of comparisons.

Run: `lab experiment rm-scaling runs/tiny [--fractions 0.25,0.5,1]` (one RM per share, about the rm
stage's training time each), into RUN/experiments/rm-scaling/ (table.md, results.json).
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import torch

from lab.errors import LabError
from lab.runs import Run, write_json
from lab.stage_names import SFT_IDK
from lab.train.reward_model import evaluate, fit, tokenize_pairs
from lab.train.reward_model_settings import RewardModelSettings
from rewards.preferences import load_preferences
from rewards.proxy import load_reward_model

STAGE = "experiments/rm-scaling"
NEEDS = (SFT_IDK, "rm")  # the RMs' starting weights and the rm stage's comparisons; the pipeline provides them


def check_fractions(fractions: tuple[float, ...]) -> None:
    bad = [f for f in fractions if not 0 < f <= 1]
    if bad or not fractions:
        raise LabError(f"data-scaling fractions must be in (0, 1], got {bad[0] if bad else '(none)'}")


def data_scaling(init_path, data, settings: RewardModelSettings, workdir: Path,
                 fractions: tuple[float, ...] = (0.25, 0.5, 1.0)) -> list[dict]:
    """Held-out quality of RMs trained on nested shares of the training comparisons (one row per share).

    Trains len(fractions) RMs from `init_path` (slow: about the rm stage's training time each)."""
    rows = []
    shuffled = list(data["train"])
    random.Random(settings.seed).shuffle(shuffled)  # nested: the 25% set is inside the 50% set
    check_fractions(fractions)
    for fraction in fractions:
        torch.manual_seed(settings.seed)  # the new head's initialisation, the same for every share
        model, tokenizer = load_reward_model(init_path)
        train, _ = tokenize_pairs(shuffled[: max(1, round(fraction * len(shuffled)))], tokenizer, settings.max_length)
        t0 = time.perf_counter()
        trainer, _ = fit(model, tokenizer, train, settings, Path(workdir) / f"fraction-{fraction:g}", save=False)
        heldout = evaluate(trainer.model, tokenizer, data["test"])
        rows.append({"fraction": fraction, "train_pairs": len(train), "steps": trainer.state.global_step,
                     "seconds": time.perf_counter() - t0, "heldout_accuracy": heldout["accuracy"],
                     "gold_agreement": heldout["gold_agreement"], "spearman": heldout["spearman"],
                     "pearson": heldout["pearson"]})
    return rows


def run_rm_scaling(run: Run, rm: RewardModelSettings, fractions: tuple[float, ...]) -> list[str]:
    """The table's lines (Markdown), written with the rows to the experiment's folder."""
    out = run.open_stage(STAGE)
    rows = data_scaling(run.require(SFT_IDK), load_preferences(run.require("rm") / "preferences"), rm,
                        out / "work", fractions)
    lines = ["| comparisons | held-out accuracy | gold agreement | Spearman |", "|---|---|---|---|"]
    lines += [f"| {r['train_pairs']} | {r['heldout_accuracy']:.3f} | {r['gold_agreement']:.3f} | "
              f"{r['spearman']:.3f} |" for r in rows]
    (out / "table.md").write_text("\n".join(lines) + "\n")
    write_json(out / "results.json", rows)
    run.mark_complete(STAGE, {"rows": len(rows)})
    return lines
