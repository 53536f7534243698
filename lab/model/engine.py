"""Batched generation with our own preallocated KV cache.

HF `generate` is general; this loop is not: one prefill over the left-padded batch, then one token
per step with a cache written in place, logits only for the last position, and rows that finished
dropped from the batch. Works on any causal LM whose attention calls `cache.update(k, v, layer_idx)`
(labgpt, and transformers' Llama).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lab.model.labgpt import CACHE_FIELD, positions_from_mask


@dataclass
class SamplingParams:
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0 = greedy
    top_k: int = 0  # 0 = off
    top_p: float = 1.0
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


def sample_next(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> torch.Tensor:
    if params.temperature <= 0:
        return logits.argmax(-1)
    logits = logits.float() / params.temperature
    if params.top_k > 0:
        kth = torch.topk(logits, min(params.top_k, logits.shape[-1])).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_logits, order = logits.sort(-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        # drop a token once the mass before it already reaches top_p (the top token always stays)
        drop = (cumulative - sorted_logits.softmax(-1)) >= params.top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
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
    stop = torch.tensor(list(params.stop_token_ids) or [-1], device=device)

    # Prefill mask: causal and key not padding; a padding query may see itself so no row is all-masked
    # (an all-masked softmax row is NaN, and NaN values leak into every later step through the cache).
    causal = torch.ones(prompt_len, prompt_len, dtype=torch.bool, device=device).tril()
    eye = torch.eye(prompt_len, dtype=torch.bool, device=device)
    mask = (causal & key_valid[:, None, None, :prompt_len]) | eye
    logits = model(
        input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1,
        **{CACHE_FIELD: cache},
    ).logits[:, -1]
    cache.advance(prompt_len)

    outputs: list[list[int]] = [[] for _ in range(batch)]
    alive = torch.arange(batch, device=device)  # original row of each row still generating
    last_pos = positions[:, -1]
    for step in range(params.max_new_tokens):
        token = sample_next(logits, params, generator)
        for row, tok in zip(alive.tolist(), token.tolist()):
            outputs[row].append(tok)
        done = torch.isin(token, stop)
        if step == params.max_new_tokens - 1:
            break
        if done.any():
            keep = (~done).nonzero().squeeze(-1)
            if keep.numel() == 0:
                break
            alive, token, last_pos, key_valid = alive[keep], token[keep], last_pos[keep], key_valid[keep]
            cache.keep_rows(keep)
        key_valid[:, cache.length] = True
        last_pos = last_pos + 1
        step_mask = key_valid[:, None, None, : cache.length + 1]
        logits = model(
            input_ids=token[:, None],
            attention_mask=step_mask,
            position_ids=last_pos[:, None],
            **{CACHE_FIELD: cache},
            use_cache=True,
        ).logits[:, -1]
        cache.advance(1)
    return outputs


def generate_text(model, tokenizer, texts: list[str], params: SamplingParams, add_bos: bool = True) -> list[str]:
    """Plain-text convenience wrapper: encode, generate, decode (stop token stripped)."""
    from lab.model.tokenizer import decode_ids, encode_text

    bos = [tokenizer.bos_token_id] if add_bos and tokenizer.bos_token_id is not None else []
    prompts = [bos + encode_text(tokenizer, t) for t in texts]
    outs = generate(model, prompts, params, pad_token_id=tokenizer.pad_token_id or 0)
    stops = set(params.stop_token_ids)
    return [decode_ids(tokenizer, [t for t in o if t not in stops]) for o in outs]


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
