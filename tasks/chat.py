"""SFT mixtures: world Q&A, math, spelling, tool use, identity and in-context dialogues as chat records.

A record is `{"messages": [...], "kind": ..., "meta": {...}}`; messages use the roles system, user,
assistant and tool. A tool call sits at the end of an assistant message as
`<|tool_call|>NAME\\nARGUMENT<|/tool_call|>`; the tool's output follows as a `tool` message and the next
assistant message gives the answer. Tool outputs here are exactly what the real tools return, so the
model never learns to expect anything the lab's tools do not produce.

World Q&A uses SFT people only; held-out people never reach SFT data (`contamination_texts` feeds
`world.contamination_check`). With `known` (question id -> bool, from probing the pretrained model)
the questions the model does not know get a fixed refusal, or, in conversations whose system message
says the tools are on (TOOLS_LINE), a lookup without any hint in the question: the `sft-idk` variant.
Without it every question is answered: the plain `sft` variant, which teaches the model to answer
whatever it is asked. Context dialogues are mostly about people only the pasted text describes
(fresh people, k = 0 people, counterfactual articles; CONTEXT_STYLES). Questions about people (Q&A, lookup
demos, context dialogues) are worded as `question_wording` says: each drawn from tasks/world.py's
TRAINING_QUESTION_TEMPLATES ("varied"), or every one in the canonical QUESTION_TEMPLATES ("canonical"); the
evals also ask HELDOUT_QUESTION_TEMPLATES, which no training source uses.

Answers are short and regular on purpose: a model of a million parameters learns a template per
kind, not a style.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import re
from dataclasses import dataclass

from lab.errors import LabError
from tasks import math as math_problems
from tasks import spelling
from tasks.answer_forms import both_forms
from tasks.identity import Identity, identity_conversations, system_message
from tasks.reading import article, fresh_person
from tasks.world import (
    CORPUS_TEMPLATES,
    QUESTION_TEMPLATES,
    TRAINING_QUESTION_TEMPLATES,
    Person,
    Question,
    World,
    encyclopedia_card,
    seeded_rng,
)

KINDS = ("qa", "math", "spelling", "tool_use", "identity", "context")
TOOLS = ("calculator", "python", "lookup")
QUESTION_WORDINGS = ("varied", "canonical")

# One short sentence per attribute: "{n}" is the person, "{v}" the value.
# Answers restate the fact in the corpus's own first phrasing (the base model's knowledge is tied to the
# wording it was pretrained on; novel phrasings recall near chance at this scale) but WITHOUT the name:
# the tiny model cannot copy a name from the question reliably and substitutes one it saw in SFT, which
# then retrieves that person's facts. Measured on held-out k=16 people: 0.10 correct with the name in
# the answer, 0.67 without.
ANSWER_TEMPLATES = {attribute: templates[0][0].replace("{n} ", "").capitalize() + " {v}."
                    for attribute, templates in CORPUS_TEMPLATES.items()}
# One sentence: greedy decoding refuses only when the refusal's first token beats the answer's, and three
# variants split that token's probability (with three, sft-idk refused 0.17 of never-seen people in one
# development seed where one sentence gave 0.53; docs/robust-claims-notes.md). A tuple, so a family could return.
REFUSALS = ("I don't know who that is.",)
LOOKUP_PREFACE = f"{REFUSALS[0]} Let me look it up."
# What graders accept as a refusal in a short answer (after lowercasing and straightening quotes).
REFUSAL_MARKERS = ("i don't know", "i do not know", "i dont know", "not familiar with", "i have no information",
                   "i can't answer", "i cannot answer", "i'm not sure who", "i am not sure who")

# Tool demos name the tool in the request: the same question is answered directly elsewhere in the
# mixture (or refused, in sft-idk), and a hint keeps the two behaviours from contradicting each other.
PYTHON_HINTS = ["{q} Use python.", "Use python to answer: {q}", "{q} Check it with the python tool."]
LOOKUP_HINTS = ["{q} Look it up.", "Use the lookup tool: {q}", "{q} Please check the encyclopedia."]
ARITHMETIC_FORMS = ["What is {e}?", "Compute {e}.", "Calculate {e}."]
CALCULATOR_SHAPES = [(4, 3), (4, 3), (3, 3), (4, 4)]  # digits of the two factors; beyond math bands 1-4

# In-context dialogues: the fact arrives in an earlier user turn and is asked about later.
RELATIONS = ["friend", "sister", "brother", "cousin", "neighbour", "colleague"]
FRIEND_NAMES = ["Oren", "Mia", "Sam", "Ana", "Leo", "Zoe", "Ben", "Ivy", "Max", "Eva", "Tom", "Nora", "Omar", "Raj"]
NOTE_TEMPLATES = {
    "birth_city": "My {r} {f} was born in {v}.",
    "birth_year": "My {r} {f} was born in {v}.",
    "university": "My {r} {f} studied at {v}.",
    "field": "My {r} {f} works in {v}.",
    "employer": "My {r} {f} works for {v}.",
}
PASTE_OPENERS = ["Here is an encyclopedia article:\n{t}", "Read this:\n{t}", "Some background first.\n{t}"]
ACKS = ["Thanks, I have read it.", "Got it.", "OK, noted."]
# What each context dialogue is about. Most are people the model cannot know (fresh people, k = 0 SFT
# people) or articles that contradict what it may recall (counterfactual): only reading answers them.
CONTEXT_STYLES = {"fresh": 0.35, "counterfactual": 0.25, "unseen": 0.15, "article": 0.1, "biography": 0.05,
                  "note": 0.1}
# A conversation whose tools are on says so in its system message (`with_tools`), as a deployed assistant's
# tool list does: the model cannot otherwise know whether a call would run. sft-idk learns to look up what
# it does not know when the line is there, and to say it does not know when it is not.
TOOLS_LINE = "Tools: calculator, python, lookup."
# What a tool call returns when the tools are off (the eval harness and `lab chat` send exactly this).
TOOLS_OFF = "error: tools are switched off"


@dataclass
class ChatMixture:
    qa: int = 2000
    math: int = 600  # problems, each in both answer forms (worked and direct: tasks/answer_forms.py)
    spelling: int = 600  # likewise
    tool_use: int = 800  # calculator, python and lookup demos, a third each (800 vs 400: docs/reading-notes.md)
    identity: int = 200
    context: int = 300
    math_check_share: float = 0.3  # share of math solutions that verify the result before answering
    system_prompt_share: float = 0.5  # share of conversations that start with the identity's system message
    # share of conversations with the tools on (TOOLS_LINE) that need no tool: Q&A (where sft-idk looks up what
    # it does not know), math, spelling, identity, context. Tool demos always have the tools on.
    tools_share: float = 0.3
    # sft-idk: draw as many Q&A conversations about questions the probe found unknown as about known ones
    # (why: docs/settings-notes.md)
    qa_balanced: bool = True
    seed: int = 0
    math_bands: tuple[int, ...] = (1, 2)
    math_tasks: tuple[str, ...] = tuple(math_problems.TASKS)  # tasks/math.py's generators the math records use
    # "varied": each question about a person in a wording drawn from TRAINING_QUESTION_TEMPLATES; "canonical": all
    # in QUESTION_TEMPLATES' one wording (experiments/wording's control arm)
    question_wording: str = "varied"
    canonical_share: float = 0.5  # "varied": share of questions asked in the canonical wording, the rest in the others
    # sft-idk, tools on, a question it does not know: the reply opens as the refusal does and goes on to the lookup
    # ("I don't know who that is. Let me look it up." + the call), so one decision serves both (docs/reading-notes.md)
    lookup_after_refusal: bool = True

    def __post_init__(self):
        check_question_wording(self.question_wording)


def check_question_wording(wording: str) -> None:
    if wording not in QUESTION_WORDINGS:
        raise LabError(f"unknown sft.mixture.question_wording '{wording}'; valid: {', '.join(QUESTION_WORDINGS)}")


class Wording:
    """How a mixture words its questions about people: a stream of its own per component, so that "varied" and
    "canonical" build the same records in the same order, differing in the questions' words alone."""

    def __init__(self, mixture: ChatMixture, kind: str):
        self.varied = mixture.question_wording == "varied"
        self.canonical_share = mixture.canonical_share
        self.rng = seeded_rng("chat", mixture.seed, kind, "wording")

    def ask(self, attribute: str, name: str) -> str:
        """The question about `attribute` of `name` (a person, or "my friend Oren")."""
        template = QUESTION_TEMPLATES[attribute]
        if self.varied and self.rng.random() >= self.canonical_share:
            template = self.rng.choice(TRAINING_QUESTION_TEMPLATES[attribute][1:])  # [0] is the canonical one
        text = template.format(n=name)
        return text[0].upper() + text[1:]  # "{n} was born ...?" about "my friend Oren"

    def question(self, q: Question) -> Question:
        """`q` reworded (its id, person, answer unchanged)."""
        return dataclasses.replace(q, text=self.ask(q.attribute, q.person)) if self.varied else q


