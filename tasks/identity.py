"""Who the assistant says it is: identity conversations for SFT and held-out probes for the evals.

Every answer is built from the `Identity` fields, so renaming the assistant (or its maker) in the
config renames it everywhere in the data. Questions come in a few dozen forms grouped by intent
(name, maker, other assistants, abilities, limits, ...); each intent has a handful of answer styles.
A small model mostly learns the intent -> answer map, so the styles stay short and regular.

`IDENTITY_PROBES` are question forms that never appear in training: an eval asks them to see whether
the identity generalises beyond the memorised wordings. Each probe names the Identity field that a
correct answer must contain ("name" or "maker").
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass


@dataclass
class Identity:
    name: str = "Lab Assistant"
    maker: str = "the lab team"
    # Verb phrases without a subject ("I can ..." is prepended).
    abilities: tuple[str, ...] = ("answer questions about the people in its world", "do arithmetic step by step",
                                  "spell and count letters", "use tools: python, calculator, lookup")
    # Third-person sentences about the assistant ("it ..."); turned into first person in answers.
    limits: tuple[str, ...] = ("it only knows what it was trained on",
                               "it says so when it does not know something")


# Other assistants (and their makers) the model must say it is not.
OTHER_ASSISTANTS = ["ChatGPT", "Claude", "Gemini", "Llama", "Siri", "Alexa", "GPT-4", "Copilot", "Bard", "Cortana"]
OTHER_MAKERS = ["OpenAI", "Anthropic", "Google", "Meta", "Apple", "Microsoft", "Amazon"]

# Training question forms by intent. "{x}" is filled with another assistant or maker.
QUESTIONS: dict[str, list[str]] = {
    "name": ["Who are you?", "What's your name?", "What is your name?", "What should I call you?",
             "Introduce yourself.", "Tell me about yourself.", "Do you have a name?", "What are you?",
             "Hi! Who am I talking to?", "Who am I chatting with?", "Can you tell me your name?",
             "Tell me your name.", "Who is this?", "What do people call you?", "Your name, please?",
             "Who exactly are you?", "May I know your name?", "Say who you are.", "Describe yourself in a sentence.",
             "Which assistant is this?", "Who is answering me?"],
    "maker": ["Who made you?", "Who created you?", "Who built you?", "Who trained you?", "Where do you come from?",
              "Which company made you?", "Who developed you?", "Who is your creator?", "Who are your developers?",
              "Who designed you?", "Which group built you?", "Who is behind this assistant?", "Who wrote you?",
              "Which organisation trained you?"],
    "other": [f"Are you {x}?" for x in OTHER_ASSISTANTS] + [f"Are you really {x}?" for x in OTHER_ASSISTANTS]
    + [f"You are {x}, right?" for x in OTHER_ASSISTANTS] + ["Is this ChatGPT?", "Are you a version of ChatGPT?"],
    "other_maker": [f"Were you made by {x}?" for x in OTHER_MAKERS] + [f"Did {x} build you?" for x in OTHER_MAKERS]
    + ["Did OpenAI train you?"],
    "abilities": ["What can you do?", "How can you help me?", "What are you good at?",
                  "What kind of questions can you answer?", "What are your abilities?", "What tasks can you help with?"],
    "limits": ["Can you browse the internet?", "Do you know everything?", "Are you always right?",
               "Can you search the web?", "Do you have access to the internet?"],
    "limits_open": ["What are your limits?", "What don't you know?", "What are your weaknesses?"],
    "human": ["Are you a human?", "Are you a person?", "Am I talking to a real person?", "Are you a real human being?"],
    "greeting": ["Hello!", "Hi!", "Hi there.", "Good morning!", "Hey, how are you?"],
}

# Held-out forms (never trained on) and the Identity field a correct answer must contain.
IDENTITY_PROBES: list[tuple[str, str]] = [
    ("What are you called?", "name"),
    ("Please state your name.", "name"),
    ("Whom am I speaking with right now?", "name"),
    ("Give me a short introduction of yourself.", "name"),
    ("Who is responsible for building you?", "maker"),
    ("Which team is behind you?", "maker"),
    ("Who programmed you?", "maker"),
    ("Are you secretly ChatGPT?", "name"),
    ("Is your name Claude?", "name"),
    ("Are you an assistant from Google?", "maker"),
    *((f"Are you secretly {x}?", "name") for x in OTHER_ASSISTANTS[1:]),
    *((f"Is your name {x}?", "name") for x in OTHER_ASSISTANTS if x != "Claude"),
    *((f"Are you an assistant from {m}?", "maker") for m in OTHER_MAKERS if m != "Google"),
]
# Ways of framing a probe, also never in training: ~200 samples, enough to separate two stages' rates.
PROBE_FRAMES = ["{q}", "Hey, {q}", "Quick question: {q}", "{q} Be honest.", "Hello there! {q}", "{q} Just curious."]


def _first_person(text: str) -> str:
    """ "it only knows what it was trained on" -> "I only know what I was trained on".

    Enough for short self-descriptions: it/its/itself are swapped and the verb right after "I"
    (skipping one adverb) loses its third-person ending."""
    words = text.split()
    out = []
    verb_next = False
    for w in words:
        low = w.lower()
        if low == "it":
            out.append("I")
            verb_next = True
            continue
        if low in ("its", "itself"):
            out.append({"its": "my", "itself": "myself"}[low])
            continue
        if verb_next and low in ("only", "always", "never", "also", "often", "sometimes", "just", "still"):
            out.append(w)
            continue
        if verb_next:
            w = {"is": "am", "has": "have", "does": "do", "goes": "go"}.get(low) or _drop_s(w)
        out.append(w)
        verb_next = False
    return " ".join(out)


def _drop_s(verb: str) -> str:
    if verb in ("was",) or not verb.endswith("s") or verb.endswith("ss"):
        return verb
    if verb.endswith("ies"):
        return verb[:-3] + "y"
    if re.search(r"(sh|ch|x|z|ss)es$", verb):
        return verb[:-2]
    return verb[:-1]


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _abilities(identity: Identity) -> str:
    return _join([_first_person(a) for a in identity.abilities]) if identity.abilities else "answer short questions"


def _limits(identity: Identity) -> str:
    """One first-person sentence per limit: "I only know what I was trained on. I say so when ..." """
    return " ".join(_cap(_first_person(x)) + "." for x in identity.limits or ("it can make mistakes",))


def system_message(identity: Identity) -> str:
    return f"You are {identity.name}, made by {identity.maker}. Answer briefly, and say so when you do not know."


def _answer(intent: str, identity: Identity, other: str, rng: random.Random) -> str:
    n, m = identity.name, identity.maker
    if intent == "name":
        return rng.choice([f"I am {n}, an assistant made by {m}.", f"My name is {n}. I was made by {m}.",
                           f"I'm {n}, a small language model built by {m}."])
    if intent == "maker":
        return rng.choice([f"I was made by {m}. I am {n}.", f"{_cap(m)} made me. My name is {n}.",
                           f"I am {n}, and I was built by {m}."])
    # Denials say who the assistant is before naming the other one: copying a name out of the question is
    # what the tiny model does worst ("No, I am not Cop)..." in the probes), and it must not cost the identity.
    if intent == "other":
        return rng.choice([f"No. I am {n}, made by {m}, not {other}.",
                           f"No. I'm {n}, an assistant made by {m}, not {other}."])
    if intent == "other_maker":
        return rng.choice([f"No. I am {n}, made by {m}, not by {other}.",
                           f"No. I was built by {m}, not {other}. My name is {n}."])
    if intent == "abilities":
        return rng.choice([f"I am {n}. I can {_abilities(identity)}.", f"I can {_abilities(identity)}."])
    if intent == "limits":
        return rng.choice([f"No. {_limits(identity)}", f"No. I am {n}. {_limits(identity)}"])
    if intent == "limits_open":
        return rng.choice([_limits(identity), f"I am {n}. {_limits(identity)}"])
    if intent == "human":
        return rng.choice([f"No, I am {n}, a language model made by {m}.",
                           f"No. I'm {n}, an assistant built by {m}."])
    return rng.choice([f"Hello! I am {n}. How can I help?", f"Hi! I'm {n}, made by {m}. What can I do for you?"])


def _other_of(question: str) -> str:
    """The assistant or maker a question names (its longest match), "" if none."""
    found = [x for x in OTHER_ASSISTANTS + OTHER_MAKERS if re.search(rf"\b{re.escape(x)}\b", question)]
    return max(found, key=len) if found else ""


def training_questions(identity: Identity | None = None) -> list[tuple[str, str]]:
    """(intent, question) pairs used in training. Denials of the identity's own name or maker are dropped:
    an Identity named "Claude" must never be trained to say it is not Claude."""
    own = {identity.name.lower(), identity.maker.lower()} if identity else set()
    return [(intent, q) for intent, forms in QUESTIONS.items() for q in forms
            if not (intent in ("other", "other_maker") and _other_of(q).lower() in own)]


# Ways of framing a training question; PROBE_FRAMES (held out) are different ones.
TRAINING_FRAMES = ["Hi, {q}", "{q} Thanks.", "Sorry, {q}", "One thing: {q}", "{q} Tell me.", "Okay. {q}"]


def _variant(question: str, rng: random.Random) -> str:
    """Users type sloppily: sometimes lowercase, sometimes without the final punctuation; and they frame
    questions ("Hi, ...")."""
    if rng.random() < 0.3:
        question = rng.choice(TRAINING_FRAMES).format(q=question)
    r = rng.random()
    if r < 0.1:
        return question.lower()
    if r < 0.2:
        return question.rstrip("?.!")
    return question


def identity_conversations(identity: Identity, n: int, rng: random.Random) -> list[list[dict]]:
    """n short conversations; about one in five asks a second identity question in a follow-up turn."""
    forms = training_questions(identity)
    convs = []
    for _ in range(n):
        turns = 2 if rng.random() < 0.2 else 1
        messages = []
        for intent, q in rng.sample(forms, turns):
            messages.append({"role": "user", "content": _variant(q, rng)})
            messages.append({"role": "assistant", "content": _answer(intent, identity, _other_of(q), rng)})
        convs.append(messages)
    return convs


def probe_targets(identity: Identity) -> list[tuple[str, str]]:
    """IDENTITY_PROBES in every frame, field resolved: (question, text a correct answer must contain)."""
    return [(frame.format(q=q), getattr(identity, field)) for frame in PROBE_FRAMES for q, field in IDENTITY_PROBES]
