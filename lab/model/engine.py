"""Batched generation with our own preallocated KV cache: the lab's decoder and its sampling.

HF `generate` is general; this loop is not: one prefill over the left-padded batch, then one token
per step with a cache written in place, logits only for the last position, and rows that finished
dropped from the batch. For labgpt each step is lab/model/decode_step.py (fused projections, fewer
ops); any other causal LM whose attention calls `cache.update(k, v, layer_idx)` (transformers' Llama)
runs its own forward. Sampling is transformers' own logits warpers (temperature, top-k, top-p, min-p,
in HF's order) on fp32 logits, then `torch.multinomial`: the same distribution HF generate samples.

Use: `generate(model, prompts, SamplingParams(...))` on token ids, `generate_text(model, tokenizer, texts,
params)` on text. HF `generate`'s call on this engine (what TRL's rollouts make) is lab/model/hf_generate.py;
the tool loop around it is lab/model/tool_loop.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import (
    LogitsProcessorList,
    MinPLogitsWarper,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from lab.model.cache import CACHE_FIELD, positions_from_mask
from lab.model.decode_step import DecodeStep
from lab.model.tokenizer import decode_ids, encode_text


@dataclass
class SamplingParams:
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0 = greedy
    top_k: int = 0  # 0 = off
    top_p: float = 1.0
    min_p: float | None = None  # None = off
    stop_token_ids: tuple[int, ...] = ()
    seed: int | None = None


class KVCache:
    """Keys and values for every layer, preallocated for the whole generation.

    `update` writes the new step's keys/values at the current length and returns views up to it;
    the engine calls `advance` once all layers have run."""

    def __init__(self, num_layers, batch, num_kv_heads, head_dim, max_len, dtype, device):
        shape = (batch, num_kv_heads, max_len, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.length = 0

    def update(self, key, value, layer_idx, *args, **kwargs):
        end = self.length + key.shape[2]
        self.keys[layer_idx][:, :, self.length : end] = key
        self.values[layer_idx][:, :, self.length : end] = value
        return self.keys[layer_idx][:, :, :end], self.values[layer_idx][:, :, :end]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.length

    def advance(self, n: int) -> None:
        self.length += n

    def keep_rows(self, rows: torch.Tensor) -> None:
        self.keys = [k[rows] for k in self.keys]
        self.values = [v[rows] for v in self.values]

    # transformers' mask helpers (transformers' Llama calls them; labgpt does not) probe these on any cache
    is_compileable = False

    def get_query_offset(self, layer_idx: int = 0) -> int:
        """Where this step's queries start: after every position cached so far."""
        return self.length

    def get_mask_sizes(self, query_length: int, layer_idx: int = 0) -> tuple[int, int]:
        """(keys the step attends over, their offset): the cached positions, then the step's own."""
        return self.length + query_length, 0

    @property
    def is_sliding(self):
        return [False] * len(self.keys)


def _kv_shape(config):
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    return config.num_hidden_layers, kv_heads, head_dim


def _warpers(params: SamplingParams):
    """transformers' logits warpers for `params`, in the order HF generate applies them."""
    chain = LogitsProcessorList()
    if params.temperature != 1.0:
        chain.append(TemperatureLogitsWarper(params.temperature))
    if params.top_k:
        chain.append(TopKLogitsWarper(params.top_k))
    if params.top_p < 1.0:
        chain.append(TopPLogitsWarper(params.top_p))
    if params.min_p is not None:
        chain.append(MinPLogitsWarper(params.min_p))
    return chain


def _warped(logits: torch.Tensor, params: SamplingParams, warpers=None) -> torch.Tensor:
    warpers = _warpers(params) if warpers is None else warpers
    return warpers(None, logits.float())  # these warpers never read the input ids


