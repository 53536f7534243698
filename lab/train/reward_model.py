"""Training the proxy reward model (the rm stage): TRL's RewardTrainer on gold-labelled comparisons, and
how good a stand-in it is (held-out pairwise accuracy, agreement and correlation with the gold judge),
by the number of comparisons too (the data-scaling table, lab/experiments/rm_scaling.py).

The RM starts from the sft-idk weights; scoring and loading are rewards/proxy.py, so RL stages
and experiments read rewards without importing this trainer. Run: `lab pipeline` (stage rm).
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch
from datasets import Dataset
from transformers import PrinterCallback
from trl import RewardConfig, RewardTrainer

from lab.errors import LabError
from lab.model.tokenizer import load_tokenizer
from lab.runs import tidy_trainer_checkpoints, write_json, write_train_log
from lab.train.reward_model_settings import RewardModelSettings
from lab.train.trainers import checkpoint_args, common_trainer_args
from rewards.completions import completion_text
from rewards.preferences import stage_preferences
from rewards.proxy import check_tokenizers_match, encode, load_reward_model, score


def tokenize_pairs(rows, tokenizer, max_length: int):
    """RewardTrainer's input, chosen_ids/rejected_ids from encode(), as a fresh in-memory Dataset (no cache files
    in the stage folder); pairs longer than max_length are dropped. Returns (dataset, dropped)."""
    ids = {"chosen_ids": [], "rejected_ids": []}
    dropped = 0
    for row in rows:
        chosen = encode(tokenizer, row["prompt"], completion_text(row["chosen"]))
        rejected = encode(tokenizer, row["prompt"], completion_text(row["rejected"]))
        if max(len(chosen), len(rejected)) > max_length:
            dropped += 1
            continue
        ids["chosen_ids"].append(chosen)
        ids["rejected_ids"].append(rejected)
    return Dataset.from_dict(ids), dropped


def fit(model, tokenizer, train, settings: RewardModelSettings, output_dir: Path, save: bool = True):
    """Train `model` on the tokenized pairs with RewardTrainer; resumes from output_dir's last checkpoint."""
    args = RewardConfig(
        output_dir=str(output_dir), num_train_epochs=settings.epochs, learning_rate=settings.lr,
        per_device_train_batch_size=settings.batch_size, gradient_accumulation_steps=settings.grad_accum,
        lr_scheduler_type="cosine", warmup_steps=settings.warmup_ratio, weight_decay=settings.weight_decay,
        center_rewards_coefficient=settings.center_rewards or None, max_length=settings.max_length,
        logging_steps=settings.log_every, **checkpoint_args(settings.ckpt_every if save else 0),
        seed=settings.seed, data_seed=settings.seed,
        **common_trainer_args(checkpointing=False),  # TRL turns it on by default; a small model only gets slower
    )
    trainer = RewardTrainer(model=model.train(), args=args, train_dataset=train, processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)  # the lab keeps its own logs (logs/train.jsonl)
    last = tidy_trainer_checkpoints(output_dir) if save else None
    trainer.train(resume_from_checkpoint=last)
    trainer.model.eval()
    return trainer, last


def correlation(x: list[float], y: list[float], method: str) -> float | None:
    """Pearson or Spearman (ties share their average rank); None where undefined (a constant side)."""
    value = pd.Series(x, dtype=float).corr(pd.Series(y, dtype=float), method=method) if len(x) > 1 else float("nan")
    return None if math.isnan(value) else float(value)


def evaluate(model, tokenizer, data, batch_size: int = 64) -> dict:
    """How well the proxy stands in for the gold judge on a split of preference pairs."""
    prompts = list(data["prompt"])
    chosen = score(model, tokenizer, prompts, [completion_text(c) for c in data["chosen"]], batch_size)
    rejected = score(model, tokenizer, prompts, [completion_text(c) for c in data["rejected"]], batch_size)
    gold_c, gold_r = list(data["gold_chosen"]), list(data["gold_rejected"])
    n = max(len(chosen), 1)
    # One point per distinct answer: a response seen in two pairs counts once in the correlations.
    points = {}
    answers = list(data["chosen"]) + list(data["rejected"])
    for p, t, s, g in zip(prompts * 2, answers, chosen + rejected, gold_c + gold_r):
        points[(json.dumps(p), completion_text(t))] = (s, g)
    proxy, gold = [s for s, _ in points.values()], [g for _, g in points.values()]
    return {
        "pairs": len(chosen),
        "accuracy": sum(c > r for c, r in zip(chosen, rejected)) / n,  # prefers the labelled choice
        "gold_agreement": sum((c - r) * (a - b) > 0 for c, r, a, b in zip(chosen, rejected, gold_c, gold_r)) / n,
        "responses": len(points), "spearman": correlation(proxy, gold, "spearman"),
        "pearson": correlation(proxy, gold, "pearson"),
        "proxy_mean": statistics.fmean(proxy) if proxy else None,
        "proxy_std": statistics.pstdev(proxy) if proxy else None,
    }


def train_reward_model(settings: RewardModelSettings, context) -> dict:
    """The `rm` stage: sample and label comparisons from `context.source`, train the RM from its weights into
    `context.stage`."""
    run, source, out_stage = context.run, context.source, context.stage
    src = run.require(source)
    out = run.open_stage(out_stage)
    data, pref_stats = stage_preferences(run, context.world, settings, source, out)
    if not len(data["train"]) or not len(data["test"]):
        raise LabError(f"the preference data has {len(data['train'])} training and {len(data['test'])} held-out pairs; "
                       "both are needed (raise rm.pairs, or move rm.heldout_share away from 0 and 1)")
    torch.manual_seed(settings.seed)  # the new head's initialisation: not whatever the process drew before
    model, tokenizer = load_reward_model(src)
    check_tokenizers_match(tokenizer, load_tokenizer(src))
    train, too_long = tokenize_pairs(data["train"], tokenizer, settings.max_length)
    t0 = time.perf_counter()
    trainer, resumed_from = fit(model, tokenizer, train, settings, out / "trainer")
    seconds = time.perf_counter() - t0
    model = trainer.model
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    logs = [dict(r) for r in trainer.state.log_history]
    write_train_log(out, logs)
    summary = {"source": source, "train_pairs": len(train), "dropped_too_long": too_long,
               "steps": trainer.state.global_step, "seconds": seconds, "resumed_from": resumed_from,
               "train": evaluate(model, tokenizer, data["train"]), "heldout": evaluate(model, tokenizer, data["test"]),
               "preferences": pref_stats, "settings": asdict(settings)}
    write_json(out / "summary.json", summary)
    run.mark_complete(out_stage, {"heldout_accuracy": summary["heldout"]["accuracy"],
                                  "gold_agreement": summary["heldout"]["gold_agreement"]})
    return summary