def tool_call(name: str, argument: str) -> str:
    return f"<|tool_call|>{name}\n{argument}<|/tool_call|>"


def answer_sentence(question: Question, value: str) -> str:
    return ANSWER_TEMPLATES[question.attribute].format(n=question.person, v=value)


def _stable_choice(options: tuple[str, ...] | list[str], key: str) -> str:
    # Callers without an rng still get a choice that is the same on every machine.
    return options[int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % len(options)]


def qa_conversation(question: Question, answer_text: str | None, rng: random.Random | None = None) -> list[dict]:
    """The user asks the question; the assistant answers with a sentence about `answer_text`, or refuses
    when it is None (the refusal is drawn from `rng`, or fixed by the question id without one)."""
    if answer_text is None:
        reply = rng.choice(REFUSALS) if rng else _stable_choice(REFUSALS, question.id)
    else:
        reply = answer_sentence(question, answer_text)
    return [{"role": "user", "content": question.text}, {"role": "assistant", "content": reply}]


def is_refusal(text: str) -> bool:
    """Whether a short answer declines to answer (for graders; long texts may mention "I don't know" in passing)."""
    lowered = " ".join(text.lower().replace("\u2019", "'").split())
    return any(m in lowered for m in REFUSAL_MARKERS)


def _record(messages: list[dict], kind: str, **meta) -> dict:
    return {"messages": messages, "kind": kind, "meta": meta}


