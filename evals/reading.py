"""Does a model read its context? Probes that need no world and no chat format (they run on a base model).

- Induction score (Olsson et al. 2022): a random token sequence, then the same sequence again. A model
  that copies from its context predicts the second copy far better than the first, which nothing in the
  prompt predicts. `induction_score` reports the mean next-token loss on each half and
  1 - second / first (0: no copying; 1: the second copy is free), and the same score per sequence with a CLT
  interval. Two draws: uniform over every non-special id (the original, 32 tokens; on the tiny run 520 of
  those 2,041 ids never occur in the training tokens, so their embeddings are untrained), and from the ids the
  training tokens use at least 100 times (`allowed_ids`, evals/corpus_stats.corpus_used_ids), at 16, 32 and
  64 tokens. `induction_heads` gives each head's attention from a token of the second copy to the token after
  its first occurrence, the induction pattern, averaged (eager attention, so `lab inspect attention`'s path).
- Copy accuracy, the original probe (kept for continuity, reported apart): a random string shown twice on
  lines of its own, then a new line. The greedy continuation's first line holds it as a whole word or not
  (and, counted apart, starts with it), by kind (digits, made-up names) and length.
- Copy in frozen layouts (`layout_copy`): `id=X;⏎id=` and `X | X | `, whose fixed text ("id=", " | ") no
  training source writes (tests/test_reading.py builds the corpus and checks; no copy frame in
  tasks/reading.py writes either, and "|" occurs in no document), each with 8 digits, 8-letter made-up names
  (consonant-vowel syllables from consonants fresh people's names never use) and 6-character letter-digit
  codes, the same strings in both layouts. Exact: the continuation is the string, then a non-alphanumeric
  character.
- Open-book completion: an article about a person the model never saw (tasks/reading.py's fresh people,
  every attribute stated once in a random corpus phrasing), a new line, then a completion prompt for one
  attribute: in the corpus's canonical phrasing; in a novel phrasing (tasks/world.py's novel templates, with
  words no document uses); or in a held-out wording (HELDOUT_TEMPLATES: words the corpus uses, in an
  arrangement no document has). Two people (`open_book_two`): two fresh articles of three facts each, both
  stating the attribute asked, then the canonical prompt about one of them; the answer must be that person's
  value, and giving the other person's is counted apart. The fresh-people documents in pretraining ask
  questions ("Q: ... A: ...") or restate, never these layouts.

Use: `induction_score(model)`, `copy_accuracy(model, tokenizer)`, `layout_copy(model, tokenizer)`,
`open_book(model, tokenizer)`, `open_book_two(model, tokenizer)`; each is a pure function of the model and a
seed. `reading_snapshot` is their cut-down version for every pretraining eval.
"""

from __future__ import annotations

import random
import re
import string

import torch
import torch.nn.functional as F

from evals.eval_settings import ReadingSettings
from evals.knowledge import normalise
from evals.stats import mean_metric, proportion
from lab.errors import LabError
from lab.model.engine import SamplingParams
from lab.model.engine import generate_text as engine_text
from tasks.reading import article, fresh_person
from tasks.world import CORPUS_TEMPLATES, NOVEL_TEMPLATES, aliases_of

# The lab's tokenizers put their special tokens below this id.
FIRST_ID = 7


def _draw_ids(allowed_ids, vocab_size: int) -> torch.Tensor:
    """The ids a corpus-used draw samples from, sorted (a set's order would change the draw), checked."""
    ids = sorted({int(i) for i in allowed_ids})
    if len(ids) < 2:
        raise LabError(f"allowed_ids holds {len(ids)} ids; a random sequence needs at least 2")
    if ids[0] < 0 or ids[-1] >= vocab_size:
        raise LabError(f"allowed_ids holds id {ids[0] if ids[0] < 0 else ids[-1]}, outside the model's "
                       f"vocabulary of {vocab_size}")
    return torch.tensor(ids)


