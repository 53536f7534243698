"""labgpt's one-token forward for the engine's decode loop: the same maths as the model, in fewer ops.

The model's forward is general (any length, 2-D or 4-D masks, a cache under either name, hidden states,
attention weights). A decode step needs none of that, and on a small model on CPU its time is the
matmuls plus a fixed cost per op, so this path cuts ops (profiled on tiny, batch 16, 2 cores: the
model's forward ran ~50 ops a layer, this one ~20):

- q, k and v come out of one matmul, and RoPE is applied in place in two ops (`rotate_half`'s sign sits
  in a signed sine table, so it is `x * cos + swap_halves(x) * signed_sin`);
- gate and up come out of one matmul; cos and sin are tables over every position, looked up per step;
- the step's keys and values go straight into the engine's preallocated cache, and attention reads its
  first n + 1 slots, the query heads of a key head side by side as its queries (no copied keys).

Fused weights are copies made once per `generate` call (reading the weights once, against once per
generated token), so a model under training is always current. `engine.generate` uses this for labgpt
and the model's own forward for anything else (transformers' Llama). Use:
`step = DecodeStep(model); logits = step(tokens, positions, cache, key_mask)`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lab.model.attention import rope_cos_sin


def _is_labgpt_lm(model) -> bool:
    """`isinstance(model, LabGPTForCausalLM)` without importing labgpt (the engine runs any causal LM and loads no
    model class itself): the class or a subclass, never a wrapper around one (TRL's value head, peft's PeftModel)."""
    return any(cls.__module__ == "lab.model.labgpt" and cls.__qualname__ == "LabGPTForCausalLM" for cls in type(model).__mro__)


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    if x.dtype == torch.float32:  # one fused op; the same product as the model's weight * normed
        return F.rms_norm(x, (x.shape[-1],), weight, eps)
    return weight * F.rms_norm(x.float(), (x.shape[-1],), None, eps).to(x.dtype)  # as the model: fp32, then cast


class DecodeStep:
    """One decode step of a LabGPTForCausalLM with the weights as they are now."""

    @staticmethod
    def supports(model) -> bool:
        """labgpt with plain layers: a peft adapter (or any wrapper) on a projection is left to the model's forward."""
        if not _is_labgpt_lm(model):  # e.g. TRL's or peft's wrapper around one: its forward
            return False
        linears = [model.lm_head] + [module for layer in model.model.layers
                                     for module in (*layer.self_attn.children(), *layer.mlp.children())]
        return all(type(module) is torch.nn.Linear and module.bias is None for module in linears) and \
            type(model.model.embed_tokens) is torch.nn.Embedding

    def __init__(self, model):
        config = model.config
        self.heads, self.kv_heads, self.head_dim = config.num_attention_heads, config.num_key_value_heads, config.head_dim
        self.eps = config.rms_norm_eps
        self.scaling = self.head_dim**-0.5
        self.layers = []
        with torch.no_grad():
            for layer in model.model.layers:
                attn, mlp = layer.self_attn, layer.mlp
                qkv = torch.cat((attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight))
                gate_up = torch.cat((mlp.gate_proj.weight, mlp.up_proj.weight))
                self.layers.append((layer.input_layernorm.weight, qkv, attn.o_proj.weight,
                                    layer.post_attention_layernorm.weight, gate_up, mlp.down_proj.weight))
            self.embed = model.model.embed_tokens.weight
            self.norm = model.model.norm.weight
            self.head = model.lm_head.weight
            # the model's own RoPE values at every position; rotate_half(x) * sin == swap_halves(x) * (-sin | sin),
            # so the sign goes into the table
            every = torch.arange(config.max_position_embeddings, device=self.embed.device)
            self.cos, sin = rope_cos_sin(self.head_dim, config.rope_theta, every, self.embed.dtype)
            half = self.head_dim // 2
            self.signed_sin = torch.cat((-sin[:, :half], sin[:, half:]), dim=-1)

    @torch.inference_mode()
    def __call__(self, tokens: torch.Tensor, positions: torch.Tensor, cache, key_mask: torch.Tensor | None):
        """Logits (batch, vocab) for one new token per row at `positions`; writes its keys and values at
        slot `cache.length` (the caller advances). `key_mask`: (batch, 1, 1, length + 1) bool, or None
        where no row has padding."""
        h, kv, d = self.heads, self.kv_heads, self.head_dim
        x = F.embedding(tokens, self.embed)
        batch = x.shape[0]
        n = cache.length
        cos, sin = self.cos[positions].unsqueeze(1), self.signed_sin[positions].unsqueeze(1)
        for i, (norm1, qkv_w, o_w, norm2, gate_up_w, down_w) in enumerate(self.layers):
            qkv = F.linear(_rms_norm(x, norm1, self.eps), qkv_w).view(batch, h + 2 * kv, d)
            qk = qkv[:, : h + kv]
            swapped = qk.unflatten(-1, (2, d // 2)).flip(-2).flatten(-2)  # (x2, x1): rotate_half without its sign
            qk.mul_(cos).addcmul_(swapped, sin)  # RoPE on q and k, in place
            keys, values = cache.keys[i], cache.values[i]
            keys.select(2, n).copy_(qkv[:, h : h + kv])
            values.select(2, n).copy_(qkv[:, h + kv :])
            # The h // kv query heads sharing a key head go in as that head's queries: one token's queries see
            # the same keys under the same mask, so this is grouped-query attention without copying keys.
            query = qkv[:, :h].view(batch, kv, h // kv, d)
            out = F.scaled_dot_product_attention(query, keys.narrow(2, 0, n + 1), values.narrow(2, 0, n + 1),
                                                 attn_mask=key_mask, scale=self.scaling)
            x = torch.addmm(x, out.reshape(batch, h * d), o_w.t())  # the residual add inside the matmul
            gate, up = F.linear(_rms_norm(x, norm2, self.eps), gate_up_w).chunk(2, dim=-1)
            x = torch.addmm(x, F.silu(gate).mul_(up), down_w.t())
        return F.linear(_rms_norm(x, self.norm, self.eps), self.head)
