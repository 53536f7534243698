"""The KV cache's conventions that the model and the engine share: its field name, and RoPE positions.

labgpt's forward (lab/model/labgpt.py) and the engine's decode loop (lab/model/engine.py) both read these,
so they live here, below both: the model never imports the engine. Use: `model(..., **{CACHE_FIELD: cache})`
or `out.get(CACHE_FIELD)`; `positions_from_mask(attention_mask, query_len)` for left-padded batches;
`one_cache(past_key_values, cache)` for a forward that accepts the cache under either name.
"""

from __future__ import annotations

import dataclasses

import torch
from transformers.modeling_outputs import CausalLMOutputWithPast

# transformers 5.24 renamed `past_key_values` to `cache`, as forward argument and as output field, and
# warns on the old name; 5.17-5.23 know only `past_key_values`. Forward takes either; outputs use the
# name this version's public output dataclass declares.
CACHE_FIELD = "cache" if "cache" in {f.name for f in dataclasses.fields(CausalLMOutputWithPast)} else "past_key_values"


def positions_from_mask(attention_mask: torch.Tensor, query_len: int) -> torch.Tensor:
    """Position of each of the last `query_len` tokens, counting only real (unpadded) tokens.

    Left-padded batches (GRPO, batched generation) arrive without position ids; counting from the
    first real token keeps RoPE positions identical to the unpadded sequence."""
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.clamp(min=0)[:, -query_len:]


def one_cache(past_key_values, cache):
    """The cache under either of its names (see CACHE_FIELD)."""
    if past_key_values is not None and cache is not None and past_key_values is not cache:
        raise ValueError("pass the KV cache once, as `cache` or as `past_key_values`")
    return cache if cache is not None else past_key_values
