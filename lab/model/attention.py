"""labgpt's attention maths: rotary positions, the causal + padding mask, and the two kernels.

Ours rather than transformers' (see lab/model/labgpt.py's docstring for the rule): `causal_attention_mask`
turns the 2-D padding masks generate and TRL pass into a boolean (batch, 1, query, key) mask, or None
where causal order alone is exact; `sdpa_attention` is torch's fused kernel, `eager_attention` the
reference that also returns the weights (`lab inspect attention`). Both take (batch, heads, time,
head_dim) tensors with grouped-query keys and values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rope_cos_sin(head_dim: int, theta: float, position_ids: torch.Tensor, dtype: torch.dtype):
    # Computed on the fly rather than held in a buffer: non-persistent buffers come back as garbage
    # from `from_pretrained` (weights are materialised lazily), and this costs next to nothing.
    steps = torch.arange(0, head_dim, 2, device=position_ids.device, dtype=torch.float)
    inv_freq = 1.0 / (theta ** (steps / head_dim))
    freqs = position_ids[..., None].float() * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(q, k, cos, sin):
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def causal_attention_mask(attention_mask: torch.Tensor | None, query_len: int, past_len: int) -> torch.Tensor | None:
    """Boolean (batch, 1, query, key) mask, True where a query may attend; None where causal order alone is exact.

    `attention_mask` is a 2-D padding mask over every key, past ones included (what `generate` and TRL
    pass), or a ready 4-D mask, used as given (the engine's). Without padding, prefill and one-token
    decoding need no mask: sdpa's `is_causal` (or nothing, for one query) is exact and takes the fast
    kernels, as transformers' own sdpa path does."""
    if attention_mask is not None and attention_mask.dim() == 4:
        return attention_mask
    if attention_mask is not None and attention_mask.dim() != 2:
        raise ValueError(f"attention_mask must be 2-D (batch, keys) or 4-D, got shape {tuple(attention_mask.shape)}")
    key_len = past_len + query_len
    if attention_mask is not None and attention_mask.shape[-1] != key_len:
        raise ValueError(
            f"attention_mask covers {attention_mask.shape[-1]} positions, but the cache holds {past_len} and "
            f"the input {query_len}"
        )
    padded = attention_mask is not None and not bool(attention_mask.all())
    if not padded and (past_len == 0 or query_len == 1):
        return None
    device = attention_mask.device if attention_mask is not None else None
    queries = torch.arange(past_len, key_len, device=device)
    mask = (torch.arange(key_len, device=device)[None, :] <= queries[:, None])[None, None]
    if padded:
        mask = mask & attention_mask.bool()[:, None, None, :]
    return mask


def eager_attention(query, key, value, mask, scaling, groups, dropout=0.0, training=False):
    """Reference attention that also returns the weights (for `lab inspect attention`)."""
    key = key.repeat_interleave(groups, dim=1)
    value = value.repeat_interleave(groups, dim=1)
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if mask is None and query.shape[2] > 1:  # causal, the queries being the last positions of the keys
        q_len, k_len = query.shape[2], key.shape[2]
        mask = torch.ones(q_len, k_len, dtype=torch.bool, device=query.device).tril(k_len - q_len)
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + mask
    weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=training)
    return torch.matmul(weights, value), weights


def sdpa_attention(query, key, value, mask, scaling, groups, dropout=0.0):
    """torch's fused attention. Grouped-query heads go in as they are when no mask is given (sdpa's
    `enable_gqa`); with a mask the fused kernels want full heads, so keys and values are repeated."""
    if query.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        # The matmuls around attention run in bf16 under CPU autocast, attention itself in fp32: torch's CPU
        # flash-attention backward is ~2.5x slower in bf16 than in fp32 (tiny shape, measured).
        with torch.autocast("cpu", enabled=False):
            return sdpa_attention(query.float(), key.float(), value.float(), mask, scaling, groups, dropout)
    gqa = {}
    if groups > 1:
        if mask is None:
            gqa = {"enable_gqa": True}
        else:
            key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    out = F.scaled_dot_product_attention(
        query, key, value, attn_mask=mask, dropout_p=dropout, scale=scaling,
        is_causal=mask is None and query.shape[2] > 1, **gqa,
    )
    return out, None
