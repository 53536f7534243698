"""Load a model + tokenizer from a run stage (`runs/tiny/base`) or any HF causal-LM directory."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

import lab.model.labgpt  # noqa: F401  registers labgpt with the Auto classes
from lab.errors import LabError
from lab.stage_files import check_whole


def load_model_and_tokenizer(path: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32):
    path = Path(path)
    if not path.is_dir():
        raise LabError(f"{path} does not exist or is not a directory")
    if (path / "COMPLETE").exists():  # a run's stage: its files must be what it wrote
        check_whole(path)
    if not (path / "config.json").exists():
        hint = " (the stage is not complete yet?)" if (path / "checkpoint").exists() else ""
        raise LabError(f"{path} holds no model: no config.json{hint}")
    try:
        config = AutoConfig.from_pretrained(path)
    except (ValueError, OSError) as e:
        raise LabError(f"{path}: cannot read the model config ({str(e).splitlines()[0]})") from None
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except ValueError as e:
        raise LabError(f"{path} is not a causal language model ({config.model_type}): {str(e).splitlines()[0]}") from None
    except (OSError, SafetensorError) as e:  # a truncated or half-copied weights file in a folder of no run
        raise LabError(f"{path}: cannot read the model's weights ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (ValueError, OSError) as e:
        raise LabError(f"{path} has no usable tokenizer ({str(e).splitlines()[0]})") from None
    return model.to(device).eval(), tokenizer
