"""HF `generate`'s call, run on the lab's engine: what labgpt's `generate` does once `use_engine(model)` is called.

TRL's GRPO/RLOO rollouts call `model.generate(input_ids, attention_mask, generation_config=...)`. `generate_like_hf`
runs that call on lab/model/engine.py when every option set is one the engine implements, and returns None
otherwise, so the model falls back to HF generate: nothing is silently ignored. The model cannot import this
module (the engine builds on the model), so the link is a hook on the instance: `use_engine(model)` sets
`model.engine_generate = generate_like_hf`, and `LabGPTForCausalLM.generate` calls it first.

Use: `model = use_engine(LabGPTForCausalLM.from_pretrained(stage))` before handing the model to TRL;
`hf_call_params(model, input_ids, attention_mask, generation_config)` says what the engine would run, or None.
"""

from __future__ import annotations

import functools

import torch
from transformers import GenerationConfig

from lab.model.engine import SamplingParams, generate

# What `generate_like_hf` does with each GenerationConfig field once resolved as HF resolves it (the call's
# kwargs, then its generation_config, then the model's, then HF's documented defaults, below): implemented,
# accepted at any value (they act only under beam search or compilation, which the engine never does),
# or accepted at the values that change nothing. Any other field set, or any other argument, goes to HF.
_IMPLEMENTED = {"max_new_tokens", "max_length", "do_sample", "temperature", "top_k", "top_p", "min_p",
                "pad_token_id", "bos_token_id", "eos_token_id"}
_ANY_VALUE = {"length_penalty", "early_stopping", "disable_compile", "compile_config", "transformers_version",
              "_from_model_config", "low_memory"}
_INERT = {"num_beams": (1,), "num_return_sequences": (1,), "repetition_penalty": (1.0,), "min_new_tokens": (0,),
          "min_length": (0,), "typical_p": (1.0,), "no_repeat_ngram_size": (0,), "encoder_no_repeat_ngram_size": (0,),
          "output_scores": (False,), "output_logits": (False,), "output_attentions": (False,),
          "output_hidden_states": (False,), "return_dict_in_generate": (False,), "remove_invalid_values": (False,),
          "use_cache": (True,), "renormalize_logits": (False, True)}  # the engine samples a normalised distribution
# HF's defaults where neither the call nor the model sets a field (GenerationConfig's documented defaults)
_HF_DEFAULTS = {"do_sample": False, "temperature": 1.0, "top_k": 50, "top_p": 1.0, "max_length": 20}


@functools.lru_cache(maxsize=1)
def _generation_fields() -> frozenset[str]:
    return frozenset(GenerationConfig().to_dict())


def _resolved_config(model, generation_config, kwargs: dict) -> dict:
    layers = [kwargs, generation_config.to_dict() if generation_config is not None else {}]
    if getattr(model, "generation_config", None) is not None:
        layers.append(model.generation_config.to_dict())
    layers.append(_HF_DEFAULTS)
    fields = _generation_fields() | {key for layer in layers for key in layer}
    return {key: next((layer[key] for layer in layers if layer.get(key) is not None), None) for key in fields}


def _engine_call(model, input_ids, attention_mask, generation_config, kwargs) -> tuple[SamplingParams, int] | None:
    """(the engine's SamplingParams, the pad id) for an HF `generate` call, or None where the engine does not
    implement it."""
    if any(key not in _generation_fields() for key in kwargs):  # streamer, logits_processor, inputs_embeds...
        return None
    config = _resolved_config(model, generation_config, kwargs)
    for key, value in config.items():
        if value is None or key in _IMPLEMENTED or key in _ANY_VALUE or value in _INERT.get(key, ()):
            continue
        return None
    if input_ids is None or input_ids.dim() != 2 or attention_mask is None or attention_mask.shape != input_ids.shape:
        return None
    mask = attention_mask.bool()
    if not bool(mask[:, -1].all()) or not bool((mask[:, 1:] >= mask[:, :-1]).all()):
        return None  # left padding only, every row with a token
    new_tokens = config["max_new_tokens"] or config["max_length"] - input_ids.shape[1]
    sampling = bool(config["do_sample"])
    if new_tokens <= 0 or (sampling and config["temperature"] <= 0):
        return None  # HF's own error message
    eos = config["eos_token_id"]
    stops = tuple(int(t) for t in (eos if isinstance(eos, (list, tuple)) else () if eos is None else (eos,)))
    params = SamplingParams(max_new_tokens=int(new_tokens), temperature=float(config["temperature"]) if sampling else 0.0,
                            top_k=int(config["top_k"]) if sampling else 0, top_p=float(config["top_p"]) if sampling else 1.0,
                            min_p=config["min_p"] if sampling else None, stop_token_ids=stops)
    pad = config["pad_token_id"]  # HF pads finished rows with it, else with the first eos
    return params, int(pad if pad is not None else (stops[0] if stops else 0))


def hf_call_params(model, input_ids, attention_mask, generation_config=None, **kwargs) -> SamplingParams | None:
    """The engine's SamplingParams for an HF `generate` call, or None where the engine does not implement it."""
    call = _engine_call(model, input_ids, attention_mask, generation_config, kwargs)
    return call[0] if call else None


def generate_like_hf(model, inputs=None, generation_config=None, **kwargs) -> torch.Tensor | None:
    """HF `generate`'s result (prompt ids, then new ids, finished rows padded) computed by the engine, or None
    when the call asks for something the engine does not implement. Sampling draws from torch's global RNG,
    as HF's does, so `transformers.set_seed` (what TRL seeds with) governs it."""
    input_ids = kwargs.pop("input_ids", inputs)
    attention_mask = kwargs.pop("attention_mask", None)
    call = _engine_call(model, input_ids, attention_mask, generation_config, kwargs)
    if call is None:
        return None
    params, pad = call
    rows = input_ids.tolist()
    prompts = [row[len(row) - n:] for row, n in zip(rows, attention_mask.sum(-1).tolist())]
    outputs = generate(model, prompts, params, pad_token_id=pad)
    new = torch.full((len(outputs), max(len(out) for out in outputs)), pad, dtype=input_ids.dtype)
    for i, out in enumerate(outputs):
        new[i, : len(out)] = torch.tensor(out, dtype=input_ids.dtype)
    return torch.cat((input_ids, new.to(input_ids.device)), dim=1)


def use_engine(model):
    """`model` with its `generate` run by the engine where the engine implements the call; returns the model.

    The hook is an instance attribute holding a plain function, so it is not bound: labgpt's `generate` passes
    the model itself."""
    model.engine_generate = generate_like_hf
    return model
