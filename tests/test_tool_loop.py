"""The engine's tool loop (lab/model/tool_loop.py) on bad calls: a malformed call or argument, a lookup of an
empty name and a result too long for the context each reach the model as one `error:` line and generation goes
on; a row stops on "context" only when not even that line fits. A scripted fake engine plays the model."""

import pytest

from lab.model.chat_format import encode_assistant_content, render, tool_turn
from lab.model.engine import SamplingParams
from lab.model.tokenizer import encode_text, train_tokenizer
from lab.model.tool_loop import STOPPED, TOO_LONG, generate_with_tools
from lab.tools import ToolContext, ToolResult, run_tool
from tasks.world import WorldConfig, build_world

PARAMS = SamplingParams(max_new_tokens=20, stop_token_ids=(4,))  # <|im_end|>
USER = [{"role": "user", "content": "Where was Mira Tolvane born?"}]
WORLD = build_world(WorldConfig(people_per_exposure=2))


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(["Where was Mira Tolvane born? lookup calculator Sorry. error: the tool result"] * 40, 320)


class Script:
    """A fake engine: the model's rounds as text, in order; records every batch of prompts it was given."""

    def __init__(self, tok, rounds):
        self.tok, self.rounds, self.seen = tok, list(rounds), []

    def __call__(self, prompts, params):
        self.seen.append([list(p) for p in prompts])
        text = self.rounds.pop(0)
        end = self.tok.convert_tokens_to_ids("<|im_end|>")
        return [encode_assistant_content(self.tok, text.removesuffix("<END>")) + ([end] if text.endswith("<END>") else [])
                for _ in prompts]


def world_tools(name, argument):
    return run_tool(name, argument, ToolContext(world=WORLD))


@pytest.mark.parametrize("call, error", [
    ("<|tool_call|><|/tool_call|>", "error: malformed tool call"),
    ("<|tool_call|>lookup Mira Tolvane<|/tool_call|>", "error: malformed tool call"),  # no line break after the name
    ("<|tool_call|>calculator\n12*(3+<|/tool_call|>", "error: not a valid arithmetic expression"),
    ("<|tool_call|>calculator\nopen('x')<|/tool_call|>", "error: only arithmetic is allowed"),
    ("<|tool_call|>lookup\n<|/tool_call|>", "error: lookup needs a person's name"),
    ('<|tool_call|>lookup\n" "<|/tool_call|>', "error: lookup needs a person's name"),
    ("<|tool_call|>lookup\nMira\nTolvane<|/tool_call|>", "error: lookup takes one person's name on one line"),
    ("<|tool_call|>lookup\n" + "Mira Tolvane was born somewhere, " * 20 + "<|/tool_call|>", "error: a name is at most"),
    ("<|tool_call|>weather\nParis<|/tool_call|>", "error: unknown tool 'weather'"),
])
def test_a_bad_call_is_one_error_line_in_the_conversation_and_generation_goes_on(tok, call, error):
    prompt, _ = render(tok, USER, add_generation_prompt=True)
    script = Script(tok, [call, "Sorry.<END>"])
    [answer] = generate_with_tools(script, tok, [prompt], PARAMS, world_tools, context_length=512)
    [made] = answer.calls
    assert made.output.startswith(error) and "\n" not in made.output and not made.ok
    assert (answer.stopped, answer.answer) == ("answer", "Sorry.")
    # the second round reads exactly the conversation with the error as the tool's turn
    expected, _ = render(tok, USER + [{"role": "assistant", "content": call}, {"role": "tool", "content": made.output}],
                         add_generation_prompt=True)
    assert script.seen[1][0] == expected


def long_result(name, argument):
    return ToolResult(True, "Mira Tolvane was born in Krakow. " * 40)


def room(tok, call_round: str, output: str) -> int:
    """The context a row that starts from [1] needs to take `output` after `call_round` and generate again."""
    return 1 + len(encode_assistant_content(tok, call_round)) + len(tool_turn(tok, output)) + PARAMS.max_new_tokens


CALL = "<|tool_call|>lookup\nMira Tolvane<|/tool_call|>"


def test_a_result_too_long_for_the_context_becomes_one_error_line_and_generation_goes_on(tok):
    tokens = len(encode_text(tok, long_result("lookup", "").output))
    error = TOO_LONG.format(tokens=tokens)
    assert error == f"error: the tool result was too long for the context ({tokens} tokens); ask for less"
    context = room(tok, CALL, error)  # the error just fits; the result needs far more
    script = Script(tok, [CALL, "Sorry.<END>"])
    [answer] = generate_with_tools(script, tok, [[1]], PARAMS, long_result, context_length=context)
    assert [(c.name, c.output, c.ok) for c in answer.calls] == [("lookup", error, False)]
    assert (answer.stopped, answer.answer) == ("answer", "Sorry.")
    assert len(script.seen[1][0]) + PARAMS.max_new_tokens == context  # what the engine was given fits
    assert answer.turns == [{"role": "assistant", "content": CALL}, {"role": "tool", "content": error},
                            {"role": "assistant", "content": "Sorry."}]


def test_a_result_that_fits_exactly_is_forced_as_it_is(tok):
    output = long_result("lookup", "").output
    script = Script(tok, [CALL, "Krakow.<END>"])
    [answer] = generate_with_tools(script, tok, [[1]], PARAMS, long_result, context_length=room(tok, CALL, output))
    assert answer.calls[0].output == output and answer.calls[0].ok and answer.stopped == "answer"


def test_the_row_stops_on_context_only_when_not_even_the_error_fits(tok):
    error = TOO_LONG.format(tokens=len(encode_text(tok, long_result("lookup", "").output)))
    script = Script(tok, [CALL, "never asked<END>"])
    [answer] = generate_with_tools(script, tok, [[1]], PARAMS, long_result, context_length=room(tok, CALL, error) - 1)
    assert answer.stopped == "context" and len(script.seen) == 1
    assert answer.calls[0].output == error and answer.turns == [{"role": "assistant", "content": CALL}]


def test_a_prompt_without_room_to_answer_stops_on_context_before_the_engine_sees_it(tok):
    script = Script(tok, ["Fits.<END>"])
    long, short = list(range(1, 30)), [1]
    a, b = generate_with_tools(script, tok, [long, short], PARAMS, long_result, context_length=40)
    assert (a.stopped, a.answer, a.tokens, a.turns) == ("context", "", [], [])
    assert (b.stopped, b.answer) == ("answer", "Fits.") and script.seen == [[short]]


def test_every_stop_reason_is_documented():
    assert set(STOPPED) == {"answer", "length", "call_limit", "context"}
