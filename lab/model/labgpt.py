"""labgpt: the lab's own decoder-only transformer.

RoPE, RMSNorm, grouped-query attention, SwiGLU, optional tied embeddings, KV cache. It is a
`transformers` PreTrainedModel so TRL, peft, accelerate and `generate` work on it, and its weight
names and shapes are Llama's, so `lab export --format llama` is a renaming of the config only.

The rule: this module leans only on the stable public surface of transformers: `PreTrainedModel`,
`PreTrainedConfig`, `GenerationMixin`, the Auto* registries, the `Cache` API (`update(k, v, layer)`,
`get_seq_length()`), `GradientCheckpointingLayer` and the output dataclasses. The causal + padding
mask and the attention kernels (lab/model/attention.py: torch's `scaled_dot_product_attention`, and an
eager path that returns the weights for `lab inspect attention`), the loss and the reward head
(lab/model/labgpt_rm.py) are ours: transformers' masking helpers and attention registry are internal
and changed signature in 5.23 and again in 5.24, which broke generation under TRL. tests/test_model.py
fails when the lab calls a deprecated transformers or TRL API on a forward, a generate or a TRL step,
so the next rename is seen in CI.

Use: `LabGPTForCausalLM(LabGPTConfig(...))`, or `AutoModelForCausalLM.from_pretrained(stage_dir)`
once `lab.model.labgpt` is imported; `lab.model.hf_generate.use_engine(model)` makes its `generate` run
on the lab's engine. This module never imports the engine (pyproject.toml's import contract).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    DynamicCache,
    GenerationMixin,
    GradientCheckpointingLayer,
    PreTrainedConfig,
    PreTrainedModel,
)
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from lab.model.attention import apply_rope, causal_attention_mask, eager_attention, rope_cos_sin, sdpa_attention
from lab.model.cache import CACHE_FIELD, one_cache, positions_from_mask


class LabGPTConfig(PreTrainedConfig):
    model_type = "labgpt"
    keys_to_ignore_at_inference = ["past_key_values", "cache"]
    auto_map = {}  # TRL reads this attribute on every config

    def __init__(
        self,
        vocab_size: int = 1024,
        hidden_size: int = 128,
        intermediate_size: int | None = None,
        num_hidden_layers: int = 4,
        num_attention_heads: int = 4,
        num_key_value_heads: int | None = None,
        head_dim: int | None = None,
        max_position_embeddings: int = 512,
        rope_theta: float = 10000.0,
        rms_norm_eps: float = 1e-5,
        initializer_range: float = 0.02,
        attention_dropout: float = 0.0,
        use_cache: bool = True,
        tie_word_embeddings: bool = True,
        pad_token_id: int | None = 0,
        bos_token_id: int | None = 1,
        eos_token_id: int | None = 2,
        **kwargs,
    ):
        if num_key_value_heads is None:
            num_key_value_heads = num_attention_heads
        if hidden_size % num_attention_heads:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of num_attention_heads {num_attention_heads}")
        if num_attention_heads % num_key_value_heads:
            raise ValueError(
                f"num_attention_heads {num_attention_heads} is not a multiple of num_key_value_heads {num_key_value_heads}"
            )
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        # SwiGLU keeps the MLP's parameter count near a 4x GELU MLP with 8/3 x width, rounded to 32.
        self.intermediate_size = intermediate_size or 32 * ((8 * hidden_size // 3 + 31) // 32)
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads
        self.head_dim = head_dim or hidden_size // num_attention_heads
        self.max_position_embeddings = max_position_embeddings
        self.rope_theta = rope_theta
        self.rms_norm_eps = rms_norm_eps
        self.initializer_range = initializer_range
        self.attention_dropout = attention_dropout
        self.use_cache = use_cache
        super().__init__(
            tie_word_embeddings=tie_word_embeddings,
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            **kwargs,
        )

    def num_parameters(self, include_embeddings: bool = True) -> int:
        d, L, V = self.hidden_size, self.num_hidden_layers, self.vocab_size
        attn = d * self.head_dim * (2 * self.num_attention_heads + 2 * self.num_key_value_heads)
        mlp = 3 * d * self.intermediate_size
        body = L * (attn + mlp + 2 * d) + d
        emb = V * d * (1 if self.tie_word_embeddings else 2)
        return body + (emb if include_embeddings else 0)

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token (forward + backward): 6 N plus the attention scores (PaLM, appendix B)."""
        n = self.num_parameters(include_embeddings=False) + self.vocab_size * self.hidden_size  # lm_head matmul counts
        attn = 12 * self.num_hidden_layers * self.num_attention_heads * self.head_dim * seq_len
        return 6 * n + attn


class LabGPTRMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32 like Llama, so exported checkpoints give the same logits. Eager mode gets
        # the fused kernel (fewer passes over memory); under torch.compile the decomposed form lets
        # inductor fuse the norm with its neighbours, which the opaque fused kernel would block.
        dtype, x = x.dtype, x.float()
        if torch.compiler.is_compiling():
            normed = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        else:
            normed = F.rms_norm(x, (x.shape[-1],), eps=self.variance_epsilon)
        return self.weight * normed.to(dtype)


class LabGPTAttention(nn.Module):
    def __init__(self, config: LabGPTConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.num_key_value_groups = config.num_attention_heads // config.num_key_value_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = True
        d, h, kv = config.hidden_size, config.num_attention_heads, config.num_key_value_heads
        self.q_proj = nn.Linear(d, h * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d, kv * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d, kv * self.head_dim, bias=False)
        self.o_proj = nn.Linear(h * self.head_dim, d, bias=False)

    def forward(self, hidden_states, cos_sin, mask=None, cache=None):
        b, t, _ = hidden_states.shape
        q = self.q_proj(hidden_states).view(b, t, -1, self.head_dim).transpose(1, 2)
        k = self.k_proj(hidden_states).view(b, t, -1, self.head_dim).transpose(1, 2)
        v = self.v_proj(hidden_states).view(b, t, -1, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, k, *cos_sin)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)
        dropout = self.config.attention_dropout if self.training else 0.0
        impl = self.config._attn_implementation
        if impl in (None, "eager"):
            out, weights = eager_attention(q, k, v, mask, self.scaling, self.num_key_value_groups, dropout, self.training)
        elif impl == "sdpa":
            out, weights = sdpa_attention(q, k, v, mask, self.scaling, self.num_key_value_groups, dropout)
        else:
            raise ValueError(f"labgpt implements attention 'sdpa' and 'eager', not {impl!r}")
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1)), weights


class LabGPTMLP(nn.Module):
    def __init__(self, config: LabGPTConfig):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LabGPTDecoderLayer(GradientCheckpointingLayer):
    def __init__(self, config: LabGPTConfig, layer_idx: int):
        super().__init__()
        self.self_attn = LabGPTAttention(config, layer_idx)
        self.mlp = LabGPTMLP(config)
        self.input_layernorm = LabGPTRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = LabGPTRMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, hidden_states, cos_sin=None, mask=None, cache=None):
        attn_out, weights = self.self_attn(self.input_layernorm(hidden_states), cos_sin, mask, cache)
        hidden_states = hidden_states + attn_out
        hidden_states = hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))
        return hidden_states, weights


class LabGPTPreTrainedModel(PreTrainedModel):
    config_class = LabGPTConfig
    config: LabGPTConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LabGPTDecoderLayer"]
    _skip_keys_device_placement = ["past_key_values", "cache"]
    _supports_sdpa = True  # and eager; our attention calls no kernel registry, so no flash/flex here
    _can_compile_fullgraph = True

    def set_attn_implementation(self, attn_implementation: str, **kwargs) -> None:
        """Switch between our two attention paths, 'sdpa' (fast) and 'eager' (returns weights).

        transformers' own switch decides from a model's source whether it uses its attention registry;
        labgpt does not, so it flips the config every layer shares."""
        if attn_implementation not in ("sdpa", "eager"):
            raise ValueError(f"labgpt implements attention 'sdpa' and 'eager', not {attn_implementation!r}")
        self.config._attn_implementation = attn_implementation

    def _init_weights(self, module):
        super()._init_weights(module)
        # GPT-2 style: shrink the residual-branch outputs so the residual stream's variance stays O(1) with depth.
        if isinstance(module, (LabGPTAttention, LabGPTMLP)):
            proj = module.o_proj if isinstance(module, LabGPTAttention) else module.down_proj
            std = self.config.initializer_range / (2 * self.config.num_hidden_layers) ** 0.5
            init.normal_(proj.weight, mean=0.0, std=std)


