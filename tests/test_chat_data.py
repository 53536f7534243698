"""SFT chat data: deterministic, clean of held-out people, exact tool demos, renderable, identity from config."""

import random
import re
import subprocess
import sys
from collections import Counter

import pytest

from lab.errors import LabError
from lab.model.tokenizer import train_tokenizer
from tasks.chat import (
    CONTEXT_STYLES,
    LOOKUP_PREFACE,
    REFUSALS,
    TOOLS_LINE,
    ChatMixture,
    answer_sentence,
    build_mixture,
    contamination_texts,
    is_refusal,
    qa_conversation,
    tool_call,
    tool_calls,
    with_tools,
)
from tasks.identity import IDENTITY_PROBES, Identity, identity_conversations, probe_targets, system_message, training_questions
from tasks.world import TRAINING_QUESTION_TEMPLATES, WorldConfig, build_world

SMALL = ChatMixture(qa=200, math=40, spelling=40, tool_use=60, identity=60, context=60)


@pytest.fixture(scope="module")
def world():
    return build_world(WorldConfig(people_per_exposure=10, exposures=(0, 1, 4, 16)))


@pytest.fixture(scope="module")
def records(world):
    return build_mixture(world, SMALL, Identity())


def assistant_texts(record):
    return [m["content"] for m in record["messages"] if m["role"] == "assistant"]


def test_deterministic_and_seeded(world, records):
    assert build_mixture(world, SMALL, Identity()) == records
    other = build_mixture(world, ChatMixture(**{**SMALL.__dict__, "seed": 1}), Identity())
    assert other != records


def test_counts_respected(records):
    # math and spelling count problems, each asked in both answer forms (and some spelling once more, tools on)
    asked_with_tools = sum(r["meta"].get("form") == "tool" for r in records)
    assert 0 < asked_with_tools < 40
    assert Counter(r["kind"] for r in records) == {"qa": 200, "math": 80, "spelling": 80 + asked_with_tools,
                                                    "tool_use": 60, "identity": 60, "context": 60}
    assert Counter(r["meta"]["tool"] for r in records if r["kind"] == "tool_use") == \
        {"calculator": 20, "python": 20, "lookup": 20}
    only_math = build_mixture(build_world(WorldConfig(people_per_exposure=2)), ChatMixture(
        qa=0, math=5, spelling=0, tool_use=0, identity=0, context=0), Identity())
    assert [r["kind"] for r in only_math] == ["math"] * 10


def test_math_and_spelling_problems_come_in_both_forms_equally(records):
    """Tokens to think compares worked and direct answers of one model: both forms must be trained on the
    same problems in equal number, told apart by the instruction alone."""
    from tasks.answer_forms import DIRECT_INSTRUCTION

    for kind in ("math", "spelling"):
        by_problem = {}
        for r in (r for r in records if r["kind"] == kind and r["meta"]["form"] != "tool"):
            by_problem.setdefault(r["meta"]["id"], {})[r["meta"]["form"]] = r["messages"]
        assert by_problem and all(set(forms) == {"worked", "direct"} for forms in by_problem.values())
        for forms in by_problem.values():
            worked, direct = forms["worked"], forms["direct"]
            asked = {form: next(m["content"] for m in forms[form] if m["role"] == "user") for form in forms}
            assert asked["direct"] == asked["worked"] + DIRECT_INSTRUCTION
            assert not asked["worked"].endswith(DIRECT_INSTRUCTION)
            answer_line = worked[-1]["content"].splitlines()[-1]
            assert direct[-1]["content"] == answer_line and answer_line.startswith("Answer: ")
            assert len(worked[-1]["content"].splitlines()) > 1  # the worked form has steps before the answer


def test_letter_questions_go_to_the_python_tool_when_the_tools_are_on_and_only_then(records):
    from tasks.chat import TOOLS_LINE, tool_calls

    spelling = [r for r in records if r["kind"] == "spelling"]
    for r in spelling:
        system = next((m["content"] for m in r["messages"] if m["role"] == "system"), "")
        calls = [c for m in r["messages"] if m["role"] == "assistant" for c in tool_calls(m["content"])]
        assert (TOOLS_LINE in system) == r["meta"]["tools"] == (r["meta"]["form"] == "tool") == bool(calls)
        if calls:  # asked plainly, no hint, and the word copied into the code
            [(name, code)] = calls
            question = next(m["content"] for m in r["messages"] if m["role"] == "user")
            assert name == "python" and "python" not in question.lower()
            assert re.search(r'"([a-z]+)"', code).group(1) in question
    python_demos = {r["meta"]["task"] for r in records if r["meta"].get("tool") == "python"}
    assert len(python_demos) > 1  # every spelling task, not letter counts alone


