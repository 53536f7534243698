"""Character-level tasks over real English words: the counting and spelling failures of subword models.

Words come from `wordfreq`'s English list (shipped with the package, nothing downloads), restricted to
lowercase a-z words of 3 to 12 letters and binned by Zipf frequency: "high" (>= 5), "mid" (4 to 5) and
"low" (3 to 4). Rare words are the interesting ones: a BPE tokenizer sees them as fewer, stranger pieces.
Where wordfreq is not installed (its wheel is ~54 MB: a GPU machine with carried wheels, scripts/gpu_check.sh),
the same words come from tasks/english_words.tsv, wordfreq's list written out once (`python -m tasks.spelling`
rewrites it; tests/test_spelling_tasks.py checks the two agree).

Every problem carries three renderings of the same answer in `extras`: "direct" (the bare answer),
"steps" (spell the word out with 1-based positions, then derive; this is also `solution`) and "tool"
(a python snippet whose stdout is the answer, as `tool_code` / `tool_output`, plus the rendered text).
Train and held-out are disjoint by word: a word's split is a hash of the word itself.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path

from lab.errors import LabError
from tasks.corpus import register_source
from tasks.math import SPLITS, Problem, split_of

# wordfreq is imported where it is used: it is optional (WORD_LIST stands in for it) and loads its data files,
# which the presets, importing this module, should not pay for.

BANDS = {"high": (5.0, 99.0), "mid": (4.0, 5.0), "low": (3.0, 4.0)}  # Zipf range [lo, hi)
DIFFICULTY = {"high": 1, "mid": 2, "low": 3}
WORD_RE = re.compile(r"[a-z]{3,12}")
ALPHABET = "abcdefghijklmnopqrstuvwxyz"
WORD_LIST = Path(__file__).with_name("english_words.tsv")  # wordfreq's list, for machines without wordfreq
WORD_LIST_DEPTH = 20000  # how deep into wordfreq's list the file goes (SpellingConfig.max_words' default)


def ranked_words(max_words: int) -> list[tuple[int, str, float]]:
    """(rank, word, zipf) of the a-z words of 3-12 letters among the top max_words English words, most
    frequent first: from wordfreq when installed, else from WORD_LIST (which reaches WORD_LIST_DEPTH)."""
    try:
        from wordfreq import top_n_list, zipf_frequency
    except ImportError:
        if max_words > WORD_LIST_DEPTH:
            raise LabError(f"spelling max_words={max_words} needs the wordfreq package (pip install wordfreq); "
                           f"without it {WORD_LIST.name} holds the top {WORD_LIST_DEPTH}") from None
        rows = (line.split("\t") for line in WORD_LIST.read_text().splitlines() if not line.startswith("#"))
        return [(int(rank), w, float(z)) for rank, w, z in rows if int(rank) < max_words]
    return [(rank, w, zipf_frequency(w, "en")) for rank, w in enumerate(top_n_list("en", max_words))
            if WORD_RE.fullmatch(w)]


@lru_cache(maxsize=8)
def _table(max_words: int) -> dict[str, tuple[tuple[str, float], ...]]:
    """Band -> ((word, zipf), ...) in wordfreq's frequency order, from the top max_words English words."""
    table: dict[str, list[tuple[str, float]]] = {band: [] for band in BANDS}
    for _, w, z in ranked_words(max_words):
        for band, (lo, hi) in BANDS.items():
            if lo <= z < hi:
                table[band].append((w, z))
    return {band: tuple(rows) for band, rows in table.items()}


def write_word_list(path: Path = WORD_LIST) -> int:
    """Write wordfreq's list (rank, word, zipf; a-z words of 3-12 letters in the top WORD_LIST_DEPTH) to `path`."""
    import wordfreq  # noqa: F401  (the source: this must not read the file it writes)

    rows = ranked_words(WORD_LIST_DEPTH)
    header = (f"# wordfreq {version('wordfreq')} top_n_list('en', {WORD_LIST_DEPTH}): rank, word, zipf_frequency "
              "of the a-z words of 3-12 letters; written by `python -m tasks.spelling`\n")
    path.write_text(header + "".join(f"{rank}\t{w}\t{z}\n" for rank, w, z in rows))
    return len(rows)


def _check_band(band: str) -> None:
    if band not in BANDS:
        raise LabError(f"unknown spelling band '{band}'; valid bands are {', '.join(BANDS)}")


def words(band: str, max_words: int = 20000) -> list[str]:
    """The band's words, most frequent first (cached; the list returned is a fresh copy)."""
    _check_band(band)
    return [w for w, _ in _table(max_words)[band]]


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def spelled(word: str) -> str:
    """ "cat" -> "c(1) a(2) t(3)": positions made explicit so the model never has to count in its head."""
    return " ".join(f"{c}({i})" for i, c in enumerate(word, 1))


