"""The tool loop: generate, run the tool a row calls, force its result in, generate again.

A row that ends on a call (`<|tool_call|>`, the tool's name, a newline, its argument, `<|/tool_call|>`) has
the tool run and its output forced in as a tool turn (lab/model/chat_format.py, the same tokens SFT trains
on), then generation goes on; rows that end otherwise are answers. Used by `lab chat` (lab/chat_session.py)
and the eval harness (evals/harness.py).

Bad calls are ordinary events in a rollout, so none of them ends a row or raises: a malformed call, a tool's
own error (a malformed argument, a lookup of an empty name) and a result too long for the context each reach
the model as a one-line `error: ...` tool result, and generation goes on. A row stops on "context" only when
the context cannot hold even that line and another round.

Use: `generate_with_tools(lambda prompts, p: engine.generate(model, prompts, p), tokenizer, prompts, params,
run_tool, max_calls=3)` -> one `Answer` (answer text, transcript, the `ToolCall`s, why it stopped) per prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.model.chat_format import TOOL_CALL, TOOL_CALL_END, tool_turn
from lab.model.engine import SamplingParams
from lab.model.tokenizer import decode_ids, encode_text


@dataclass
class ToolCall:
    name: str
    argument: str
    output: str  # what the model read as the tool's result
    ok: bool


@dataclass
class Answer:
    answer: str  # the text after the last tool result: what a grader reads
    transcript: str  # everything generated, tool calls and forced tool turns included
    calls: list[ToolCall]
    stopped: str  # one of STOPPED's keys
    tokens: list[int]
    # the generated conversation as chat messages (an assistant turn ending in each call, the call's tool turn,
    # the last assistant turn): what a chat keeps as history, rendering back to what the model saw
    turns: list[dict]


STOPPED = {
    "answer": "the model ended its answer (a stop token)",
    "length": "max_new_tokens ran out in a round",
    "call_limit": "the model called a tool once more after max_calls calls; that call was not run",
    "context": "the context cannot hold the prompt and max_new_tokens, or, after a call, even the one-line tool "
               "error and another round",
}
MALFORMED_CALL = "error: malformed tool call; write <|tool_call|>NAME\\nARGUMENT<|/tool_call|>"
TOO_LONG = "error: the tool result was too long for the context ({tokens} tokens); ask for less"


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
    tool's output, and so does a one-line error in place of a result the context cannot hold; a call beyond
    `max_calls` ends the answer. With `context_length`, a row is never given more than its context holds
    (the engine refuses that): it stops on "context" instead. Forced tokens come from
    lab/model/chat_format.py, the same renderer SFT trains on."""
    call_id, end_id = tokenizer.convert_tokens_to_ids(TOOL_CALL), tokenizer.convert_tokens_to_ids(TOOL_CALL_END)
    stops = tuple(dict.fromkeys([*params.stop_token_ids, end_id]))
    stop_set = set(params.stop_token_ids)
    step_params = SamplingParams(**{**params.__dict__, "stop_token_ids": stops})

    def room_for(context: list[int], forced: list[int]) -> bool:
        return context_length is None or len(context) + len(forced) + params.max_new_tokens <= context_length

    contexts = [list(p) for p in prompts]
    generated: list[list[int]] = [[] for _ in prompts]
    answer_start = [0] * len(prompts)
    calls: list[list[ToolCall]] = [[] for _ in prompts]
    turns: list[list[dict]] = [[] for _ in prompts]
    stopped = ["context" if not room_for(c, []) else "length" for c in contexts]
    active = [r for r in range(len(prompts)) if stopped[r] != "context"]
    while active:
        outputs = generate_fn([contexts[r] for r in active], step_params)
        still = []
        for r, out in zip(active, outputs):
            contexts[r] += out
            generated[r] += out
            turns[r].append({"role": "assistant", "content": decode_ids(tokenizer, [t for t in out if t not in stop_set])})
            if not out or out[-1] != end_id:
                stopped[r] = "answer" if out and out[-1] in stop_set else "length"
                continue
            if len(calls[r]) >= max_calls:
                stopped[r] = "call_limit"
                continue
            call = _run_call(tokenizer, out, call_id, run_tool)
            forced = tool_turn(tokenizer, call.output)
            if not room_for(contexts[r], forced):
                # the model asked for too much (a whole file, a long loop's output): it can ask for less
                too_long = TOO_LONG.format(tokens=len(encode_text(tokenizer, call.output)))
                call = ToolCall(call.name, call.argument, too_long, False)
                forced = tool_turn(tokenizer, call.output)
            calls[r].append(call)
            if not room_for(contexts[r], forced):
                stopped[r] = "context"
                continue
            contexts[r] += forced
            generated[r] += forced
            turns[r].append({"role": "tool", "content": call.output})
            answer_start[r] = len(generated[r])
            still.append(r)
        active = still
    return [
        Answer(answer=decode_ids(tokenizer, [t for t in generated[r][answer_start[r]:] if t not in stop_set]),
               transcript=decode_ids(tokenizer, generated[r]), calls=calls[r], stopped=stopped[r], tokens=generated[r],
               turns=turns[r])
        for r in range(len(prompts))
    ]


def _run_call(tokenizer, out: list[int], call_id: int, run_tool) -> ToolCall:
    """The call a round ended on (its last `<|tool_call|>` to the closing token), run; malformed, a tool error."""
    opened = max((i for i, t in enumerate(out) if t == call_id), default=None)
    parsed = _parse_call(decode_ids(tokenizer, out[opened + 1 : -1])) if opened is not None else None
    if parsed is None:
        return ToolCall("", decode_ids(tokenizer, out[:-1]), MALFORMED_CALL, False)
    result = run_tool(*parsed)
    return ToolCall(parsed[0], parsed[1], result.output, result.ok)
