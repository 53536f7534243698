"""experiments/chat (lab/chat_transcript.py): scripted questions through `lab chat`'s session, graded. A scripted
assistant that does everything right passes every check, one that states a fact to everything fails them, and
the verdicts read the tool calls the session really ran."""

import json
import shutil

import pytest
from tiny_policy import untrained_policy

import lab.chat_session as chat_session
from lab.chat_transcript import _items, chat_sections, chat_transcript, passed
from lab.experiments.settings import ChatTranscriptSettings
from lab.model.chat_format import TOOL_CALL, TOOL_CALL_END
from lab.model.tokenizer import decode_ids, encode_text
from lab.model.tool_loop import ToolCall
from lab.presets import get_preset, stage_context
from lab.runs import Run
from tasks.chat import TOOLS_LINE

SMALL_WORLD = ["data.world.people_per_exposure=4", "data.world.exposures=0,1,16"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run whose sft-idk is an untrained tiny labgpt (its answers are scripted below)."""
    run = Run.create_or_open(tmp_path_factory.mktemp("chat") / "r", get_preset("tiny", SMALL_WORLD))
    untrained_policy(run, ["Who are you? I am Lab Assistant. What is 12 * 7? Answer: 84."] * 40)
    return run


def scripted(run, monkeypatch, respond):
    """Replace the engine with `respond(question, tool_output, tools_on) -> text` ("CALL name argument" is a call)."""
    preset = get_preset("tiny", SMALL_WORLD)
    tokenizer = None

    def generate(model, prompts, params, pad_token_id):
        nonlocal tokenizer
        from lab.model.tokenizer import load_tokenizer

        tokenizer = tokenizer or load_tokenizer(run.stage_dir("sft-idk"))
        text = decode_ids(tokenizer, prompts[0])
        question = text.rsplit("user\n", 1)[-1].split("<|im_end|>")[0].strip()
        tool_output = text.rsplit("tool\n", 1)[-1].split("<|im_end|>")[0].strip() if text.count("tool\n") else None
        reply = respond(question, tool_output, TOOLS_LINE in text)
        if reply.startswith("CALL "):
            name, argument = reply.removeprefix("CALL ").split(" ", 1)
            ids = [tokenizer.convert_tokens_to_ids(TOOL_CALL)] + encode_text(tokenizer, f"{name}\n{argument}")
            return [ids + [tokenizer.convert_tokens_to_ids(TOOL_CALL_END)]]
        return [encode_text(tokenizer, reply) + [tokenizer.convert_tokens_to_ids("<|im_end|>")]]

    monkeypatch.setattr(chat_session, "generate", generate)
    return stage_context(run, preset).at("experiments/chat", "sft-idk")


def test_a_right_assistant_passes_every_check_and_a_confident_one_fails_them(run, monkeypatch):
    context = scripted(run, monkeypatch, lambda q, out, tools: "")
    items = {(i["question"], i["tools"]): i for i in _items(context.world, context.sft.identity, 3, context.seed)}

    def right(question, tool_output, tools_on):
        item = items[question, tools_on]
        if item["check"] == "spelling_with_tool" and tool_output is None:
            return f"CALL python print({json.dumps(item['gold'])})"
        if item["check"] == "never_seen" and tool_output is None:
            return f"CALL lookup {item['name']}"
        if item["check"] == "never_seen":
            return "I don't know who that is."
        if item["check"] == "identity":
            return f"I am {item['gold']}."
        return f"Answer: {item['gold']}"

    settings = ChatTranscriptSettings(per_check=3, max_new_tokens=16)
    results = chat_transcript(settings, scripted(run, monkeypatch, right))
    assert set(results["checks"]) == {"known_in_other_words", "never_seen", "spelling_with_tool",
                                      "spelling_without_tool", "calculator", "identity"}
    assert all(v["value"] == 1.0 and v["n"] == 3 for v in results["checks"].values()), results
    rows = [json.loads(line) for line in (run.stage_dir("experiments/chat") / "transcript.jsonl").read_text().splitlines()]
    assert any(c["name"] == "lookup" and c["output"].startswith("error: no article") for r in rows for c in r["calls"])
    [(title, blocks)] = chat_sections(run, "experiments/chat")
    assert "lab chat" in title and len(blocks[1][1][1]) == 6

    shutil.rmtree(run.stage_dir("experiments/chat"))
    confident = chat_transcript(settings, scripted(run, monkeypatch, lambda q, out, tools: "Was born in Lisbon."))
    assert confident["checks"]["never_seen"]["value"] == 0.0 and confident["checks"]["calculator"]["value"] == 0.0
    assert confident["checks"]["spelling_with_tool"]["value"] == 0.0


def test_a_lookup_that_miscopies_the_name_fails_even_when_the_answer_refuses():
    item = {"check": "never_seen", "name": "Mael Stavney", "gold": ""}
    good = ToolCall("lookup", "Mael Stavney", "error: no article about 'Mael Stavney'", False)
    bad = ToolCall("lookup", "Pael Stavney", "error: no article about 'Pael Stavney'", False)
    assert passed(item, "I don't know who that is.", [good])
    assert passed(item, "I don't know who that is.", [])
    assert not passed(item, "I don't know who that is.", [bad])
    assert not passed(item, "Was born in Oslo.", [good])
    spelled = {"check": "spelling_with_tool", "gold": "nedrag"}
    assert not passed(spelled, "Answer: nedrag", [])  # right, but the tool was on and never called
    assert passed(spelled, "Answer: nedrag", [ToolCall("python", "print('garden'[::-1])", "nedrag\n", True)])
