"""Does a model read its context? Probes that need no world and no chat format (they run on a base model).

- Induction score (Olsson et al. 2022): a random token sequence, then the same sequence again. A model
  that copies from its context predicts the second copy far better than the first, which nothing in the
  prompt predicts. `induction_score` reports the mean next-token loss on each half and
  1 - second / first (0: no copying; 1: the second copy is free). `induction_heads` gives each head's
  attention from a token of the second copy to the token after its first occurrence, the induction
  pattern, averaged (eager attention, so `lab inspect attention`'s path).
- Copy accuracy: a random string shown twice on lines of its own, then a new line. The greedy
  continuation's first line holds it as a whole word or not (and, counted apart, starts with it), by kind
  (digits, made-up names) and length. The format is no training
  template's: no source in the corpus writes a string on two lines and then a third time.
- Open-book completion: an article about a person the model never saw (tasks/reading.py's fresh people,
  every attribute stated once in a random corpus phrasing), a new line, then a completion prompt for one
  attribute, in the corpus's canonical phrasing or in a phrasing no document uses (tasks/world.py's novel
  templates). The fresh-people documents in pretraining ask questions ("Q: ... A: ..."), never this layout.

Use: `induction_score(model)`, `copy_accuracy(model, tokenizer)`, `open_book(model, tokenizer)`; each is a
pure function of the model and a seed.
"""

from __future__ import annotations

import random
import re

import torch
import torch.nn.functional as F

from evals.eval_settings import ReadingSettings
from evals.knowledge import normalise
from evals.stats import proportion
from lab.model.engine import SamplingParams
from lab.model.engine import generate_text as engine_text
from tasks.reading import article, fresh_person
from tasks.world import CORPUS_TEMPLATES, NOVEL_TEMPLATES, aliases_of