class LabGPTModel(LabGPTPreTrainedModel):
    def __init__(self, config: LabGPTConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(LabGPTDecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = LabGPTRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        past_key_values=None,
        inputs_embeds=None,
        use_cache=None,
        output_attentions=False,
        output_hidden_states=False,
        cache=None,
        **kwargs,  # what generate and the trainers pass besides (cache_position, return_dict, ...): not needed
    ) -> BaseModelOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        cache = one_cache(past_key_values, cache)
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if use_cache and cache is None and not self.training:
            cache = DynamicCache(config=self.config)
        query_len = inputs_embeds.shape[1]
        past_len = cache.get_seq_length() if cache is not None else 0

        if position_ids is None:
            if attention_mask is not None and attention_mask.dim() == 2:
                position_ids = positions_from_mask(attention_mask, query_len)
            else:
                position_ids = torch.arange(past_len, past_len + query_len, device=inputs_embeds.device)[None]
        mask = causal_attention_mask(attention_mask, query_len, past_len)

        cos_sin = rope_cos_sin(self.config.head_dim, self.config.rope_theta, position_ids, inputs_embeds.dtype)
        hidden_states = inputs_embeds
        all_hidden, all_attn = [], []
        for layer in self.layers:
            if output_hidden_states:
                all_hidden.append(hidden_states)
            hidden_states, weights = layer(hidden_states, cos_sin=cos_sin, mask=mask, cache=cache)
            if output_attentions:
                all_attn.append(weights)
        hidden_states = self.norm(hidden_states)
        if output_hidden_states:
            all_hidden.append(hidden_states)
        return BaseModelOutputWithPast(
            last_hidden_state=hidden_states,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(all_attn) if output_attentions else None,
            **{CACHE_FIELD: cache if use_cache else None},
        )


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch=None, ignore_index: int = -100):
    """Next-token cross-entropy in fp32; labels are the input ids (shifted here), -100 where not trained.

    Trainers that accumulate gradients pass `num_items_in_batch`: the loss is then a sum over this
    micro-batch divided by the tokens of the whole accumulated batch, so every token weighs the same."""
    shifted = F.pad(labels, (0, 1), value=ignore_index)[..., 1:].reshape(-1).to(logits.device)
    flat = logits.float().reshape(-1, logits.shape[-1])
    if num_items_in_batch is None:
        return F.cross_entropy(flat, shifted, ignore_index=ignore_index)
    total = F.cross_entropy(flat, shifted, ignore_index=ignore_index, reduction="sum")
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


class LabGPTForCausalLM(LabGPTPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}
    # Set per instance by lab.model.hf_generate.use_engine (the engine builds on this module, so the model
    # cannot import it): a plain function `hook(model, inputs, generation_config, **kwargs) -> ids or None`.
    engine_generate = None

    def __init__(self, config: LabGPTConfig):
        super().__init__(config)
        self.model = LabGPTModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        past_key_values=None,
        inputs_embeds=None,
        labels=None,
        use_cache=None,
        logits_to_keep: int | torch.Tensor = 0,
        output_attentions=False,
        output_hidden_states=False,
        cache=None,
        num_items_in_batch=None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        hidden = out.last_hidden_state
        if isinstance(logits_to_keep, int):
            hidden = hidden[:, -logits_to_keep:] if logits_to_keep else hidden
        else:
            hidden = hidden[:, logits_to_keep]
        logits = self.lm_head(hidden)
        loss = causal_lm_loss(logits, labels, num_items_in_batch) if labels is not None else None
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
            **{CACHE_FIELD: out.get(CACHE_FIELD)},
        )

    def generate(self, inputs=None, generation_config=None, **kwargs):
        """HF `generate`, run by the lab's engine when `use_engine(model)` set the hook and the engine implements
        every option the call sets (greedy or sampling with temperature/top-k/top-p/min-p, eos, left-padded
        batches: what TRL's rollouts ask for), by transformers' GenerationMixin otherwise. The engine's sampling
        is HF's warpers on the same logits, so both draw the same tokens from the same seed until a row finishes
        (tests/test_engine.py)."""
        hook = self.engine_generate
        result = hook(self, inputs, generation_config, **kwargs) if hook is not None else None
        return result if result is not None else super().generate(inputs, generation_config, **kwargs)


AutoConfig.register("labgpt", LabGPTConfig, exist_ok=True)
AutoModel.register(LabGPTConfig, LabGPTModel, exist_ok=True)
AutoModelForCausalLM.register(LabGPTConfig, LabGPTForCausalLM, exist_ok=True)