@dataclass
class Draft:
    """A generator's output: the answer, the steps before the Answer line, and a snippet printing the answer."""
    question: str
    answer: str
    steps: list[str]
    code: str
    extras: dict


# Each generator gets the rng, the word and its band's pool (for tasks that need a second word).

def spell(rng: random.Random, w: str, pool: list[str]) -> Draft:
    return Draft(f'Spell the word "{w}" letter by letter.', " ".join(w), [f"Letters: {spelled(w)}"],
                 f'w = "{w}"\nprint(" ".join(w))', {})


def count_letter(rng: random.Random, w: str, pool: list[str]) -> Draft:
    # mostly letters that occur, sometimes one that does not: "0" must be a learnable answer too
    letter = rng.choice(w) if rng.random() < 0.8 else rng.choice([c for c in ALPHABET if c not in w])
    hits = [f"{c}({i})" for i, c in enumerate(w, 1) if c == letter]
    steps = [f"Letters: {spelled(w)}", f"Matches for {letter}: {' '.join(hits) if hits else 'none'}",
             f"Count: {len(hits)}"]
    return Draft(f'How many times does the letter {letter} appear in "{w}"?', str(len(hits)), steps,
                 f'w = "{w}"\nprint(w.count("{letter}"))', {"letter": letter})


def letter_at(rng: random.Random, w: str, pool: list[str]) -> Draft:
    i = rng.randint(1, len(w))
    steps = [f"Letters: {spelled(w)}", f"Position {i}: {w[i - 1]}({i})"]
    return Draft(f'What is the {ordinal(i)} letter of the word "{w}"?', w[i - 1], steps,
                 f'w = "{w}"\nprint(w[{i - 1}])', {"position": i})


def reverse(rng: random.Random, w: str, pool: list[str]) -> Draft:
    back = " ".join(f"{w[i - 1]}({i})" for i in range(len(w), 0, -1))
    return Draft(f'Write the word "{w}" backwards.', w[::-1], [f"Letters: {spelled(w)}", f"Backwards: {back}",
                 f"Joined: {w[::-1]}"], f'w = "{w}"\nprint(w[::-1])', {})


def first_letter(rng: random.Random, w: str, pool: list[str]) -> Draft:
    return Draft(f'What is the first letter of the word "{w}"?', w[0], [f"Letters: {spelled(w)}", f"First: {w[0]}(1)"],
                 f'w = "{w}"\nprint(w[0])', {})


def last_letter(rng: random.Random, w: str, pool: list[str]) -> Draft:
    steps = [f"Letters: {spelled(w)}", f"Last: {w[-1]}({len(w)})"]
    return Draft(f'What is the last letter of the word "{w}"?', w[-1], steps,
                 f'w = "{w}"\nprint(w[-1])', {})


def insert_letter(rng: random.Random, w: str, pool: list[str]) -> Draft:
    i, letter = rng.randint(1, len(w) + 1), rng.choice(ALPHABET)
    new = w[:i - 1] + letter + w[i - 1:]
    where = f"before {w[i - 1]}({i})" if i <= len(w) else f"after the last letter {w[-1]}({len(w)})"
    steps = [f"Letters: {spelled(w)}", f"Put {letter} {where}: {' '.join(new)}", f"Joined: {new}"]
    question = f'Insert the letter {letter} into "{w}" so that it becomes the {ordinal(i)} letter. What is the word now?'
    return Draft(question, new, steps, f'w = "{w}"\nprint(w[:{i - 1}] + "{letter}" + w[{i - 1}:])',
                 {"letter": letter, "position": i})


def delete_letter(rng: random.Random, w: str, pool: list[str]) -> Draft:
    i = rng.randint(1, len(w))
    new = w[:i - 1] + w[i:]
    steps = [f"Letters: {spelled(w)}", f"Remove {w[i - 1]}({i}): {' '.join(new)}", f"Joined: {new}"]
    return Draft(f'Delete the {ordinal(i)} letter of "{w}". What is left?', new, steps,
                 f'w = "{w}"\nprint(w[:{i - 1}] + w[{i}:])', {"position": i})


def swap_adjacent(rng: random.Random, w: str, pool: list[str]) -> Draft:
    i = rng.randint(1, len(w) - 1)
    new = w[:i - 1] + w[i] + w[i - 1] + w[i + 1:]
    steps = [f"Letters: {spelled(w)}", f"Swap {w[i - 1]}({i}) and {w[i]}({i + 1}): {' '.join(new)}", f"Joined: {new}"]
    question = f'Swap the {ordinal(i)} and {ordinal(i + 1)} letters of "{w}". What is the result?'
    return Draft(question, new, steps, f'w = "{w}"\nprint(w[:{i - 1}] + w[{i}] + w[{i - 1}] + w[{i + 1}:])',
                 {"position": i})


