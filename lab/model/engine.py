"""Batched generation with our own preallocated KV cache, and labgpt's `generate` when TRL samples.

HF `generate` is general; this loop is not: one prefill over the left-padded batch, then one token
per step with a cache written in place, logits only for the last position, and rows that finished
dropped from the batch. For labgpt each step is lab/model/decode_step.py (fused projections, fewer
ops); any other causal LM whose attention calls `cache.update(k, v, layer_idx)` (transformers' Llama)
runs its own forward. Sampling is transformers' own logits warpers (temperature, top-k, top-p, min-p,
in HF's order) on fp32 logits, then `torch.multinomial`: the same distribution HF generate samples.

`generate_like_hf` is what `LabGPTForCausalLM.generate` calls first: it runs HF's call (input ids,
attention mask, a GenerationConfig, as TRL's GRPO/RLOO rollouts make it) on the engine when every
option set is one the engine implements, and returns None otherwise, so the model falls back to HF
generate: nothing is silently ignored.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from lab.model.decode_step import DecodeStep
from lab.model.labgpt import CACHE_FIELD, positions_from_mask


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

    @property
    def is_sliding(self):
        return [False] * len(self.keys)


def _kv_shape(config):
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    return config.num_hidden_layers, kv_heads, head_dim


def _warpers(params: SamplingParams):
    """transformers' logits warpers for `params`, in the order HF generate applies them."""
    from transformers import (
        LogitsProcessorList,
        MinPLogitsWarper,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

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
    from lab.model.tokenizer import decode_ids, encode_text

    bos = [tokenizer.bos_token_id] if add_bos and tokenizer.bos_token_id is not None else []
    prompts = [bos + encode_text(tokenizer, t) for t in texts]
    outs = generate(model, prompts, params, pad_token_id=tokenizer.pad_token_id or 0)
    stops = set(params.stop_token_ids)
    return [decode_ids(tokenizer, [t for t in o if t not in stops]) for o in outs]


# ---------------------------------------------------------------- HF generate's call, on the engine

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
    from transformers import GenerationConfig

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


# ---------------------------------------------------------------- the tool loop


@dataclass
class ToolCall:
    name: str
    argument: str
    output: str
    ok: bool


@dataclass
class Answer:
    answer: str  # the text after the last tool result: what a grader reads
    transcript: str  # everything generated, tool calls and forced tool turns included
    calls: list[ToolCall]
    stopped: str  # "answer" | "length" | "call_limit" | "context"
    tokens: list[int]


def _parse_call(text: str) -> tuple[str, str] | None:
    name, sep, argument = text.partition("\n")
    name = name.strip()
    if not sep or not name or not name.replace("_", "").isalnum():
        return None
    return name, argument


def generate_with_tools(generate_fn, tokenizer, prompts: list[list[int]], params: SamplingParams, run_tool,
                        max_calls: int = 3, context_length: int | None = None) -> list[Answer]:
    """Generate, and whenever a row ends on `<|/tool_call|>`, run the tool and force its result in.

    `generate_fn(prompts, params) -> new tokens per prompt` is the engine (or a scripted fake in tests);
    `run_tool(name, argument) -> ToolResult`. Malformed calls and tool errors go back to the model as the
    tool's output; a call beyond `max_calls` ends the answer. Forced tokens come from lab/model/chat_format.py,
    the same renderer SFT trains on."""
    from lab.model.chat_format import TOOL_CALL, TOOL_CALL_END, tool_turn
    from lab.model.tokenizer import decode_ids

    call_id, end_id = tokenizer.convert_tokens_to_ids(TOOL_CALL), tokenizer.convert_tokens_to_ids(TOOL_CALL_END)
    stops = tuple(dict.fromkeys([*params.stop_token_ids, end_id]))
    step_params = SamplingParams(**{**params.__dict__, "stop_token_ids": stops})
    contexts = [list(p) for p in prompts]
    generated: list[list[int]] = [[] for _ in prompts]
    answer_start = [0] * len(prompts)
    calls: list[list[ToolCall]] = [[] for _ in prompts]
    stopped = ["length"] * len(prompts)
    active = list(range(len(prompts)))
    while active:
        outputs = generate_fn([contexts[r] for r in active], step_params)
        still = []
        for r, out in zip(active, outputs):
            contexts[r] += out
            generated[r] += out
            if not out or out[-1] != end_id:
                stopped[r] = "answer" if out and out[-1] in params.stop_token_ids else "length"
                continue
            if len(calls[r]) >= max_calls:
                stopped[r] = "call_limit"
                continue
            opened = max((i for i, t in enumerate(out) if t == call_id), default=None)
            parsed = _parse_call(decode_ids(tokenizer, out[opened + 1 : -1])) if opened is not None else None
            if parsed is None:
                call = ToolCall("", decode_ids(tokenizer, out[:-1]), "error: malformed tool call; write "
                                "<|tool_call|>NAME\\nARGUMENT<|/tool_call|>", False)
            else:
                result = run_tool(*parsed)
                call = ToolCall(parsed[0], parsed[1], result.output, result.ok)
            calls[r].append(call)
            forced = tool_turn(tokenizer, call.output)
            if context_length is not None and len(contexts[r]) + len(forced) + params.max_new_tokens > context_length:
                stopped[r] = "context"
                continue
            contexts[r] += forced
            generated[r] += forced
            answer_start[r] = len(generated[r])
            still.append(r)
        active = still
    stop_set = set(params.stop_token_ids)
    return [
        Answer(answer=decode_ids(tokenizer, [t for t in generated[r][answer_start[r]:] if t not in stop_set]),
               transcript=decode_ids(tokenizer, generated[r]), calls=calls[r], stopped=stopped[r], tokens=generated[r])
        for r in range(len(prompts))
    ]