def _random_tokens(vocab_size: int, first_id: int, rows: int, length: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(first_id, vocab_size, (rows, length), generator=generator)


def _repeated(model, settings: ReadingSettings, first_id: int):
    """(rows, 1 + 2 * length): bos, a random sequence, the same sequence again."""
    bos = model.config.bos_token_id if model.config.bos_token_id is not None else first_id
    half = _random_tokens(model.config.vocab_size, first_id, settings.induction_rows, settings.induction_length,
                          settings.seed)
    return torch.cat([torch.full((half.shape[0], 1), bos), half, half], dim=1)


def induction_score(model, settings: ReadingSettings = ReadingSettings(), first_id: int = 7) -> dict:
    """Mean next-token loss on the first and the second copy of a repeated random sequence, and the score.

    `first_id`: the lowest id drawn (the lab's tokenizers put their special tokens below 7)."""
    was_training = model.training
    model.eval()
    ids = _repeated(model, settings, first_id).to(next(model.parameters()).device)
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits.float()
    losses = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")  # (rows, 2 * length)
    model.train(was_training)
    n = settings.induction_length
    # losses[:, j] is the loss on token j + 1. The same tokens of each copy, its 2nd to last: the first token
    # of the second copy follows the end of the first, which nothing predicts.
    first, second = losses[:, 1:n].mean().item(), losses[:, n + 1 :].mean().item()
    return {"first_half_loss": first, "second_half_loss": second, "score": 1 - second / first,
            "rows": settings.induction_rows, "length": n}


def induction_heads(model, settings: ReadingSettings = ReadingSettings(), first_id: int = 7) -> list[list[float]]:
    """[layer][head]: mean attention from each token of the second copy to the token after its first
    occurrence (what an induction head attends to). Needs the eager attention path for the weights."""
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        ids = _repeated(model, settings, first_id).to(next(model.parameters()).device)
        with torch.no_grad():
            attentions = model(input_ids=ids, use_cache=False, output_attentions=True).attentions
    finally:
        model.set_attn_implementation(previous)
    n = settings.induction_length
    queries = torch.arange(n + 1, 2 * n + 1)  # positions of the second copy (bos is position 0)
    targets = queries - n + 1  # the token after the same token's first occurrence
    return [layer[:, :, queries, targets].mean(dim=(0, 2)).tolist() for layer in attentions]


# ---------------------------------------------------------------- copying strings

_SYLLABLES = ["ka", "lo", "mi", "ru", "te", "vo", "zi", "na", "pe", "so", "du", "ar", "el", "iv", "or", "ub"]


def copy_string(kind: str, length: int, rng: random.Random) -> str:
    """A random string of `length` characters: digits, or a made-up capitalised name from syllables no world
    table uses (the world's names are drawn from its own tables; these are cut to length)."""
    if kind == "digits":
        return "".join(rng.choice("0123456789") for _ in range(length))
    if kind == "names":
        text = ""
        while len(text) < length:
            text += rng.choice(_SYLLABLES)
        return text[:length].capitalize()
    raise ValueError(f"unknown copy kind {kind!r}; valid: digits, names")


def copy_prompt(text: str) -> str:
    return f"{text}\n{text}\n"


def copied(continuation: str, text: str, exact: bool = False) -> bool:
    """The string is a whole word of the continuation's first line (`exact`: the continuation starts with it).
    A model that answers "Copy of label: 58213" has read the string from its prompt as surely as one that
    answers "58213"; the words around it are the training frame it fell into, and `exact` counts those apart."""
    if exact:
        rest = continuation[len(text):]
        return continuation.startswith(text) and (not rest or not rest[0].isalnum())
    line = continuation.lstrip("\n").split("\n", 1)[0]
    return re.search(rf"(?<![0-9A-Za-z]){re.escape(text)}(?![0-9A-Za-z])", line) is not None


def copy_accuracy(model, tokenizer, settings: ReadingSettings = ReadingSettings(), generate_text=None) -> list[dict]:
    """One row per (kind, length): the share of strings the greedy continuation copies, with its 95% CI.
    `generate_text(texts, max_new_tokens) -> continuations` defaults to the engine."""
    if generate_text is None:
        generate_text = _engine_text(model, tokenizer)
    rng = random.Random(settings.seed)
    rows = []
    for kind in settings.copy_kinds:
        for length in settings.copy_lengths:
            strings = [copy_string(kind, length, rng) for _ in range(settings.copy_per_cell)]
            # characters are at most one token each, plus room for a few words around them
            outs = generate_text([copy_prompt(s) for s in strings], length + 8)
            hits = [copied(out, s) for out, s in zip(outs, strings)]
            exact = [copied(out, s, exact=True) for out, s in zip(outs, strings)]
            rows.append({"kind": kind, "length": length, "accuracy": proportion(sum(hits), len(hits)),
                         "exact": proportion(sum(exact), len(exact)),
                         "examples": [{"string": s, "continuation": o} for s, o in list(zip(strings, outs))[:3]]})
    return rows


# ---------------------------------------------------------------- open-book completion


def open_book_items(settings: ReadingSettings = ReadingSettings(), exclude: frozenset[str] = frozenset()) -> list[dict]:
    """Prompts about fresh people (none named in `exclude`, e.g. the fresh people a corpus holds)."""
    rng = random.Random(f"open-book-{settings.seed}")
    items, people = [], 0
    while people < settings.open_book_people:
        name, facts = fresh_person(rng)
        if name in exclude:
            continue
        people += 1
        text = article(name, facts, rng)
        for attribute, value in facts.items():
            prompts = {"corpus": CORPUS_TEMPLATES[attribute][0][0], "novel": NOVEL_TEMPLATES[attribute]}
            for phrasing, template in prompts.items():
                items.append({"person": name, "attribute": attribute, "phrasing": phrasing,
                              "golds": [value, *aliases_of(value)], "prompt": f"{text}\n{template.format(n=name)}"})
    return items


def open_book(model, tokenizer, settings: ReadingSettings = ReadingSettings(), exclude: frozenset[str] = frozenset(),
              generate_text=None) -> dict:
    """{phrasing: {"accuracy": proportion, "examples": [...]}}: greedy completions that start with the value."""
    if generate_text is None:
        generate_text = _engine_text(model, tokenizer)
    items = open_book_items(settings, exclude)
    if model is not None and tokenizer is not None:  # a prompt longer than the model's context is not asked
        context = getattr(model.config, "max_position_embeddings", 10**9)
        items = [i for i in items if len(tokenizer(i["prompt"])["input_ids"]) + 9 <= context]
    outs = generate_text([i["prompt"] for i in items], 8) if items else []
    result = {}
    for phrasing in ("corpus", "novel"):
        rows = [(i, o) for i, o in zip(items, outs) if i["phrasing"] == phrasing]
        hits = [any(normalise(o).startswith(normalise(g)) for g in i["golds"]) for i, o in rows]
        result[phrasing] = {"accuracy": proportion(sum(hits), len(hits)),
                            "examples": [{"prompt": i["prompt"], "continuation": o, "gold": i["golds"][0]}
                                         for i, o in rows[:3]]}
    return result


def _engine_text(model, tokenizer):
    def generate_text(texts, max_new_tokens):
        return engine_text(model, tokenizer, texts, SamplingParams(max_new_tokens=max_new_tokens))

    return generate_text


SNAPSHOT = ReadingSettings(induction_rows=8, copy_lengths=(8,), copy_kinds=("digits",), copy_per_cell=40,
                           open_book_people=12)


def reading_snapshot(model, tokenizer, world_probes: bool = True, settings: ReadingSettings = SNAPSHOT) -> dict:
    """A few scalars, cheap enough for every pretraining eval and every scaling size: the induction score,
    8-digit copy accuracy and (`world_probes`: the corpus speaks the world's English) open-book accuracy."""
    was_training = model.training
    model.eval()
    try:
        snapshot = {"induction_score": induction_score(model, settings)["score"],
                    "copy_digits_8": copy_accuracy(model, tokenizer, settings)[0]["accuracy"]["value"]}
        if world_probes:
            book = open_book(model, tokenizer, settings)
            snapshot.update({f"open_book_{p}": book[p]["accuracy"]["value"] for p in ("corpus", "novel")
                             if book[p]["accuracy"]["n"]})
    finally:
        model.train(was_training)
    return snapshot