def test_math_records_follow_the_mixture_tasks_and_bands(world):
    mix = ChatMixture(qa=0, math=30, spelling=0, tool_use=0, identity=0, context=0,
                      math_tasks=("arithmetic", "linear_equations"), math_bands=(2,))
    records = build_mixture(world, mix, Identity())
    assert {r["meta"]["task"] for r in records} == {"arithmetic", "linear_equations"}
    assert {r["meta"]["difficulty"] for r in records} == {2}
    with pytest.raises(LabError, match="calculus"):
        build_mixture(world, ChatMixture(math_tasks=("calculus",)), Identity())


def test_system_prompt_share(world):
    always = build_mixture(world, ChatMixture(**{**SMALL.__dict__, "system_prompt_share": 1.0}), Identity())
    never = build_mixture(world, ChatMixture(**{**SMALL.__dict__, "system_prompt_share": 0.0}), Identity())
    assert all(r["messages"][0] == {"role": "system", "content": with_tools(system_message(Identity()), r["meta"]["tools"])}
               for r in always)
    # without the identity's message only conversations with the tools on have one: the tools line alone
    assert all(r["messages"][0] == {"role": "system", "content": TOOLS_LINE} for r in never if r["meta"]["tools"])
    assert not any(m["role"] == "system" for r in never if not r["meta"]["tools"] for m in r["messages"])
    assert all(r["meta"]["tools"] for r in never if r["kind"] == "tool_use")
    assert {r["meta"]["tools"] for r in never if r["kind"] == "math"} == {True, False}  # the tools on, no call


def test_empty_and_bad_mixtures(world):
    empty = ChatMixture(qa=0, math=0, spelling=0, tool_use=0, identity=0, context=0)
    with pytest.raises(LabError, match="the SFT mixture is empty"):
        build_mixture(world, empty, Identity())
    with pytest.raises(LabError, match="qa"):
        build_mixture(world, ChatMixture(qa=-1), Identity())
    with pytest.raises(LabError, match="system_prompt_share"):
        build_mixture(world, ChatMixture(system_prompt_share=1.5), Identity())


def test_only_sft_people_and_no_contamination(world, records):
    texts = contamination_texts(records)
    assert world.contamination_check(texts) == []
    named = set().union(*(world.names_in(t) for t in texts))
    sft = {p.name for p in world.sft_people()}
    assert named and named <= sft
    # Q&A covers every attribute of the SFT people
    qa = [r for r in records if r["kind"] == "qa"]
    assert {r["meta"]["attribute"] for r in qa} == set(world.cfg.attributes)


def test_known_false_refused_known_true_answered(world):
    questions = [q for p in world.sft_people() for q in world.questions(p)]
    known = {q.id: i % 2 == 0 for i, q in enumerate(questions)}
    recs = build_mixture(world, ChatMixture(qa=300, math=0, spelling=0, tool_use=0, identity=0, context=0),
                         Identity(), known=known)
    by_id = {q.id: q for q in questions}
    for r in recs:
        q, reply = by_id[r["meta"]["question_id"]], assistant_texts(r)[-1]
        assert r["meta"]["k"] == q.k and r["meta"]["refused"] == (not known[q.id])
        if known[q.id]:
            assert reply == answer_sentence(q, q.answer) and q.answer in reply and not is_refusal(reply)
        elif r["meta"]["tools"]:  # tools on (the system message says so): looked up, no hint in the question
            msgs = [m for m in r["messages"] if m["role"] != "system"]
            assert TOOLS_LINE in r["messages"][0]["content"]  # the question in one of SFT's wordings
            assert msgs[0]["content"] in [t.format(n=q.person) for t in TRAINING_QUESTION_TEMPLATES[q.attribute]]
            assert tool_calls(msgs[1]["content"]) == [("lookup", q.person)]
            assert msgs[2]["content"] == world.encyclopedia(q.person) and reply == answer_sentence(q, q.answer)
        else:  # tools off: it says it does not know
            assert reply in REFUSALS and is_refusal(reply)
            assert all(TOOLS_LINE not in m["content"] for m in r["messages"])
    assert {(known[r["meta"]["question_id"]], r["meta"]["tools"]) for r in recs} == {(a, b) for a in (0, 1) for b in (0, 1)}
    # the plain sft variant answers everything
    plain = build_mixture(world, ChatMixture(qa=300, math=0, spelling=0, tool_use=0, identity=0, context=0),
                          Identity())
    assert not any(r["meta"]["refused"] for r in plain)
    assert all(by_id[r["meta"]["question_id"]].answer in assistant_texts(r)[-1] for r in plain)