def _repeated(model, settings: ReadingSettings, first_id: int, allowed_ids=None, length: int | None = None):
    """(rows, 1 + 2 * length): bos, a random sequence, the same sequence again. The sequence is drawn uniformly
    over the ids from `first_id` up, or over `allowed_ids`."""
    bos = model.config.bos_token_id if model.config.bos_token_id is not None else first_id
    shape = (settings.induction_rows, length or settings.induction_length)
    generator = torch.Generator().manual_seed(settings.seed)
    if allowed_ids is None:
        half = torch.randint(first_id, model.config.vocab_size, shape, generator=generator)
    else:
        ids = _draw_ids(allowed_ids, model.config.vocab_size)
        half = ids[torch.randint(0, len(ids), shape, generator=generator)]
    return torch.cat([torch.full((half.shape[0], 1), bos), half, half], dim=1)


def _fits(model, length: int) -> bool:
    return 1 + 2 * length <= getattr(model.config, "max_position_embeddings", 10**9)


def induction_score(model, settings: ReadingSettings = ReadingSettings(), first_id: int = FIRST_ID,
                    allowed_ids=None, length: int | None = None) -> dict:
    """Mean next-token loss on the first and the second copy of a repeated random sequence, the score, and
    `by_row`: the score of each sequence, averaged with its CLT interval.

    `first_id`: the lowest id of the uniform draw; `allowed_ids` (ids the corpus uses): draw from these instead.
    `length`: tokens in the sequence (default settings.induction_length)."""
    was_training = model.training
    model.eval()
    n = length or settings.induction_length
    ids = _repeated(model, settings, first_id, allowed_ids, n).to(next(model.parameters()).device)
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits.float()
    losses = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")  # (rows, 2 * length)
    model.train(was_training)
    # losses[:, j] is the loss on token j + 1. The same tokens of each copy, its 2nd to last: the first token
    # of the second copy follows the end of the first, which nothing predicts.
    first_rows, second_rows = losses[:, 1:n].mean(dim=1), losses[:, n + 1 :].mean(dim=1)
    first, second = losses[:, 1:n].mean().item(), losses[:, n + 1 :].mean().item()
    result = {"first_half_loss": first, "second_half_loss": second, "score": 1 - second / first,
              "by_row": mean_metric((1 - second_rows / first_rows).tolist()), "rows": settings.induction_rows,
              "length": n, "draw": "uniform" if allowed_ids is None else "used"}
    if allowed_ids is not None:
        result["ids"] = len(set(allowed_ids))
    return result


def induction_heads(model, settings: ReadingSettings = ReadingSettings(), first_id: int = FIRST_ID,
                    allowed_ids=None) -> list[list[float]]:
    """[layer][head]: mean attention from each token of the second copy to the token after its first
    occurrence (what an induction head attends to), on induction_score's draw at settings.induction_length.
    Needs the eager attention path for the weights."""
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        ids = _repeated(model, settings, first_id, allowed_ids).to(next(model.parameters()).device)
        with torch.no_grad():
            attentions = model(input_ids=ids, use_cache=False, output_attentions=True).attentions
    finally:
        model.set_attn_implementation(previous)
    n = settings.induction_length
    queries = torch.arange(n + 1, 2 * n + 1)  # positions of the second copy (bos is position 0)
    targets = queries - n + 1  # the token after the same token's first occurrence
    return [layer[:, :, queries, targets].mean(dim=(0, 2)).tolist() for layer in attentions]


def induction_by_length(model, settings: ReadingSettings, allowed_ids) -> list[dict]:
    """induction_score on the corpus-used draw at each of settings.induction_lengths the model's context holds."""
    return [induction_score(model, settings, allowed_ids=allowed_ids, length=n)
            for n in settings.induction_lengths if _fits(model, n)]


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


# Frozen (the probe design is fixed before pretraining is tuned): layouts whose fixed text ("id=", " | ") no
# training source writes, and the kinds copied in them, with their lengths in characters. ("(X) (X) (" was tried
# first and dropped: a copy frame writes "X (twice: X X)", and the tiny model continued that frame.)
LAYOUTS = {"id": "id={s};\nid=", "pipe": "{s} | {s} | "}
LAYOUT_KINDS = {"digits": 8, "names": 8, "codes": 6}
# Consonants fresh people's names (tasks/reading.FRESH_CONSONANTS) never use: a probe name is no fresh name.
PROBE_CONSONANTS = "chjwy"


