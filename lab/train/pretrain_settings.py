"""Pretraining's settings: the model's shape, the optimisation, and the samples written at the end.

Torch-free, beside lab/train/pretrain.py (which imports torch at load), so the presets and `lab --help`
load without torch; why some defaults are what they are is in docs/settings-notes.md.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ModelShape:
    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 0  # 0 = 8/3 x hidden_size (SwiGLU default)
    max_position_embeddings: int = 512
    tie_word_embeddings: bool = True
    rope_theta: float = 10000.0


@dataclass
class PretrainSettings:
    seq_len: int = 128
    batch_size: int = 16  # sequences per micro-batch (per process under DDP)
    grad_accum: int = 1
    max_steps: int = 6000  # optimiser steps (why 6,000 on tiny: docs/reading-notes.md)
    # share of each batch's sequences read in order from the data stage's stream (documents generated once, so
    # never repeated); the rest are random windows of the corpus. 0 = the corpus only. Why: docs/reading-notes.md
    stream_share: float = 0.5
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 50
    schedule: str = "cosine"  # cosine | wsd (warmup-stable-decay, decay over the last 20%)
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    eval_every: int = 500
    eval_batches: int = 8
    reading_probes: bool = True  # induction score, copying, open-book at every eval (evals/reading.py)
    ckpt_every: int = 500  # resume checkpoints (weights, AdamW, RNG); 0 = none, the finished weights only
    log_every: int = 25
    dtype: str = "auto"  # auto = bf16 autocast on CUDA and on CPUs with native bf16 matmuls, else float32; or bfloat16, float32
    compile: bool = False
    device: str = "auto"
    peak_tflops: float = 0.0  # for MFU; 0 = look up the GPU (H100/H200 bf16 dense), none on CPU
    gradient_checkpointing: bool = False
    parallel: str = "ddp"  # under torchrun: ddp (a whole model per rank) | fsdp (sharded, for models that don't fit)

    def planned_steps(self, summary: dict) -> int:
        """The optimiser steps this stage takes with these settings (`summary`: a run of it, for its data size)."""
        return self.max_steps


@dataclass
class SampleSettings:
    prompts: tuple[str, ...] = ("Mira", "In 1988,", "The university of")
    max_new_tokens: int = 48
    temperature: float = 0.8
    top_k: int = 50
