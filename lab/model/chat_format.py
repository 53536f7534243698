"""The one renderer of conversations into token ids, shared by SFT and the engine so they cannot drift.

A turn is `<|im_start|>role\\ncontent<|im_end|>\\n`. A tool call sits at the end of an assistant turn
as `<|tool_call|>name\\nargument<|/tool_call|>`; the engine then closes the turn, appends the tool's
turn and opens a new assistant turn. Those closing and opening tokens are forced, never sampled, so
they are never trained on: the loss mask is 1 exactly on what the model itself must produce (the
assistant's content, and the `<|im_end|>` that ends an answer).
Text is encoded with special-token matching off: a user typing "<|im_start|>" gets characters.
"""

from __future__ import annotations

from lab.errors import LabError
from lab.model.tokenizer import ROLES, decode_ids, encode_text

TOOL_CALL, TOOL_CALL_END = "<|tool_call|>", "<|/tool_call|>"


def _ids(tokenizer, token: str) -> int:
    return tokenizer.convert_tokens_to_ids(token)


def encode_assistant_content(tokenizer, content: str) -> list[int]:
    """Assistant text with tool-call markers as their special ids and everything else as plain text."""
    ids: list[int] = []
    rest = content
    while TOOL_CALL in rest:
        before, _, after = rest.partition(TOOL_CALL)
        call, sep, rest = after.partition(TOOL_CALL_END)
        if not sep:
            raise LabError(f"an assistant message opens {TOOL_CALL} without closing it: {content[:80]!r}")
        ids += encode_text(tokenizer, before) + [_ids(tokenizer, TOOL_CALL)]
        ids += encode_text(tokenizer, call) + [_ids(tokenizer, TOOL_CALL_END)]
    return ids + encode_text(tokenizer, rest)


def turn_header(tokenizer, role: str) -> list[int]:
    return [_ids(tokenizer, "<|im_start|>")] + encode_text(tokenizer, f"{role}\n")


def turn_footer(tokenizer) -> list[int]:
    return [_ids(tokenizer, "<|im_end|>")] + encode_text(tokenizer, "\n")


def answer_stops(tokenizer) -> tuple[int, int]:
    """The ids that end an assistant's answer: its turn's <|im_end|>, or an <|eos|> it writes instead."""
    return _ids(tokenizer, "<|im_end|>"), tokenizer.eos_token_id


def tool_turn(tokenizer, output: str) -> list[int]:
    """What the engine forces after a tool call: close the assistant turn, the tool's turn, reopen the assistant."""
    return (turn_footer(tokenizer) + turn_header(tokenizer, "tool") + encode_text(tokenizer, output)
            + turn_footer(tokenizer) + turn_header(tokenizer, "assistant"))


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> tuple[list[int], list[int]]:
    """(input_ids, loss_mask) for a conversation."""
    ids, mask = [tokenizer.bos_token_id], [0]
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise LabError(f"message {i} has role {role!r}; roles are {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise LabError(f"message {i} ({role}) has no text content")
        header = turn_header(tokenizer, role)
        ids += header
        mask += [0] * len(header)
        if role == "assistant":
            body = encode_assistant_content(tokenizer, content)
            ids += body
            mask += [1] * len(body)
            footer = turn_footer(tokenizer)
            ids += footer
            # The model ends an answer itself (<|im_end|> trained); after a tool call the engine ends the turn.
            ends_in_call = content.rstrip().endswith(TOOL_CALL_END)
            mask += [0 if ends_in_call else 1] + [0] * (len(footer) - 1)
        else:
            body = encode_text(tokenizer, content)
            ids += body + turn_footer(tokenizer)
            mask += [0] * (len(body) + len(turn_footer(tokenizer)))
    if add_generation_prompt:
        header = turn_header(tokenizer, "assistant")
        ids += header
        mask += [0] * len(header)
    return ids, mask


def chat_prompts(tokenizer, questions: list[str]) -> list[tuple[str, list[int]]]:
    """(text, ids) of each question as a user turn, ready for the assistant's answer: the ids the engine
    generates from, and the text TRL is given (it must tokenize back to exactly those ids)."""
    out = []
    for q in questions:
        ids, _ = render(tokenizer, [{"role": "user", "content": q}], add_generation_prompt=True)
        out.append((decode_ids(tokenizer, ids), ids))
    return out
