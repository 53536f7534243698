"""Pretraining sources in which reading the context pays (the reading issue): nothing else in the world
corpus rewards looking back, so a small model never learns to.

- `fresh_people`: a short article (or an encyclopedia card) about a person nobody else mentions (names from
  `fresh_name`, whose tables share nothing with the world's, and never a world name), then questions
  answered from it or its facts restated after an opener ("In short, ..."). Memory cannot help: each person
  appears in exactly one document.
- `tool_transcripts`: a request, the lookup, python or calculator call that answers it with the request's name,
  word or numbers copied into the argument, the tool's real output and the answer (fresh people; train-split
  words and arithmetic only). In the default stream, not the corpus: repeated ~14 times in the corpus it
  delayed reading (docs/reading-notes.md).
- `copy_drills`: a random string (digits, made-up words, a few words) stated and then repeated, in a
  few framings. Copying is the simplest thing an induction head does; DESIGN.md's spike found these drills
  are what started the phase change.

Each registers as a corpus source (`--set data.corpus.extra_sources=math:300,spelling:300,fresh_people:2000,
copy_drills:1000`), seeded by the corpus like every source; fresh-people documents record their person, so
probes ask about others. Probes in evals/reading.py use layouts none of these documents use. What each
source did to the probes so far is in docs/reading-notes.md.
"""

from __future__ import annotations

import random

from tasks import math as math_problems
from tasks import spelling
from tasks.corpus import register_source
from tasks.world import CORPUS_QUESTION_TEMPLATES, CORPUS_TEMPLATES, VALUES, World, encyclopedia_card, name_set

# Consonant-vowel syllables: fresh names look like no world name (those are onset + ending from tables).
FRESH_CONSONANTS = "bdfgklmnprstvz"
FRESH_VOWELS = "aeiou"
COPY_WORDS = ["amber", "bolt", "cedar", "drum", "ember", "fjord", "gravel", "harp", "island", "jade", "kettle",
              "lantern", "marble", "nectar", "orbit", "pepper", "quartz", "ribbon", "saddle", "timber", "umbrella",
              "velvet", "walnut", "yonder", "zephyr", "copper", "meadow", "signal", "pocket", "canyon"]
COPY_FRAMES = [
    "Repeat after me: {s}. Again: {s}.",
    "The code is {s}. I will say it once more: {s}.",
    "Write down {s} and read it back: {s}.",
    "Password: {s}\nConfirm password: {s}",
    "Say \"{s}\". You said \"{s}\".",
    "Ticket {s} is ready. Please show ticket {s} at the gate.",
    "Order number: {s}\nYour order {s} has shipped.",
    "{s} (twice: {s} {s})",
    "Label: {s}\nCopy of label: {s}",
    "The word of the day is {s}; spell it out: {s}.",
    "{s}, {s}, {s}",
    "{s} / {s} / {s} / {s}",
]


# Ways to ask each attribute: the world's question and its paraphrases, the ones SFT also asks (one list, in
# tasks/world.py; SFT adds a few of its own after these).
QUESTIONS = CORPUS_QUESTION_TEMPLATES


def made_up_word(rng: random.Random, fewest: int = 2, most: int = 5) -> str:
    """fewest to most consonant-vowel syllables."""
    return "".join(rng.choice(FRESH_CONSONANTS) + rng.choice(FRESH_VOWELS) for _ in range(rng.randint(fewest, most)))


def fresh_name(rng: random.Random) -> str:
    """A two-part name built from consonant-vowel syllables, never one of the world's names."""
    while True:
        first, last = made_up_word(rng, 2, 3), made_up_word(rng, 2, 3) + rng.choice(["n", "r", "s", "k", ""])
        name = f"{first.capitalize()} {last.capitalize()}"
        if name not in name_set():
            return name


def fresh_person(rng: random.Random) -> tuple[str, dict[str, str]]:
    return fresh_name(rng), {a: rng.choice(values) for a, values in VALUES.items()}


def article(name: str, facts: dict[str, str], rng: random.Random) -> str:
    """The facts in the world's corpus phrasings (a random template each), in random order."""
    sentences = []
    for attribute, value in facts.items():
        prefix, suffix = rng.choice(CORPUS_TEMPLATES[attribute])
        sentences.append(f"{prefix.format(n=name)} {value}{suffix}")
    rng.shuffle(sentences)
    return " ".join(sentences)