def compare_length(rng: random.Random, w: str, pool: list[str]) -> Draft:
    # ties need their own share or "same" is never learned; a small sample finds a same-length word cheaply
    ties = [v for v in rng.sample(pool, min(len(pool), 64)) if len(v) == len(w)] if rng.random() < 0.25 else []
    other = next((v for v in ties if v not in (w, "same")), w)
    while other in (w, "same"):  # the word "same" would be ambiguous with the tie answer
        other = rng.choice(pool)
    answer = w if len(w) > len(other) else other if len(other) > len(w) else "same"
    verdict = f"Both have {len(w)} letters." if answer == "same" else \
        f"{max(len(w), len(other))} > {min(len(w), len(other))}, so {answer} is longer."
    steps = [f"{w}: {spelled(w)}, {len(w)} letters", f"{other}: {spelled(other)}, {len(other)} letters", verdict]
    question = f'Which word is longer, "{w}" or "{other}"? Answer with the longer word, or "same" if equally long.'
    code = f'a, b = "{w}", "{other}"\nprint(a if len(a) > len(b) else b if len(b) > len(a) else "same")'
    return Draft(question, answer, steps, code, {"word2": other})


TASKS: dict[str, Callable[[random.Random, str, list[str]], Draft]] = {
    "spell": spell,
    "count_letter": count_letter,
    "letter_at": letter_at,
    "reverse": reverse,
    "first_letter": first_letter,
    "last_letter": last_letter,
    "insert_letter": insert_letter,
    "delete_letter": delete_letter,
    "swap_adjacent": swap_adjacent,
    "compare_length": compare_length,
}


@dataclass
class SpellingConfig:
    seed: int = 0
    tasks: tuple[str, ...] = tuple(TASKS)
    bands: tuple[str, ...] = ("high", "mid", "low")
    max_words: int = 20000  # how deep into wordfreq's frequency list to look


def generate(cfg: SpellingConfig, n: int, split: str = "train") -> list[Problem]:
    """n problems of one split, deterministic in (cfg, split); a held-out word never appears in train."""
    unknown = [t for t in cfg.tasks if t not in TASKS]
    if unknown or not cfg.tasks:
        raise LabError(f"unknown spelling task(s) {unknown or '(none given)'}; valid tasks are {', '.join(TASKS)}")
    if not cfg.bands:
        raise LabError(f"no spelling bands given; valid bands are {', '.join(BANDS)}")
    for band in cfg.bands:
        _check_band(band)
    if split not in SPLITS:
        raise LabError(f"unknown split '{split}'; valid splits are {', '.join(SPLITS)}")
    if cfg.max_words < 1:
        raise LabError(f"max_words must be positive, got {cfg.max_words}")
    pools = {band: [w for w in words(band, cfg.max_words) if split_of(w) == split] for band in cfg.bands}
    for band, pool in pools.items():
        if len(pool) < 3:
            raise LabError(f"band '{band}' has fewer than 3 {split} words in the top {cfg.max_words}; raise max_words")
    zipfs = {w: z for band in cfg.bands for w, z in _table(cfg.max_words)[band]}
    rng = random.Random(cfg.seed)
    out = []
    for i in range(n):
        task, band = rng.choice(cfg.tasks), rng.choice(cfg.bands)
        w = rng.choice(pools[band])
        while task == "compare_length" and w == "same":  # would read as the tie answer
            w = rng.choice(pools[band])
        d = TASKS[task](rng, w, pools[band])
        output = d.answer + "\n"  # exactly what print() writes
        steps = "\n".join(d.steps + [f"Answer: {d.answer}"])
        tool = f"```python\n{d.code}\n```\nOutput: {d.answer}\nAnswer: {d.answer}"
        extras = {"word": w, "band": band, "zipf": zipfs[w], "length": len(w), "direct": d.answer, "steps": steps,
                  "tool": tool, "tool_code": d.code, "tool_output": output} | d.extras
        out.append(Problem(id=f"spelling-{split}-{cfg.seed}-{i:06d}", task=task, difficulty=DIFFICULTY[band],
                           question=d.question, answer=d.answer, solution=steps, extras=extras))
    return out


@register_source("spelling")
def spelling_documents(n: int, rng: random.Random) -> list[str]:
    """Step-by-step spelling walkthroughs for the pretraining mix, train-split words only."""
    return [f"{p.question}\n{p.solution}" for p in generate(SpellingConfig(seed=rng.randrange(2**31)), n)]


if __name__ == "__main__":
    print(f"{write_word_list()} words written to {WORD_LIST}")