def _cycle(items: list, n: int, rng: random.Random) -> list:
    """n items drawn in shuffled passes, so every item is used before any repeats."""
    out = []
    while len(out) < n:
        batch = list(items)
        rng.shuffle(batch)
        out += batch[: n - len(out)]
    return out


def _draw_questions(pool: list[Question], n: int, known: dict[str, bool] | None, balanced: bool,
                    rng: random.Random) -> list[Question]:
    """n questions from `pool`; `balanced` (with a probe that found both kinds) draws half of them from the
    unknown questions and half from the known, each in shuffled passes."""
    unknown = [q for q in pool if known is not None and not known.get(q.id, True)]
    if not balanced or not unknown or len(unknown) == len(pool):
        return _cycle(pool, n, rng)
    drawn = _cycle([q for q in pool if known.get(q.id, True)], n - n // 2, rng) + _cycle(unknown, n // 2, rng)
    rng.shuffle(drawn)
    return drawn


def _qa_records(world: World, people: list[Person], known: dict[str, bool] | None, rng: random.Random,
                mixture: ChatMixture) -> list[dict]:
    """mixture.qa questions answered (or refused, in sft-idk); mixture.tools_share of them have the tools on,
    where what sft-idk does not know is looked up and what it knows is still answered directly."""
    out, wording = [], Wording(mixture, "qa")
    for q in _draw_questions([q for p in people for q in world.questions(p)], mixture.qa, known, mixture.qa_balanced, rng):
        q = wording.question(q)
        ok = True if known is None else known.get(q.id, True)
        tools = rng.random() < mixture.tools_share
        messages = qa_conversation(q, q.answer if ok else None, rng)
        if not ok and tools:  # sft-idk, tools on, a question it does not know: look it up, no hint needed
            messages = _tool_turns(q.text, "lookup", q.person, world.encyclopedia(q.person), answer_sentence(q, q.answer),
                                   preface=LOOKUP_PREFACE if mixture.lookup_after_refusal else "")
        out.append(_record(messages, "qa", tools=tools, question_id=q.id,
                           person=q.person, attribute=q.attribute, k=q.k, refused=not ok,
                           known=None if known is None else known.get(q.id)))
    return out


def _both_forms_records(problems: list, kind: str) -> list[dict]:
    """Each problem twice, worked and direct (tasks/answer_forms.py), so the paired worked-vs-direct evals
    compare two trained forms of the same problems."""
    return [_record([{"role": "user", "content": user}, {"role": "assistant", "content": assistant}],
                    kind, id=p.id, task=p.task, difficulty=p.difficulty, answer=p.answer, form=form)
            for p in problems for form, user, assistant in both_forms(p.question, p.solution, p.answer)]


def _math_records(mixture: ChatMixture, n: int) -> list[dict]:
    cfg = math_problems.MathConfig(seed=mixture.seed, tasks=tuple(mixture.math_tasks), bands=tuple(mixture.math_bands),
                                   check_share=mixture.math_check_share)
    return _both_forms_records(math_problems.generate(cfg, n, split="train"), "math")


def _spelling_records(mixture: ChatMixture, n: int, rng: random.Random) -> list[dict]:
    """Each problem in both answer forms with the tools off, and a `tools_share` of them asked once more, plainly,
    with the tools on: there the python tool answers it. A question about letters goes to the tool when the tools
    are on, and only then (with them off the model spells it out itself)."""
    problems = spelling.generate(spelling.SpellingConfig(seed=mixture.seed), n, split="train")
    records = _both_forms_records(problems, "spelling")
    for r in records:
        r["meta"]["tools"] = False
    for p in problems:
        if rng.random() < mixture.tools_share:
            messages = _tool_turns(p.question, "python", p.extras["tool_code"], p.extras["tool_output"],
                                   f"Answer: {p.answer}")
            records.append(_record(messages, "spelling", id=p.id, task=p.task, answer=p.answer, form="tool",
                                   tools=True))
    return records


def _tool_turns(request: str, name: str, argument: str, output: str, reply: str, preface: str = "") -> list[dict]:
    return [{"role": "user", "content": request},
            {"role": "assistant", "content": f"{preface} {tool_call(name, argument)}" if preface else tool_call(name, argument)},
            {"role": "tool", "content": output},
            {"role": "assistant", "content": reply}]


def _calculator_demo(rng: random.Random) -> dict:
    while True:
        da, db = rng.choice(CALCULATOR_SHAPES)
        a, b = rng.randint(10 ** (da - 1), 10 ** da - 1), rng.randint(10 ** (db - 1), 10 ** db - 1)
        # never a held-out math problem, even if a later band grows this big
        if math_problems.split_of(math_problems.split_key("arithmetic", {"a": a, "b": b, "op": "*"})) == "train":
            break
    expr, value = f"{a} * {b}", str(a * b)
    messages = _tool_turns(rng.choice(ARITHMETIC_FORMS).format(e=expr), "calculator", expr, value, f"Answer: {value}")
    return _record(messages, "tool_use", tool="calculator", expression=expr, answer=value)


def _python_demo(p, rng: random.Random) -> dict:
    request = rng.choice(PYTHON_HINTS).format(q=p.question)
    messages = _tool_turns(request, "python", p.extras["tool_code"], p.extras["tool_output"], f"Answer: {p.answer}")
    return _record(messages, "tool_use", tool="python", id=p.id, task=p.task, answer=p.answer)


def _lookup_demo(world: World, q: Question, rng: random.Random, wording: Wording) -> dict:
    request = rng.choice(LOOKUP_HINTS).format(q=wording.question(q).text)
    messages = _tool_turns(request, "lookup", q.person, world.encyclopedia(q.person), answer_sentence(q, q.answer))
    return _record(messages, "tool_use", tool="lookup", question_id=q.id, person=q.person, k=q.k, answer=q.answer)


def _lookup_miss_demo(world: World, rng: random.Random, wording: Wording, mixture: ChatMixture) -> dict:
    """A question about someone the encyclopedia lacks (a fresh name), asked plainly: the call must copy a
    name never seen in training, and a miss is answered with "I don't know"."""
    name, _ = fresh_person(rng)
    attribute = rng.choice(world.cfg.attributes)
    messages = _tool_turns(wording.ask(attribute, name), "lookup", name, world.lookup_miss(name),
                           rng.choice(REFUSALS), preface=LOOKUP_PREFACE if mixture.lookup_after_refusal else "")
    return _record(messages, "tool_use", tool="lookup", person=name, attribute=attribute, found=False)


def _tool_records(world: World, people: list[Person], mixture: ChatMixture, n: int, rng: random.Random) -> list[dict]:
    counts = {t: n // len(TOOLS) + (i < n % len(TOOLS)) for i, t in enumerate(TOOLS)}
    out = [_calculator_demo(rng) for _ in range(counts["calculator"])]
    if counts["python"]:
        # Its own word stream: the python demos should not repeat the spelling walkthroughs' words.
        cfg = spelling.SpellingConfig(seed=seeded_rng(mixture.seed, "tool-python").randrange(2**31))
        out += [_python_demo(p, rng) for p in spelling.generate(cfg, counts["python"], split="train")]
    if counts["lookup"]:
        pool = [q for p in people for q in world.questions(p)]
        fresh = counts["lookup"] // 2
        wording = Wording(mixture, "tool_use")
        out += [_lookup_demo(world, q, rng, wording) for q in _cycle(pool, counts["lookup"] - fresh, rng)]
        out += [_lookup_miss_demo(world, rng, wording, mixture) for _ in range(fresh)]
    for r in out:
        r["meta"]["tools"] = True
    return out


def _context_record(world: World, people: list[Person], rng: random.Random, wording: Wording) -> dict:
    style = rng.choices(list(CONTEXT_STYLES), weights=list(CONTEXT_STYLES.values()))[0]
    unseen = [p for p in people if p.k == 0]
    if style == "unseen" and not unseen:
        style = "article"
    if style == "fresh":
        name, facts = fresh_person(rng)
        attribute = rng.choice(world.cfg.attributes)
        facts = {a: facts[a] for a in world.cfg.attributes}
        opener = rng.choice(PASTE_OPENERS)
        text = opener.format(t=encyclopedia_card(name, facts) if rng.random() < 0.5 else article(name, facts, rng))
        question = wording.ask(attribute, name)
        reply = ANSWER_TEMPLATES[attribute].format(v=facts[attribute])
        meta = {"style": style, "person": name, "attribute": attribute, "answer": facts[attribute]}
    elif style == "note":
        # Facts about the user's acquaintances: first names only, so no world person is ever named.
        f1, f2 = rng.sample(FRIEND_NAMES, 2)
        a1, a2 = rng.choice(world.cfg.attributes), rng.choice(world.cfg.attributes)
        v1, v2 = rng.choice(world.values(a1)), rng.choice(world.values(a2))
        r1, r2 = rng.choice(RELATIONS), rng.choice(RELATIONS)
        facts = [NOTE_TEMPLATES[a1].format(r=r1, f=f1, v=v1)]
        if rng.random() < 0.5:  # a second fact to read past
            facts.append(NOTE_TEMPLATES[a2].format(r=r2, f=f2, v=v2))
            rng.shuffle(facts)
        text = " ".join(facts)
        question = wording.ask(a1, f"my {r1} {f1}")
        reply = ANSWER_TEMPLATES[a1].format(n=f1, v=v1)
        meta = {"style": style, "attribute": a1, "answer": v1}
    else:
        person = rng.choice(unseen if style == "unseen" else people)
        q = rng.choice(world.questions(person))
        answer = q.answer
        if style == "counterfactual":  # the article says otherwise than the world: the article wins
            answer = rng.choice([v for v in world.values(q.attribute) if v != q.answer and v not in q.aliases])
            text = world.encyclopedia(person.name, {q.attribute: answer})
        elif style == "biography":
            text = world.biography(person, rng.randrange(8))
        else:
            text = world.encyclopedia(person.name)
        text = rng.choice(PASTE_OPENERS).format(t=text)
        question, reply = wording.question(q).text, answer_sentence(q, answer)
        meta = {"style": style, "question_id": q.id, "person": q.person, "k": q.k, "answer": answer}
    messages = [{"role": "user", "content": text}, {"role": "assistant", "content": rng.choice(ACKS)},
                {"role": "user", "content": question}, {"role": "assistant", "content": reply}]
    return _record(messages, "context", **meta)


def conversation_count(mixture: ChatMixture) -> int:
    """About how many records build_mixture makes: one a count, two a math or spelling problem (both answer forms),
    and the spelling problems drawn (tools_share of them, by chance) to be asked once more with the tools on."""
    both_forms = sum(getattr(mixture, kind) * (2 if kind in ("math", "spelling") else 1) for kind in KINDS)
    return both_forms + round(mixture.spelling * mixture.tools_share)


def with_tools(system: str | None, tools: bool) -> str | None:
    """The system message of a conversation with the tools on or off (TOOLS_LINE appended when on)."""
    if not tools:
        return system
    return f"{system}\n{TOOLS_LINE}" if system else TOOLS_LINE


def _validate(mixture: ChatMixture) -> None:
    for kind in KINDS:
        count = getattr(mixture, kind)
        if not isinstance(count, int) or count < 0:
            raise LabError(f"the SFT mixture count '{kind}' must be a whole number >= 0, got {count!r}")
    for name in ("math_check_share", "system_prompt_share", "tools_share", "canonical_share"):
        if not 0.0 <= getattr(mixture, name) <= 1.0:
            raise LabError(f"{name} must be between 0 and 1, got {getattr(mixture, name)}")
    check_question_wording(mixture.question_wording)
    if sum(getattr(mixture, kind) for kind in KINDS) == 0:
        raise LabError("the SFT mixture is empty")


def build_mixture(world: World, mixture: ChatMixture, identity: Identity,
                  known: dict[str, bool] | None = None) -> list[dict]:
    """The SFT records, shuffled; deterministic in (world, mixture, identity, known)."""
    _validate(mixture)
    people = world.sft_people()
    if not people and (mixture.qa or mixture.context or mixture.tool_use):
        raise LabError("the world has no SFT people to build Q&A, tool-use or context conversations from")
    # One stream per component: changing one count leaves every other component's records unchanged.
    rng = {kind: seeded_rng("chat", mixture.seed, kind) for kind in KINDS + ("system", "order")}
    records = _qa_records(world, people, known, rng["qa"], mixture)
    records += _math_records(mixture, mixture.math) if mixture.math else []
    records += _spelling_records(mixture, mixture.spelling, rng["spelling"]) if mixture.spelling else []
    records += _tool_records(world, people, mixture, mixture.tool_use, rng["tool_use"])
    records += [_record(m, "identity") for m in identity_conversations(identity, mixture.identity, rng["identity"])]
    context_wording = Wording(mixture, "context")
    records += [_context_record(world, people, rng["context"], context_wording) for _ in range(mixture.context)]
    for r in records:
        r["meta"]["system"] = rng["system"].random() < mixture.system_prompt_share
        if "tools" not in r["meta"]:  # with the tools on, most answers still need none
            r["meta"]["tools"] = rng["system"].random() < mixture.tools_share
        content = with_tools(system_message(identity) if r["meta"]["system"] else None, r["meta"]["tools"])
        if content:
            r["messages"] = [{"role": "system", "content": content}] + r["messages"]
    rng["order"].shuffle(records)
    return records


def contamination_texts(records: list[dict]) -> list[str]:
    """Every message content, for `world.contamination_check`."""
    return [m["content"] for r in records for m in r["messages"]]


def tool_calls(content: str) -> list[tuple[str, str]]:
    """(name, argument) of each tool call in an assistant message."""
    return re.findall(r"<\|tool_call\|>(\w+)\n(.*?)<\|/tool_call\|>", content, flags=re.S)