def sampling_logprobs(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Log-probabilities of the distribution a token is drawn from (fp32; -inf outside top-k/top-p/min-p)."""
    return _warped(logits, params).log_softmax(-1)


def sample_next(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None,
                warpers=None) -> torch.Tensor:
    if params.temperature <= 0:
        return logits.max(-1).indices  # argmax's first maximum, in half its time on CPU
    probs = _warped(logits, params, warpers).softmax(-1)  # softmax, as HF: exp(log_softmax) rounds differently
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.inference_mode()  # lighter than no_grad per op; only lists leave this function, never its tensors
def generate(model, prompts: list[list[int]], params: SamplingParams, pad_token_id: int = 0) -> list[list[int]]:
    """Generate continuations for a batch of token-id prompts. Returns new tokens only, stop token included."""
    if not prompts:
        return []
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token (e.g. <|bos|>)")
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    batch, prompt_len = len(prompts), max(len(p) for p in prompts)
    total = prompt_len + params.max_new_tokens
    max_pos = getattr(model.config, "max_position_embeddings", None)
    if max_pos is not None and total > max_pos:
        raise ValueError(f"prompt ({prompt_len}) + max_new_tokens ({params.max_new_tokens}) exceeds the context {max_pos}")

    ids = torch.full((batch, prompt_len), pad_token_id, dtype=torch.long)
    key_valid = torch.zeros((batch, total), dtype=torch.bool)
    for i, p in enumerate(prompts):  # left padding: every prompt ends at the same column
        ids[i, prompt_len - len(p) :] = torch.tensor(p)
        key_valid[i, prompt_len - len(p) : prompt_len] = True
    ids, key_valid = ids.to(device), key_valid.to(device)
    positions = positions_from_mask(key_valid[:, :prompt_len], prompt_len)

    num_layers, kv_heads, head_dim = _kv_shape(model.config)
    cache = KVCache(num_layers, batch, kv_heads, head_dim, total, dtype, device)
    generator = None
    if params.temperature > 0 and params.seed is not None:
        generator = torch.Generator(device=device).manual_seed(params.seed)
    stop = torch.tensor(list(params.stop_token_ids), dtype=torch.long, device=device)

    # Prefill mask: causal and key not padding; a padding query may see itself so no row is all-masked
    # (an all-masked softmax row is NaN, and NaN values leak into every later step through the cache).
    padded = not bool(key_valid[:, :prompt_len].all())  # no padding: causal order is the whole mask, ever
    mask = None
    if padded:
        causal = torch.ones(prompt_len, prompt_len, dtype=torch.bool, device=device).tril()
        eye = torch.eye(prompt_len, dtype=torch.bool, device=device)
        mask = (causal & key_valid[:, None, None, :prompt_len]) | eye
    logits = model(
        input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1,
        **{CACHE_FIELD: cache},
    ).logits[:, -1]
    cache.advance(prompt_len)

    # labgpt steps through its lean decode path; other models (transformers' Llama) through their forward
    step = DecodeStep(model) if DecodeStep.supports(model) else None
    warpers = _warpers(params) if params.temperature > 0 else None
    # Tokens go into one tensor and rows' lengths into a list: no per-token Python work beyond the step
    tokens = torch.zeros((batch, params.max_new_tokens), dtype=torch.long, device=device)
    lengths = [params.max_new_tokens] * batch
    alive = torch.arange(batch, device=device)  # original row of each row still generating
    last_pos = positions[:, -1]
    for index in range(params.max_new_tokens):
        token = sample_next(logits, params, generator, warpers)
        if len(token) == batch:  # every row still running: a plain column write
            tokens[:, index] = token
        else:
            tokens[alive, index] = token
        if index == params.max_new_tokens - 1:
            break
        if params.stop_token_ids:
            done = torch.isin(token, stop)
            if done.any():
                for row in alive[done].tolist():
                    lengths[row] = index + 1
                keep = (~done).nonzero().squeeze(-1)
                if keep.numel() == 0:
                    break
                alive, token, last_pos, key_valid = alive[keep], token[keep], last_pos[keep], key_valid[keep]
                cache.keep_rows(keep)
        key_valid[:, cache.length] = True
        last_pos = last_pos + 1
        step_mask = key_valid[:, None, None, : cache.length + 1] if padded else None
        if step is not None:
            logits = step(token, last_pos, cache, step_mask)
        else:
            logits = model(
                input_ids=token[:, None],
                attention_mask=step_mask if padded else key_valid[:, : cache.length + 1],
                position_ids=last_pos[:, None],
                **{CACHE_FIELD: cache},
                use_cache=True,
            ).logits[:, -1]
        cache.advance(1)
    return [row[:n] for row, n in zip(tokens.tolist(), lengths)]


def generate_text(model, tokenizer, texts: list[str], params: SamplingParams, add_bos: bool = True) -> list[str]:
    """Plain-text convenience wrapper: encode, generate, decode (stop token stripped)."""
    bos = [tokenizer.bos_token_id] if add_bos and tokenizer.bos_token_id is not None else []
    prompts = [bos + encode_text(tokenizer, t) for t in texts]
    outs = generate(model, prompts, params, pad_token_id=tokenizer.pad_token_id or 0)
    stops = set(params.stop_token_ids)
    return [decode_ids(tokenizer, [t for t in o if t not in stops]) for o in outs]