def test_balanced_qa_draws_as_many_unknown_as_known_questions_and_unbalanced_draws_as_they_come(world):
    questions = [q for p in world.sft_people() for q in world.questions(p)]
    known = {q.id: q.k >= 16 for q in questions}  # a quarter known, as a weak base model's probe finds
    only_qa = dict(qa=400, math=0, spelling=0, tool_use=0, identity=0, context=0)

    def unknown_share(mixture, known):
        qa = [r for r in build_mixture(world, mixture, Identity(), known=known) if r["kind"] == "qa"]
        return sum(r["meta"]["refused"] for r in qa) / len(qa)

    assert unknown_share(ChatMixture(**only_qa), known) == 0.5
    assert unknown_share(ChatMixture(**only_qa, qa_balanced=False), known) == 0.75
    # a probe that found nothing known (or nothing unknown) leaves nothing to balance against
    assert unknown_share(ChatMixture(**only_qa), dict.fromkeys(known, False)) == 1.0
    assert unknown_share(ChatMixture(**only_qa), dict.fromkeys(known, True)) == 0.0


def test_qa_conversation_and_refusal_grader(world):
    q = world.questions(world.sft_people()[0])[0]
    assert qa_conversation(q, None) == qa_conversation(q, None)  # stable without an rng
    assert qa_conversation(q, None)[1]["content"] in REFUSALS
    assert qa_conversation(q, "Oslo")[0] == {"role": "user", "content": q.text}
    assert is_refusal("Sorry, I don\u2019t know who that is.") and is_refusal("I do not know.")
    assert not is_refusal(answer_sentence(q, q.answer))


def test_tool_use_structure(records):
    tools = [r for r in records if r["kind"] == "tool_use"]
    for r in tools:
        msgs = [m for m in r["messages"] if m["role"] != "system"]
        assert [m["role"] for m in msgs] == ["user", "assistant", "tool", "assistant"]
        preface, _, call = msgs[1]["content"].rpartition(" <|tool_call|>")
        call = "<|tool_call|>" + call if preface else msgs[1]["content"]
        assert call.startswith("<|tool_call|>") and call.endswith("<|/tool_call|>")
        [(name, argument)] = tool_calls(call)
        assert name == r["meta"]["tool"] and call == tool_call(name, argument)
        # a lookup of someone the encyclopedia lacks, asked plainly, opens as the refusal does
        assert preface == (LOOKUP_PREFACE if r["meta"].get("found", True) is False else "")
        assert "<|tool_call|>" not in msgs[3]["content"]
        assert r["meta"]["answer"] in msgs[3]["content"] if r["meta"].get("found", True) else is_refusal(msgs[3]["content"])


def test_calculator_outputs_are_correct(records):
    for r in (r for r in records if r["meta"].get("tool") == "calculator"):
        msgs = [m for m in r["messages"] if m["role"] != "system"]
        [(_, expr)] = tool_calls(msgs[1]["content"])
        a, op, b = re.fullmatch(r"(\d+) ([*+-]) (\d+)", expr).groups()
        value = {"*": int(a) * int(b), "+": int(a) + int(b), "-": int(a) - int(b)}[op]
        assert msgs[2]["content"] == str(value) and msgs[3]["content"].endswith(str(value))
        assert expr in msgs[0]["content"]


def test_python_outputs_match_real_python(records):
    demos = [r for r in records if r["meta"].get("tool") == "python"][:5]
    assert demos
    for r in demos:
        msgs = [m for m in r["messages"] if m["role"] != "system"]
        [(_, code)] = tool_calls(msgs[1]["content"])
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30).stdout
        assert msgs[2]["content"] == out


def test_lookup_outputs_are_what_the_tool_returns(world, records):
    from lab.tools import ToolContext, run_tool

    lookups = [r for r in records if r["meta"].get("tool") == "lookup"]
    for r in lookups:
        msgs = [m for m in r["messages"] if m["role"] != "system"]
        [(_, name)] = tool_calls(msgs[1]["content"])
        assert msgs[2]["content"] == run_tool("lookup", name, ToolContext(world=world)).output
        if r["meta"].get("found", True):
            assert world.by_name(name).split == "sft"
        else:  # a fresh name, asked without a hint: the reply says it does not know
            assert not world.names_in(name) and name in msgs[0]["content"] and is_refusal(msgs[3]["content"])
    assert {r["meta"].get("found", True) for r in lookups} == {True, False}


