"""Pretraining: our own loop (nanoGPT-style), not HF Trainer.

Packed token windows from a memmap, AdamW (fused on CUDA), warmup + cosine or WSD, gradient
accumulation, clipping, bf16 autocast and torch.compile on CUDA, DDP or FSDP under torchrun. The batch for a
step is a pure function of (seed, step, rank), so a resumed run sees exactly the data it would have
seen; with the optimizer and RNG state in the checkpoint, its loss curve continues bit for bit on CPU.
"""

from __future__ import annotations

import gc
import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from evals.corpus_stats import corpus_used_ids
from evals.reading import reading_snapshot
from lab.errors import LabError
from lab.model.engine import SamplingParams, generate_text
from lab.model.labgpt import LabGPTConfig, LabGPTForCausalLM
from lab.model.tokenizer import encode_texts, load_tokenizer
from lab.progress import TrainLogger
from lab.runs import Run, atomic_dir, cpu_info, settle_dir, write_json
from lab.train.distributed import Distributed
from lab.train.pretrain_settings import ModelShape, PretrainSettings, SampleSettings
from tasks.corpus import load_corpus

STAGE = "base"
# bf16 dense peak of the GPUs this lab is tuned on; MFU on other hardware needs pretrain.peak_tflops.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def model_config(shape: ModelShape, vocab_size: int, pad_token_id: int = 0, bos_token_id: int = 1,
                 eos_token_id: int = 2) -> LabGPTConfig:
    """A model shape with a vocabulary; the special ids default to lab/model/tokenizer.py's fixed ones."""
    return LabGPTConfig(
        vocab_size=vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size or None,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        max_position_embeddings=shape.max_position_embeddings,
        rope_theta=shape.rope_theta,
        tie_word_embeddings=shape.tie_word_embeddings,
        pad_token_id=pad_token_id,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
    )


# ---------------------------------------------------------------- data


def tokenize_documents(tokenizer, texts, path: Path) -> int:
    """Write `<|bos|> doc <|eos|>` for every document into one flat token file (uint16 when it fits)."""
    dtype = np.uint16 if len(tokenizer) < 2**16 else np.uint32
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    chunks, total, texts = [], 0, list(texts)
    for start in range(0, len(texts), 1024):
        for ids in encode_texts(tokenizer, texts[start : start + 1024]):
            chunks.append(np.asarray([bos, *ids, eos], dtype=dtype))
            total += len(ids) + 2
    tmp = path.with_name(path.name + ".tmp")
    np.concatenate(chunks or [np.zeros(0, dtype)]).tofile(tmp)
    os.replace(tmp, path)
    return total


def ensure_tokens(run: Run, tokenizer) -> dict[str, Path]:
    """Tokenize the run's corpus once into `base/data/{train,heldout}.bin`, and its stream (when the data stage
    made one) into `stream.bin` (cached across resumes)."""

    data_dir = run.stage_dir(STAGE) / "data"
    meta_path = data_dir / "meta.json"
    if meta_path.exists():
        return {split: data_dir / f"{split}.bin" for split in json.loads(meta_path.read_text())["tokens"]}
    data_dir.mkdir(parents=True, exist_ok=True)
    corpus = load_corpus(run.require("data"))
    paths = {split: data_dir / f"{split}.bin" for split in ("train", "heldout", "stream") if split in corpus}
    counts = {split: tokenize_documents(tokenizer, corpus[split]["text"], paths[split]) for split in paths}
    write_json(meta_path, {"tokens": counts, "dtype": "uint16" if len(tokenizer) < 2**16 else "uint32"})
    return paths