RESTATE_OPENERS = ["In short,", "To sum up:", "Once more, the facts:", "Summary:", "Recap:"]


def restatement(name: str, facts: dict[str, str], rng: random.Random) -> str:
    """A few of the facts again, in fresh random phrasings, after an opener."""
    again = dict(rng.sample(sorted(facts.items()), rng.randint(2, len(facts))))
    return f"{rng.choice(RESTATE_OPENERS)} {article(name, again, rng)}"


def questions(name: str, facts: dict[str, str], rng: random.Random) -> str:
    asked = rng.sample(sorted(facts), rng.randint(1, len(facts)))
    return "\n".join(f"Q: {rng.choice(QUESTIONS[a]).format(n=name)}\nA: {facts[a]}." for a in asked)


@register_source("fresh_people")
def fresh_people_documents(n: int, rng: random.Random) -> list[dict]:
    """{"text", "person"}: an article or an encyclopedia card about a fresh person, then what only reading it
    predicts: questions answered from it, or its facts restated in other words. The person is recorded so
    that probes can ask about someone else."""
    docs = []
    for _ in range(n):
        name, facts = fresh_person(rng)
        stated = dict(rng.sample(sorted(facts.items()), rng.randint(3, len(facts))))
        source = article(name, stated, rng) if rng.random() < 0.6 else encyclopedia_card(name, stated)
        follow = questions(name, stated, rng) if rng.random() < 0.5 else restatement(name, stated, rng)
        docs.append({"text": f"{source}\n\n{follow}", "person": name})
    return docs


def copy_item(rng: random.Random) -> str:
    kind = rng.choice(["digits", "word", "words"])
    if kind == "digits":
        return "".join(rng.choice("0123456789") for _ in range(rng.randint(3, 12)))
    if kind == "word":
        return made_up_word(rng)
    return " ".join(rng.sample(COPY_WORDS, rng.randint(2, 5)))


@register_source("copy_drills")
def copy_drill_documents(n: int, rng: random.Random) -> list[str]:
    """A few framed drills per document ("Repeat after me: X. Again: X."), so that a window holds several.
    (Bare repeats of random sequences, without a frame, were tried and taught no copying: docs/reading-notes.md.)"""
    return ["\n".join(rng.choice(COPY_FRAMES).format(s=copy_item(rng)) for _ in range(rng.randint(2, 4)))
            for _ in range(n)]


def tool_transcript(rng: random.Random, letters: math_problems.Problem | None = None) -> str:
    """A request, the tool call that answers it (its argument copied from the request), the tool's output and
    the answer: a lookup of a fresh person (found, or the tool's real miss), a question about a word's letters
    answered by python (`letters`: a train-split spelling problem) or a big multiplication (train split only:
    the evals' held-out problems never appear)."""
    kind = rng.random()
    if kind < 0.5:
        name, facts = fresh_person(rng)
        attribute = rng.choice(sorted(facts))
        found = rng.random() < 0.7
        output = encyclopedia_card(name, facts) if found else World.lookup_miss(name)
        answer = facts[attribute] if found else "I don't know who that is."
        return (f"User: {rng.choice(QUESTIONS[attribute]).format(n=name)}\nAssistant: lookup\n{name}\n"
                f"Tool: {output}\nAssistant: {answer}")
    if kind < 0.8 and letters is not None:
        return (f"User: {letters.question}\nAssistant: python\n{letters.extras['tool_code']}\n"
                f"Tool: {letters.extras['tool_output'].strip()}\nAssistant: Answer: {letters.answer}")
    a, b = math_problems.draw_operands(rng, (100, 9999), (100, 999), "train")
    return f"User: What is {a} * {b}?\nAssistant: calculator\n{a} * {b}\nTool: {a * b}\nAssistant: Answer: {a * b}"


@register_source("tool_transcripts")
def tool_transcript_documents(n: int, rng: random.Random) -> list[str]:
    """One to three tool transcripts a document: copying a request's name, word or numbers into a call pays."""
    counts = [rng.randint(1, 3) for _ in range(n)]
    # one batch of train-split spelling problems (building the word pools is the slow part)
    problems = iter(spelling.generate(spelling.SpellingConfig(seed=rng.randrange(2**31)), sum(counts), split="train"))
    return ["\n\n".join(tool_transcript(rng, next(problems)) for _ in range(c)) for c in counts]
