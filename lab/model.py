"""labgpt: the lab's own decoder-only transformer.

RoPE, RMSNorm, grouped-query attention, SwiGLU, optional tied embeddings, KV cache. It is a
`transformers` PreTrainedModel so TRL, peft, accelerate and `generate` work on it, and its weight
names and shapes are Llama's, so `lab export --format llama` is a renaming of the config only.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    GenerationMixin,
    PretrainedConfig,
    PreTrainedModel,
)
try:
    from transformers import initialization as init
except ImportError:  # older transformers 5.x: plain torch init (no lazy-loading guard needed there)
    from torch.nn import init
from transformers.cache_utils import DynamicCache
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GenericForSequenceClassification, GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS


class LabGPTConfig(PretrainedConfig):
    model_type = "labgpt"
    keys_to_ignore_at_inference = ["past_key_values"]
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


def rope_cos_sin(config: LabGPTConfig, position_ids: torch.Tensor, dtype: torch.dtype):
    # Computed on the fly rather than held in a buffer: non-persistent buffers come back as garbage
    # from `from_pretrained` (weights are materialised lazily), and this costs next to nothing.
    dim = config.head_dim
    inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, dim, 2, device=position_ids.device, dtype=torch.float) / dim))
    freqs = position_ids[..., None].float() * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(q, k, cos, sin):
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def eager_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Reference attention that also returns the weights (for `lab inspect attention`)."""
    groups = module.num_key_value_groups
    key = key.repeat_interleave(groups, dim=1)
    value = value.repeat_interleave(groups, dim=1)
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    out = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return out, weights


_HAS_GET_INTERFACE = hasattr(ALL_ATTENTION_FUNCTIONS, "get_interface")


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

    def forward(self, hidden_states, cos_sin, attention_mask=None, past_key_values=None, **kwargs):
        b, t, _ = hidden_states.shape
        q = self.q_proj(hidden_states).view(b, t, -1, self.head_dim).transpose(1, 2)
        k = self.k_proj(hidden_states).view(b, t, -1, self.head_dim).transpose(1, 2)
        v = self.v_proj(hidden_states).view(b, t, -1, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, k, *cos_sin)
        if past_key_values is not None:
            k, v = past_key_values.update(k, v, self.layer_idx)
        impl = self.config._attn_implementation
        if impl in (None, "eager"):
            attention = eager_attention
        elif _HAS_GET_INTERFACE:  # transformers >= 5.2x; older ones index the registry directly
            attention = ALL_ATTENTION_FUNCTIONS.get_interface(impl, eager_attention)
        else:
            attention = ALL_ATTENTION_FUNCTIONS[impl]
        out, weights = attention(
            self,
            q,
            k,
            v,
            attention_mask,
            dropout=self.config.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
            **kwargs,
        )
        return self.o_proj(out.reshape(b, t, -1)), weights


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

    def forward(self, hidden_states, cos_sin=None, attention_mask=None, past_key_values=None, **kwargs):
        attn_out, weights = self.self_attn(
            self.input_layernorm(hidden_states), cos_sin, attention_mask, past_key_values, **kwargs
        )
        hidden_states = hidden_states + attn_out
        hidden_states = hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))
        return hidden_states, weights


class LabGPTPreTrainedModel(PreTrainedModel):
    config_class = LabGPTConfig
    config: LabGPTConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LabGPTDecoderLayer"]
    _skip_keys_device_placement = ["past_key_values"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = True

    def _init_weights(self, module):
        super()._init_weights(module)
        # GPT-2 style: shrink the residual-branch outputs so the residual stream's variance stays O(1) with depth.
        if isinstance(module, (LabGPTAttention, LabGPTMLP)):
            proj = module.o_proj if isinstance(module, LabGPTAttention) else module.down_proj
            std = self.config.initializer_range / (2 * self.config.num_hidden_layers) ** 0.5
            init.normal_(proj.weight, mean=0.0, std=std)


def _accepts(fn, name: str) -> bool:
    return name in inspect.signature(fn).parameters


# transformers 5.17 (the GPU machine) still takes cache_position; 5.23 does not.
_MASK_TAKES_CACHE_POSITION = _accepts(create_causal_mask, "cache_position")


def positions_from_mask(attention_mask: torch.Tensor, query_len: int) -> torch.Tensor:
    """Position of each of the last `query_len` tokens, counting only real (unpadded) tokens.

    Left-padded batches (GRPO, batched generation) arrive without position ids; counting from the
    first real token keeps RoPE positions identical to the unpadded sequence."""
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.clamp(min=0)[:, -query_len:]


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
        **kwargs,
    ) -> BaseModelOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if use_cache and past_key_values is None and not self.training:
            past_key_values = DynamicCache(config=self.config)
        query_len = inputs_embeds.shape[1]
        past_len = past_key_values.get_seq_length() if past_key_values is not None else 0

        if position_ids is None:
            if attention_mask is not None and attention_mask.dim() == 2:
                position_ids = positions_from_mask(attention_mask, query_len)
            else:
                position_ids = torch.arange(past_len, past_len + query_len, device=inputs_embeds.device)[None]

        mask_kwargs = dict(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            past_key_values=past_key_values,
            position_ids=position_ids,
        )
        if _MASK_TAKES_CACHE_POSITION:
            mask_kwargs["cache_position"] = torch.arange(past_len, past_len + query_len, device=inputs_embeds.device)
        causal_mask = create_causal_mask(**mask_kwargs)

        cos_sin = rope_cos_sin(self.config, position_ids, inputs_embeds.dtype)
        hidden_states = inputs_embeds
        all_hidden, all_attn = [], []
        for layer in self.layers:
            if output_hidden_states:
                all_hidden.append(hidden_states)
            hidden_states, weights = layer(
                hidden_states, cos_sin=cos_sin, attention_mask=causal_mask, past_key_values=past_key_values, **kwargs
            )
            if output_attentions:
                all_attn.append(weights)
        hidden_states = self.norm(hidden_states)
        if output_hidden_states:
            all_hidden.append(hidden_states)
        return BaseModelOutputWithPast(
            last_hidden_state=hidden_states,
            past_key_values=past_key_values if use_cache else None,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(all_attn) if output_attentions else None,
        )


class LabGPTForCausalLM(LabGPTPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

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
        return_dict=None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            **kwargs,
        )
        hidden = out.last_hidden_state
        if isinstance(logits_to_keep, int):
            hidden = hidden[:, -logits_to_keep:] if logits_to_keep else hidden
        else:
            hidden = hidden[:, logits_to_keep]
        logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            past_key_values=out.past_key_values,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
        )


class LabGPTForSequenceClassification(GenericForSequenceClassification, LabGPTPreTrainedModel):
    """Scalar head on the last non-pad token: the reward model (TRL RewardTrainer, num_labels=1)."""


AutoConfig.register("labgpt", LabGPTConfig, exist_ok=True)
AutoModel.register(LabGPTConfig, LabGPTModel, exist_ok=True)
AutoModelForCausalLM.register(LabGPTConfig, LabGPTForCausalLM, exist_ok=True)
AutoModelForSequenceClassification.register(LabGPTConfig, LabGPTForSequenceClassification, exist_ok=True)