def layout_string(kind: str, rng: random.Random) -> str:
    """A string of the frozen-layout probe: 8 digits, an 8-letter capitalised name of consonant-vowel syllables
    ("Wuhajoce"), or a 6-character code of letters and digits with at least one of each ("k7Rq2m")."""
    length = LAYOUT_KINDS.get(kind)
    if kind == "digits":
        return "".join(rng.choice(string.digits) for _ in range(length))
    if kind == "names":
        return "".join(rng.choice(PROBE_CONSONANTS) + rng.choice("aeiou") for _ in range(length // 2)).capitalize()
    if kind == "codes":
        while True:
            code = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(length))
            if any(c.isdigit() for c in code) and any(c.isalpha() for c in code):
                return code
    raise LabError(f"unknown layout-copy kind '{kind}'; valid: {', '.join(LAYOUT_KINDS)}")


def layout_items(settings: ReadingSettings = ReadingSettings()) -> list[dict]:
    """{layout, kind, string, prompt}: settings.layout_per_cell strings of each kind, each in every layout."""
    rng = random.Random(f"layout-copy-{settings.seed}")
    items = []
    for kind in settings.layout_kinds:
        strings = [layout_string(kind, rng) for _ in range(settings.layout_per_cell)]
        items += [{"layout": layout, "kind": kind, "string": s, "prompt": template.format(s=s)}
                  for layout, template in LAYOUTS.items() for s in strings]
    return items


def layout_copy(model, tokenizer, settings: ReadingSettings = ReadingSettings(), generate_text=None) -> list[dict]:
    """One row per (layout, kind): the share of strings the greedy continuation copies exactly (the string, then
    a non-alphanumeric character), with its 95% CI. One generation call for every row."""
    if generate_text is None:
        generate_text = _engine_text(model, tokenizer)
    items = layout_items(settings)
    # characters are at most one token each, then one token to show the string has ended
    outs = generate_text([i["prompt"] for i in items], max(LAYOUT_KINDS.values()) + 2) if items else []
    rows = []
    for layout in LAYOUTS:
        for kind in settings.layout_kinds:
            cell = [(i, o) for i, o in zip(items, outs) if (i["layout"], i["kind"]) == (layout, kind)]
            hits = [copied(o, i["string"], exact=True) for i, o in cell]
            rows.append({"layout": layout, "template": LAYOUTS[layout], "kind": kind, "length": LAYOUT_KINDS[kind],
                         "accuracy": proportion(sum(hits), len(hits)),
                         "examples": [{"string": i["string"], "continuation": o} for i, o in cell[:3]]})
    return rows


# ---------------------------------------------------------------- open-book completion

# Frozen held-out wordings: only words the corpus uses, in an arrangement no document has (tests/test_reading.py
# builds the corpus and checks). Unlike NOVEL_TEMPLATES ("hometown", "alma mater"), a miss here is not an
# unknown word.
HELDOUT_TEMPLATES = {
    "birth_city": "So the city where {n} was born is",
    "birth_year": "So the year when {n} was born is",
    "university": "So the university {n} attended is",
    "field": "So the field {n} works in is",
    "employer": "So the organization {n} works for is",
}
PHRASINGS = ("corpus", "novel", "heldout")
# Facts each article of the two-people probe states: two articles of five would outrun the tiny model's
# 128-token training window.
TWO_PEOPLE_FACTS = 3


def _prompt_templates(attribute: str) -> dict[str, str]:
    return {"corpus": CORPUS_TEMPLATES[attribute][0][0], "novel": NOVEL_TEMPLATES[attribute],
            "heldout": HELDOUT_TEMPLATES[attribute]}


def _fresh(rng: random.Random, exclude: frozenset[str]) -> tuple[str, dict[str, str]]:
    while True:
        name, facts = fresh_person(rng)
        if name not in exclude:
            return name, facts


def open_book_items(settings: ReadingSettings = ReadingSettings(), exclude: frozenset[str] = frozenset()) -> list[dict]:
    """Prompts about fresh people (none named in `exclude`, e.g. the fresh people a corpus holds), one per
    attribute and phrasing (PHRASINGS)."""
    rng = random.Random(f"open-book-{settings.seed}")
    items = []
    for _ in range(settings.open_book_people):
        name, facts = _fresh(rng, exclude)
        text = article(name, facts, rng)
        for attribute, value in facts.items():
            for phrasing, template in _prompt_templates(attribute).items():
                items.append({"person": name, "attribute": attribute, "phrasing": phrasing,
                              "golds": [value, *aliases_of(value)], "prompt": f"{text}\n{template.format(n=name)}"})
    return items


def _forms(value: str) -> list[str]:
    return [normalise(v) for v in (value, *aliases_of(value))]


def _confusable(a: dict[str, str], b: dict[str, str]) -> bool:
    """Two people share a value, or one's value begins the other's: a completion could not tell them apart."""
    return any(x.startswith(y) or y.startswith(x) for attribute in a for x in _forms(a[attribute])
               for y in _forms(b[attribute]))


def two_people_items(settings: ReadingSettings = ReadingSettings(), exclude: frozenset[str] = frozenset()) -> list[dict]:
    """Two fresh people (values all distinct), for each attribute two articles of TWO_PEOPLE_FACTS facts that
    both state it, then the canonical prompt about one of them (the first or the second, alternately)."""
    rng = random.Random(f"two-people-{settings.seed}")
    items = []
    for pair in range(settings.two_people_pairs):
        first = _fresh(rng, exclude)
        second = _fresh(rng, exclude | {first[0]})
        while _confusable(first[1], second[1]):
            second = _fresh(rng, exclude | {first[0]})
        for index, attribute in enumerate(first[1]):
            texts = []
            for name, facts in (first, second):
                others = rng.sample(sorted(a for a in facts if a != attribute), TWO_PEOPLE_FACTS - 1)
                texts.append(article(name, {a: facts[a] for a in (attribute, *others)}, rng))
            asked = (pair + index) % 2
            (name, facts), other = (first, second)[asked], (first, second)[1 - asked][1][attribute]
            items.append({"person": name, "attribute": attribute, "position": ("first", "second")[asked],
                          "golds": [facts[attribute], *aliases_of(facts[attribute])],
                          "others": [other, *aliases_of(other)],
                          "prompt": f"{texts[0]}\n{texts[1]}\n{_prompt_templates(attribute)['corpus'].format(n=name)}"})
    return items


def _starts(continuation: str, values: list[str]) -> bool:
    return any(normalise(continuation).startswith(normalise(v)) for v in values)


def _ask(model, tokenizer, items: list[dict], generate_text) -> list[tuple[dict, str]]:
    """(item, greedy continuation) for the items whose prompt fits the model's context."""
    if model is not None and tokenizer is not None:  # a prompt longer than the model's context is not asked
        context = getattr(model.config, "max_position_embeddings", 10**9)
        items = [i for i in items if len(tokenizer(i["prompt"])["input_ids"]) + 9 <= context]
    return list(zip(items, generate_text([i["prompt"] for i in items], 8))) if items else []


def open_book(model, tokenizer, settings: ReadingSettings = ReadingSettings(), exclude: frozenset[str] = frozenset(),
              generate_text=None) -> dict:
    """{phrasing: {"accuracy": proportion, "examples": [...]}}: greedy completions that start with the value."""
    if generate_text is None:
        generate_text = _engine_text(model, tokenizer)
    answered = _ask(model, tokenizer, open_book_items(settings, exclude), generate_text)
    result = {}
    for phrasing in PHRASINGS:
        rows = [(i, o) for i, o in answered if i["phrasing"] == phrasing]
        hits = [_starts(o, i["golds"]) for i, o in rows]
        result[phrasing] = {"accuracy": proportion(sum(hits), len(hits)),
                            "examples": [{"prompt": i["prompt"], "continuation": o, "gold": i["golds"][0]}
                                         for i, o in rows[:3]]}
    return result


def open_book_two(model, tokenizer, settings: ReadingSettings = ReadingSettings(),
                  exclude: frozenset[str] = frozenset(), generate_text=None) -> dict:
    """Two people in one prompt: "accuracy" (the asked person's value), "other" (the other person's value), each
    a proportion, the accuracy by the asked person's position, and examples."""
    if generate_text is None:
        generate_text = _engine_text(model, tokenizer)
    answered = _ask(model, tokenizer, two_people_items(settings, exclude), generate_text)
    hits = [_starts(o, i["golds"]) for i, o in answered]
    other = [_starts(o, i["others"]) for i, o in answered]
    by_position = {}
    for position in ("first", "second"):
        cell = [h for h, (i, _) in zip(hits, answered) if i["position"] == position]
        by_position[position] = proportion(sum(cell), len(cell))
    return {"accuracy": proportion(sum(hits), len(hits)), "other": proportion(sum(other), len(other)),
            "by_position": by_position,
            "examples": [{"prompt": i["prompt"], "continuation": o, "gold": i["golds"][0], "other": i["others"][0]}
                         for i, o in answered[:3]]}


def _engine_text(model, tokenizer):
    def generate_text(texts, max_new_tokens):
        return engine_text(model, tokenizer, texts, SamplingParams(max_new_tokens=max_new_tokens))

    return generate_text


# Pretraining's cut, every eval_every steps: 1.5 s of one core's work on the tiny model (docs/settings-notes.md).
SNAPSHOT = ReadingSettings(induction_rows=8, copy_lengths=(8,), copy_kinds=("digits",), copy_per_cell=40,
                           layout_per_cell=20, open_book_people=12, two_people_pairs=8)


def reading_snapshot(model, tokenizer, world_probes: bool = True, settings: ReadingSettings = SNAPSHOT,
                     allowed_ids=None) -> dict:
    """A few scalars, cheap enough for every pretraining eval and every scaling size: the induction score
    (uniform draw; with `allowed_ids`, the ids the corpus uses, also the corpus-used draw at each length), the
    per-head induction map (layers x heads, on the corpus-used draw when given) and its best head, 8-digit copy
    accuracy, exact copying in the frozen layouts (per layout and kind, and pooled), and (`world_probes`: the
    corpus speaks the world's English) open-book accuracy by phrasing and with two people.

    `allowed_ids`: evals/corpus_stats.corpus_used_ids(RUN/base/data), computed once per run; None: uniform only."""
    was_training = model.training
    model.eval()
    try:
        snapshot = {"induction_score": induction_score(model, settings)["score"]}
        if allowed_ids is not None:
            snapshot.update({f"induction_used_{r['length']}": r["score"]
                             for r in induction_by_length(model, settings, allowed_ids)})
        heads = [[round(w, 4) for w in layer] for layer in induction_heads(model, settings, allowed_ids=allowed_ids)]
        snapshot.update({"induction_heads": heads, "induction_head_best": max(max(layer) for layer in heads),
                         "copy_digits_8": copy_accuracy(model, tokenizer, settings)[0]["accuracy"]["value"]})
        rows = layout_copy(model, tokenizer, settings)
        snapshot.update({f"copy_{r['layout']}_{r['kind']}": r["accuracy"]["value"] for r in rows})
        snapshot["copy_layouts"] = sum(r["accuracy"]["value"] * r["accuracy"]["n"] for r in rows) / max(
            1, sum(r["accuracy"]["n"] for r in rows))
        if world_probes:
            book = open_book(model, tokenizer, settings)
            snapshot.update({f"open_book_{p}": book[p]["accuracy"]["value"] for p in PHRASINGS
                             if book[p]["accuracy"]["n"]})
            two = open_book_two(model, tokenizer, settings)
            if two["accuracy"]["n"]:
                snapshot.update({"open_book_two": two["accuracy"]["value"], "open_book_two_other": two["other"]["value"]})
    finally:
        model.train(was_training)
    return snapshot