class TokenWindows:
    """(seq_len + 1)-token windows from a token file: at random starts that depend only on the key, or (`batch_at`)
    the consecutive windows of a pass through the file, so that nothing is read twice before everything is read once."""

    def __init__(self, path: Path, seq_len: int):
        meta = json.loads((path.parent / "meta.json").read_text())
        self.tokens = np.memmap(path, dtype=np.dtype(meta["dtype"]), mode="r")
        self.seq_len = seq_len
        if len(self.tokens) <= seq_len + 1:
            raise LabError(f"{path} holds {len(self.tokens)} tokens, fewer than one window of {seq_len + 1}")

    def _windows(self, starts, device) -> tuple[torch.Tensor, torch.Tensor]:
        windows = np.stack([self.tokens[s : s + self.seq_len + 1] for s in starts]).astype(np.int64)
        windows = torch.from_numpy(windows).to(device, non_blocking=True)
        return windows[:, :-1], windows[:, 1:]

    def batch(self, batch_size: int, key: tuple[int, ...], device) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng(list(key))
        return self._windows(rng.integers(0, len(self.tokens) - self.seq_len - 1, size=batch_size), device)

    def batch_at(self, batch_size: int, first_window: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows first_window ... first_window + batch_size - 1 of the passes through the file (wrapping round)."""
        per_pass = (len(self.tokens) - 1) // self.seq_len
        starts = [((first_window + i) % per_pass) * self.seq_len for i in range(batch_size)]
        return self._windows(starts, device)


# ---------------------------------------------------------------- optimisation


def lr_at(step: int, cfg: PretrainSettings) -> float:
    min_lr = cfg.lr * cfg.min_lr_ratio
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "wsd":  # warmup-stable-decay: flat, then linear decay over the last 20% of steps
        decay_start = int(cfg.max_steps * 0.8)
        if step < decay_start:
            return cfg.lr
        return cfg.lr - (cfg.lr - min_lr) * (step - decay_start) / max(1, cfg.max_steps - decay_start)
    if cfg.schedule != "cosine":
        raise LabError(f"unknown schedule '{cfg.schedule}'; valid: cosine, wsd")
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return min_lr + 0.5 * (cfg.lr - min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(model, cfg: PretrainSettings, device: torch.device) -> torch.optim.AdamW:
    # No weight decay on norms (1-D parameters); the tied embedding is decayed once.
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(
        groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=1e-8, fused=device.type == "cuda"
    )


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX-512 BF16 or AMX): there bf16 matmuls run ~4x faster than
    fp32's (2-core Zen CPU: ~950 vs ~220 GFLOP/s); without it they are emulated and slower than fp32."""
    flags = (cpu_info("flags") or "").split()  # none outside Linux: no way to ask, so float32
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(dtype: str, device: torch.device) -> torch.dtype | None:
    """The autocast precision for pretraining.dtype, or None for plain float32.

    auto = bf16 on CUDA and on a CPU with native bf16 matmuls, float32 on any other CPU. bfloat16 = bf16
    autocast on either (float32 weights and optimizer, bf16 matmuls; attention stays fp32 on CPU,
    lab/model/attention.py), refused on a CPU without native bf16 matmuls, where they are emulated and slower
    than float32. On a 2-core EPYC it is 1.58x faster on tiny with the same held-out loss curve; the base's
    config.json (training_precision) and the report say which ran."""
    if dtype not in ("auto", "bfloat16", "float32"):
        raise LabError(f"unknown pretrain.dtype '{dtype}'; valid: auto, bfloat16, float32")
    if dtype == "float32" or (dtype == "auto" and device.type == "cpu" and not cpu_has_native_bf16()):
        return None
    if device.type == "cpu" and not cpu_has_native_bf16():
        raise LabError("pretrain.dtype=bfloat16 on this CPU would be slower than float32: it has no native bf16 "
                       "matmuls (avx512_bf16 or amx_bf16); use pretrain.dtype=auto")
    return torch.bfloat16 if device.type in ("cuda", "cpu") else None


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def peak_flops(cfg: PretrainSettings, device: torch.device) -> float | None:
    if cfg.peak_tflops > 0:
        return cfg.peak_tflops * 1e12
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, tflops in PEAK_TFLOPS.items():
            if key in name:
                return tflops * 1e12
    return None


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, dist, model, optimizer, step: int, config: LabGPTConfig) -> None:
    """Whole weights and a name-keyed optimizer state, whatever the parallelism (every rank calls this: under
    FSDP gathering them is a collective); the main rank writes."""
    weights = dist.full_state_dict(model)
    optimizer_state = dist.full_optimizer_state(model, optimizer)
    if not dist.is_main:
        return
    if config.tie_word_embeddings:
        weights.pop("lm_head.weight", None)  # the embedding, saved once
    with atomic_dir(path) as tmp:
        model.save_pretrained(tmp, state_dict=weights)
        with open(tmp / "trainer_state.pt", "wb") as f:  # a file object: a failed write keeps its OSError's errno
            torch.save({"step": step, "optimizer": optimizer_state, "torch_rng": torch.get_rng_state(),
                        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                        "config": config.to_dict()}, f)


