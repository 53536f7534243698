"""`lab export RUN/STAGE --format llama OUT`: a checkpoint any HF tool reads without our code.

labgpt keeps Llama's weight names and shapes, so the export is a new config plus the same tensors;
`transformers.LlamaForCausalLM` then gives the same logits (checked in tests/test_export.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from lab.errors import LabError
from lab.model.labgpt import LabGPTConfig, LabGPTForCausalLM

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


def llama_config(config: LabGPTConfig) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        head_dim=config.head_dim,
        hidden_act="silu",
        max_position_embeddings=config.max_position_embeddings,
        rms_norm_eps=config.rms_norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
        tie_word_embeddings=config.tie_word_embeddings,
        attention_bias=False,
        mlp_bias=False,
        pad_token_id=config.pad_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
    )


def to_llama(model: LabGPTForCausalLM) -> LlamaForCausalLM:
    llama = LlamaForCausalLM(llama_config(model.config)).to(next(model.parameters()).dtype)
    missing, unexpected = llama.load_state_dict(model.state_dict(), strict=False)
    if unexpected or set(missing) - ({"lm_head.weight"} if model.config.tie_word_embeddings else set()):
        raise LabError(f"labgpt and Llama weights differ: missing {missing}, unexpected {unexpected}")
    llama.tie_weights()
    return llama.eval()


def export(stage_dir: Path, out: Path, fmt: str = "llama") -> Path:
    if fmt != "llama":
        raise LabError(f"unknown export format '{fmt}'; valid: llama")
    stage_dir, out = Path(stage_dir), Path(out)
    if not (stage_dir / "config.json").exists():
        raise LabError(f"{stage_dir} holds no model (no config.json)")
    model = LabGPTForCausalLM.from_pretrained(stage_dir, dtype=torch.float32)
    if not isinstance(model, LabGPTForCausalLM):
        raise LabError(f"{stage_dir} is not a labgpt checkpoint")
    to_llama(model).save_pretrained(out)
    for name in TOKENIZER_FILES:
        if (stage_dir / name).exists():
            shutil.copy(stage_dir / name, out / name)
    return out
