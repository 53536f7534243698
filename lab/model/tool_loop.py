"""The tool loop: generate, run the tool a row calls, force its result in, generate again.

A row that ends on a call (`<|tool_call|>`, the tool's name, a newline, its argument, `<|/tool_call|>`) has
the tool run and its output forced in as a tool turn (lab/model/chat_format.py, the same tokens SFT trains
on), then generation goes on; rows that end otherwise are answers. Used by `lab chat` (lab/chat_session.py)
and the eval harness (evals/harness.py).

Use: `generate_with_tools(lambda prompts, p: engine.generate(model, prompts, p), tokenizer, prompts, params,
run_tool, max_calls=3)` -> one `Answer` (answer text, transcript, the `ToolCall`s, why it stopped) per prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.model.chat_format import TOOL_CALL, TOOL_CALL_END, tool_turn
from lab.model.engine import SamplingParams
from lab.model.tokenizer import decode_ids


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