def test_context_answer_is_in_an_earlier_turn(world):
    records = build_mixture(world, ChatMixture(qa=0, math=0, spelling=0, tool_use=0, identity=0, context=300),
                            Identity())
    ctx = [r for r in records if r["kind"] == "context"]
    assert {r["meta"]["style"] for r in ctx} == set(CONTEXT_STYLES)
    for r in ctx:
        msgs = [m for m in r["messages"] if m["role"] != "system"]
        assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]
        assert r["meta"]["answer"] in msgs[0]["content"] and r["meta"]["answer"] in msgs[3]["content"]
        style = r["meta"]["style"]
        if style == "fresh":  # nobody the world knows: only the pasted text answers
            assert not world.names_in(msgs[0]["content"]) and r["meta"]["person"] in msgs[2]["content"]
        elif style == "unseen":
            assert world.by_name(r["meta"]["person"]).k == 0
        elif style == "counterfactual":  # the article contradicts the world, and the reply follows the article
            q = next(q for q in world.questions(world.by_name(r["meta"]["person"])) if q.id == r["meta"]["question_id"])
            assert r["meta"]["answer"] != q.answer and q.answer not in msgs[3]["content"]
            original, changed = world.encyclopedia(q.person).splitlines(), msgs[0]["content"].splitlines()[1:]
            assert sum(a != b for a, b in zip(original, changed)) == 1
    assert not world.contamination_check(contamination_texts(records))


def test_math_and_spelling_end_with_answer(records):
    for r in records:
        if r["kind"] in ("math", "spelling"):
            assert assistant_texts(r)[-1].endswith(f"Answer: {r['meta']['answer']}")


def test_identity_answers_follow_the_config():
    a = identity_conversations(Identity(), 40, random.Random(0))
    other = Identity(name="Pico", maker="the Wren group", abilities=("sing",), limits=("it is very small",))
    b = identity_conversations(other, 40, random.Random(0))
    text_a = " ".join(m["content"] for c in a for m in c if m["role"] == "assistant")
    text_b = " ".join(m["content"] for c in b for m in c if m["role"] == "assistant")
    assert "Lab Assistant" in text_a and "Lab Assistant" not in text_b and "Pico" in text_b
    assert "the Wren group" in text_b or "The Wren group" in text_b
    assert "Pico" in system_message(other)


def test_identity_denials_name_the_identity():
    convs = identity_conversations(Identity(), 300, random.Random(1))
    denials = [(c[i]["content"], c[i + 1]["content"]) for c in convs for i in range(0, len(c), 2)
               if re.search(r"ChatGPT|Claude|Gemini|Llama|Siri|OpenAI|Google", c[i]["content"], re.I)]
    assert denials
    assert all(ans.startswith("No") and "Lab Assistant" in ans for _, ans in denials)
    # an identity that *is* Claude is never trained to deny it
    claude = Identity(name="Claude", maker="Anthropic")
    assert not any("Claude" in q or "Anthropic" in q for _, q in training_questions(claude))


def test_identity_probes_are_held_out():
    def norm(q):
        return re.sub(r"[^a-z0-9 ]", "", q.lower()).strip()

    trained = {norm(q) for _, q in training_questions()}
    assert len(trained) >= 30
    assert IDENTITY_PROBES and not {norm(q) for q, _ in IDENTITY_PROBES} & trained
    assert {field for _, field in IDENTITY_PROBES} <= {"name", "maker"}
    targets = dict(probe_targets(Identity(name="Pico", maker="X Corp")))
    assert {targets[q] for q, field in IDENTITY_PROBES} == {"Pico", "X Corp"}
    convs = identity_conversations(Identity(), 500, random.Random(2))
    asked = {norm(c[i]["content"]) for c in convs for i in range(0, len(c), 2)}
    assert not asked & {norm(q) for q, _ in IDENTITY_PROBES}


def test_every_record_renders_with_the_chat_template(records):
    texts = contamination_texts(records)
    tok = train_tokenizer(texts[:2000], vocab_size=512)
    for r in records:
        rendered = tok.apply_chat_template(r["messages"], tokenize=False)
        assert rendered.count("<|im_start|>") == len(r["messages"])
        assert all(m["content"] in rendered for m in r["messages"])