def load_checkpoint(path: Path, model, config: LabGPTConfig) -> dict:
    """Load the weights into the (unwrapped) model and restore the RNG; returns the state with the step and
    the optimizer state, which is loaded once the optimizer exists (after any sharding)."""
    state = torch.load(path / "trainer_state.pt", map_location="cpu", weights_only=False)
    shape_keys = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                  "intermediate_size", "tie_word_embeddings")
    stored, wanted = state["config"], config.to_dict()
    mismatched = [k for k in shape_keys if stored.get(k) != wanted.get(k)]
    if mismatched:
        k = mismatched[0]
        raise LabError(f"checkpoint {path} has {k}={stored.get(k)} but the settings ask for {k}={wanted.get(k)}; "
                       "use another --name or delete the checkpoint")

    weights = load_file(path / "model.safetensors")
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or set(missing) - {"lm_head.weight"}:  # a tied lm_head is absent from the file
        raise LabError(f"checkpoint {path} does not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.tie_weights()
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return state


# ---------------------------------------------------------------- the loop


def write_samples(model, tokenizer, s: SampleSettings, seed: int, path: Path) -> list[dict]:
    """A few sampled continuations of the sample prompts: the first look at what the model learned."""
    params = SamplingParams(max_new_tokens=s.max_new_tokens, temperature=s.temperature, top_k=s.top_k,
                            seed=seed, stop_token_ids=(tokenizer.eos_token_id,))
    texts = generate_text(model, tokenizer, list(s.prompts), params)
    rows = [{"prompt": p, "completion": t} for p, t in zip(s.prompts, texts)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows



def pretrain(cfg: PretrainSettings, context, stop_at: int | None = None, restart: bool = False,
             quiet: bool = False) -> dict:
    """Train a model of `context.model`'s shape into `context.stage` (base, or the scaling sweep's one a size).
    Resumes from `<stage>/checkpoint` unless `restart`.

    `stop_at` ends the run after that many steps without finishing the stage, as if killed (used to
    split pretraining across commands, and by the resume test)."""

    run, stage = context.run, context.stage or STAGE
    if cfg.parallel not in ("ddp", "fsdp"):
        raise LabError(f"unknown pretrain.parallel '{cfg.parallel}'; valid: ddp, fsdp")
    dist = Distributed.from_env(cfg.device)
    device = dist.device
    out = run.stage_dir(stage)
    tokenizer = load_tokenizer(run.require("tokenizer"))
    if dist.is_main:
        ensure_tokens(run, tokenizer)  # shared by every model of the run: always base/data
    dist.barrier()
    paths = {split: run.stage_dir(STAGE) / "data" / f"{split}.bin" for split in ("train", "heldout", "stream")}
    train_data = TokenWindows(paths["train"], cfg.seq_len)
    heldout_data = TokenWindows(paths["heldout"], cfg.seq_len)
    stream_data = TokenWindows(paths["stream"], cfg.seq_len) if paths["stream"].exists() else None
    # the induction probe's draw of ids the corpus uses (>= 100 times), counted once
    allowed_ids = corpus_used_ids(run.stage_dir(STAGE) / "data") if cfg.reading_probes and dist.is_main else None
    if not 0.0 <= cfg.stream_share <= 1.0:
        raise LabError(f"pretrain.stream_share must be between 0 and 1, got {cfg.stream_share}")
    stream_rows = round(cfg.batch_size * cfg.stream_share) if stream_data is not None else 0
    if stream_data is None and cfg.stream_share > 0 and dist.is_main and not quiet:
        print("note: the data stage made no stream (data.corpus.stream_sources); every row comes from the corpus",
              file=sys.stderr)

    config = model_config(context.model, len(tokenizer), tokenizer.pad_token_id, tokenizer.bos_token_id,
                          tokenizer.eos_token_id)
    if cfg.seq_len > config.max_position_embeddings:
        raise LabError(f"pretrain.seq_len {cfg.seq_len} exceeds model.max_position_embeddings {config.max_position_embeddings}")
    torch.manual_seed(context.seed)
    model = LabGPTForCausalLM(config).to(device)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    ckpt_path = out / "checkpoint"
    if dist.is_main:
        settle_dir(ckpt_path)  # a kill mid-save leaves the newest complete checkpoint in place, and no temporaries
    dist.barrier()
    state = load_checkpoint(ckpt_path, model, config) if ckpt_path.exists() and not restart else None
    start = state["step"] if state else 0
    if state and dist.is_main and not quiet:
        print(f"resuming at step {start} from {ckpt_path}", file=sys.stderr)
    model.train()
    config.use_cache = False
    forward_model = dist.wrap(model, cfg.parallel)  # FSDP shards `model` in place
    optimizer = make_optimizer(model, cfg, device)
    if state:
        dist.load_optimizer_state(model, optimizer, state["optimizer"])

    precision = autocast_dtype(cfg.dtype, device)
    autocast = torch.autocast(device.type, dtype=precision) if precision else nullcontext()
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 matmuls outside autocast (none by design) use TF32

    tokens_per_step = cfg.batch_size * cfg.seq_len * cfg.grad_accum * dist.world_size
    flops_per_token = config.flops_per_token(cfg.seq_len)
    peak = peak_flops(cfg, device)
    end = cfg.max_steps if stop_at is None else min(stop_at, cfg.max_steps)
    logger = TrainLogger(out / "logs", enabled=dist.is_main and start < end, total=cfg.max_steps, start=start,
                         title="pretrain", quiet=quiet)

    def loss_on(x, y, m):
        with autocast:
            logits = m(input_ids=x).logits
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))

    if cfg.compile and device.type == "cuda":
        # Compile forward and loss together, so the fp32 upcast and log-softmax over the vocabulary
        # fuse instead of materialising a float copy of every logit.
        loss_on = torch.compile(loss_on)

    @torch.no_grad()
    def heldout_loss() -> float:
        model.eval()
        losses = [loss_on(*heldout_data.batch(cfg.batch_size, (context.seed, 7, i), device), model).item()
                  for i in range(cfg.eval_batches)]
        model.train()
        return float(np.mean(losses))

    step, loss_value, t0 = start, float("nan"), time.perf_counter()
    for step in range(start, end):
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_sum = 0.0
        for micro in range(cfg.grad_accum):
            parts = []
            if stream_rows < cfg.batch_size:
                parts.append(train_data.batch(cfg.batch_size - stream_rows, (context.seed, step, micro, dist.rank), device))
            if stream_rows:  # this micro-batch's place in the pass: no window of the stream is read twice per pass
                slot = (step * cfg.grad_accum + micro) * dist.world_size + dist.rank
                parts.append(stream_data.batch_at(stream_rows, slot * stream_rows, device))
            x, y = (torch.cat(t) for t in zip(*parts))
            with dist.no_sync(forward_model, last=micro == cfg.grad_accum - 1):
                loss = loss_on(x, y, forward_model) / cfg.grad_accum
                loss.backward()
            loss_sum += loss.item()
        grad_norm = dist.grad_norm(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = dist.mean(loss_sum)
        if not math.isfinite(loss_value):
            raise LabError(f"pretraining diverged at step {step + 1} (loss {loss_value}); lower pretrain.lr "
                           f"(now {cfg.lr}); the last good checkpoint is kept in {ckpt_path}")
        done = step + 1
        if done % cfg.log_every == 0 or done == end:
            if device.type == "cuda":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - t0
            steps_timed = done - (logger.last_logged_step or start)
            tps = tokens_per_step * steps_timed / elapsed
            record = {"step": done, "loss": loss_value, "lr": lr, "grad_norm": grad_norm, "tokens_per_s": tps,
                      "tokens": done * tokens_per_step}
            if peak:
                record["mfu"] = flops_per_token * tps / (peak * dist.world_size)
            logger.log(record)
            t0 = time.perf_counter()
        if done % cfg.eval_every == 0 or done == cfg.max_steps:
            held = heldout_loss()
            if dist.is_main:
                record = {"step": done, "heldout_loss": held}
                if cfg.reading_probes and not dist.sharded:  # when reading appears (a sharded model is in pieces)
                    with torch.no_grad():
                        record.update(reading_snapshot(model, tokenizer, world_probes=context.data.source == "world",
                                                       allowed_ids=allowed_ids))
                logger.log(record)
        if cfg.ckpt_every and (done % cfg.ckpt_every == 0 or done == cfg.max_steps):  # 0: weights only
            save_checkpoint(ckpt_path, dist, model, optimizer, done, config)
        dist.barrier()
    logger.close()

    if dist.sharded:  # the whole model, on the main rank, for saving and sampling
        weights = dist.full_state_dict(model)
        model = LabGPTForCausalLM(config).to(device) if dist.is_main else None
        if model is not None:
            model.load_state_dict(weights, strict=False)
            model.tie_weights()
    result = {"step": step + 1 if end > start else start, "resumed_at": start, "loss": loss_value, "model": model}
    if (end == cfg.max_steps) and dist.is_main:
        config.use_cache = True
        model.config.use_cache = True
        model.config.training_precision = "bfloat16 autocast" if precision else "float32"  # which rule ran
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        rows_read = cfg.max_steps * cfg.grad_accum * dist.world_size * cfg.seq_len
        epochs = {"corpus": rows_read * (cfg.batch_size - stream_rows) / len(train_data.tokens),
                  "stream": rows_read * stream_rows / len(stream_data.tokens) if stream_rows else 0.0}
        summary = {"parameters": config.num_parameters(), "tokens_trained": cfg.max_steps * tokens_per_step,
                   "epochs": epochs, "stream_share": stream_rows / cfg.batch_size,
                   "final_loss": loss_value, "heldout_loss": logger.last.get("heldout_loss"),
                   "tokens_per_s": logger.mean("tokens_per_s"), "mfu": logger.mean("mfu"),
                   "device": str(device), "precision": "bf16 autocast" if precision else "float32",
                   "world_size": dist.world_size,
                   "parallel": ("fsdp" if dist.sharded else "ddp") if dist.world_size > 1 else "none",
                   "settings": asdict(cfg)}
        write_json(out / "summary.json", summary)
        write_samples(model.eval(), tokenizer, context.sample, context.seed, out / "samples.jsonl")
        run.mark_complete(stage, {"final_loss": loss_value})
        result.update(summary)
    # What holds the process group must go before the group does: a DDP Reducer freed after
    # destroy_process_group joins gloo threads that never return (a rank hung at exit under torchrun), and
    # FSDP's sharded module and the optimizer over its parameters, freed at interpreter exit, aborted a
    # rank ("terminate called without an active exception").
    del forward_model, optimizer
    gc.collect()
    dist.close()
    return result


def base_stage(settings: PretrainSettings, context) -> None:
    """The `base` stage: pretraining, then the first look at what the model learned (its samples, printed)."""
    pretrain(settings, context)
    samples = context.run.stage_dir(context.stage) / "samples.jsonl"
    if samples.exists():
        for line in samples.read_text().splitlines():
            row = json.loads(line)
            print(f"    {row['prompt']}{row['completion']}", file=sys.stderr)
