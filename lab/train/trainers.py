"""How every TRL/transformers trainer in the lab runs: resumed from the stage's last checkpoint, with the
lab's own logs instead of the trainer's printer, and saved as a plain model directory (LoRA merged in)."""

from __future__ import annotations

import sys
import time
from dataclasses import fields
from pathlib import Path

import torch
from peft import LoraConfig
from transformers import PrinterCallback, TrainingArguments

from lab.errors import LabError
from lab.runs import tidy_trainer_checkpoints


def lora_config(r: int, alpha: int):
    """LoRA on every projection of attention and MLP, or None for a full fine-tune (r = 0)."""
    if r <= 0:
        return None
    return LoraConfig(r=r, lora_alpha=alpha, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])


def activation_checkpointing(enabled: bool) -> dict:
    """The trainer-config field that turns activation (gradient) checkpointing on or off.

    transformers 5.24 renamed `gradient_checkpointing` to `activation_checkpointing` and warns on the
    old name, which TRL's configs set (to True) by default; 5.17-5.23 know only the old name. Setting
    the name this version declares keeps the choice explicit and the deprecation out."""
    name = "activation_checkpointing" if "activation_checkpointing" in {f.name for f in fields(TrainingArguments)} \
        else "gradient_checkpointing"
    return {name: enabled}


def common_trainer_args(checkpointing: bool) -> dict:
    """The trainer-config fields every stage sets alike: bf16 on CUDA and the CPU otherwise, no reporting
    integrations, no progress bars or dataloader workers (the lab logs and prints its own progress), and
    activation checkpointing on or off by its current name."""
    cuda = torch.cuda.is_available()
    return dict(report_to="none", bf16=cuda, use_cpu=not cuda, dataloader_num_workers=0, disable_tqdm=True,
                **activation_checkpointing(checkpointing))


def checkpoint_args(ckpt_every: int) -> dict:
    """The trainer-config fields for a stage's resume checkpoints: weights, optimizer and scheduler state every
    `ckpt_every` steps and at the end, the newest one kept. 0 writes none: the stage saves its finished weights
    only, and a killed run starts that stage again (a full-size model on a small disk, as in the gpu preset's
    CPU test, tests/test_gpu_preset.py)."""
    if ckpt_every < 0:
        raise LabError(f"ckpt_every must be >= 0 (0 = no resume checkpoints), got {ckpt_every}")
    if ckpt_every == 0:
        return dict(save_strategy="no")
    return dict(save_strategy="steps", save_steps=ckpt_every, save_total_limit=1)


def train_resuming(trainer, checkpoints: Path) -> tuple[str | None, float]:
    """Train from the last checkpoint under `checkpoints`, if any: (the checkpoint resumed from, seconds)."""
    trainer.remove_callback(PrinterCallback)  # the lab keeps its own logs (logs/train.jsonl)
    last = tidy_trainer_checkpoints(checkpoints)  # and clears what a kill left half-written
    if last:
        print(f"resuming at step {last.rsplit('-', 1)[1]} from {last}", file=sys.stderr)
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=last)
    return last, time.perf_counter() - t0


def save_trained(model, tokenizer, out: Path):
    """The trained model (a LoRA adapter merged into its base), ready for generation, with its tokenizer."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.config.use_cache = True
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return model
