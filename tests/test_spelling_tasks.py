"""Spelling tasks: real words by frequency band, disjoint by word, answers re-derived, tool snippets really run."""

import random
import re
import subprocess
import sys

import pytest
from wordfreq import zipf_frequency

from lab.errors import LabError
from tasks.math import split_of
from tasks.spelling import BANDS, TASKS, SpellingConfig, generate, ordinal, words

CFG = SpellingConfig(seed=5)


@pytest.fixture(scope="module")
def train():
    return generate(CFG, 1500)


@pytest.fixture(scope="module")
def heldout():
    return generate(CFG, 300, split="heldout")


def gold(p) -> str:
    """The answer re-derived with plain Python from extras, independently of the generator's code."""
    e, w = p.extras, p.extras["word"]
    letters = list(w)
    if p.task == "spell":
        return " ".join(letters)
    if p.task == "count_letter":
        return str(sum(c == e["letter"] for c in letters))
    if p.task == "letter_at":
        return letters[e["position"] - 1]
    if p.task == "reverse":
        return "".join(reversed(letters))
    if p.task == "first_letter":
        return letters[0]
    if p.task == "last_letter":
        return letters[len(letters) - 1]
    if p.task == "insert_letter":
        letters.insert(e["position"] - 1, e["letter"])
        return "".join(letters)
    if p.task == "delete_letter":
        del letters[e["position"] - 1]
        return "".join(letters)
    if p.task == "swap_adjacent":
        i = e["position"] - 1
        letters[i], letters[i + 1] = letters[i + 1], letters[i]
        return "".join(letters)
    assert p.task == "compare_length"
    a, b = w, e["word2"]
    return "same" if len(a) == len(b) else max((a, b), key=len)


def test_every_band_has_real_words_in_its_frequency_range():
    seen = set()
    for band, (lo, hi) in BANDS.items():
        ws = words(band)
        assert len(ws) > 500 and len(set(ws)) == len(ws)
        assert all(re.fullmatch(r"[a-z]{3,12}", w) for w in ws)
        assert all(lo <= zipf_frequency(w, "en") < hi for w in random.Random(0).sample(ws, 50))
        assert seen.isdisjoint(ws)
        seen |= set(ws)
    # cached, and a caller mutating its copy cannot corrupt the cache
    first = words("mid")
    first.clear()
    assert words("mid") == words("mid") and len(words("mid")) > 500


def test_same_seed_same_problems_other_seed_others(train):
    assert generate(CFG, 200) == train[:200]
    assert generate(CFG, 50, "heldout") == generate(CFG, 50, "heldout")
    assert [p.question for p in generate(SpellingConfig(seed=6), 200)] != [p.question for p in train[:200]]


def test_train_and_heldout_share_no_word(train, heldout):
    def used(problems):
        return {p.extras["word"] for p in problems} | {p.extras["word2"] for p in problems if "word2" in p.extras}

    assert used(train).isdisjoint(used(heldout))
    assert all(split_of(w) == "train" for w in used(train))
    assert all(split_of(w) == "heldout" for w in used(heldout))
    assert {p.task for p in heldout} == set(TASKS) and {p.extras["band"] for p in heldout} == set(BANDS)


def test_every_answer_rederived_and_every_rendering_consistent(train, heldout):
    for p in train + heldout:
        e = p.extras
        assert p.answer == gold(p) == e["direct"], (p.question, e)
        assert p.solution == e["steps"] and p.solution.split("\n")[-1] == f"Answer: {p.answer}"
        assert f"{e['word'][0]}(1)" in p.solution and f"{e['word'][-1]}({len(e['word'])})" in p.solution
        assert e["tool_output"] == p.answer + "\n" and e["tool_code"] in e["tool"]
        assert e["tool"].split("\n")[-1] == f"Answer: {p.answer}"
        assert e["length"] == len(e["word"]) and e["word"] in p.question
        lo, hi = BANDS[e["band"]]
        assert lo <= e["zipf"] < hi and p.difficulty == {"high": 1, "mid": 2, "low": 3}[e["band"]]


def test_tasks_cover_their_edge_cases(train):
    answers = {(p.task, p.answer) for p in train}
    assert ("count_letter", "0") in answers and ("compare_length", "same") in answers
    positions = {p.extras["position"] - len(p.extras["word"]) for p in train if p.task == "insert_letter"}
    assert 1 in positions  # appending after the last letter is a valid insert
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23)] == \
           ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd"]


def test_tool_snippets_print_exactly_their_expected_output(train, heldout):
    for p in random.Random(0).sample(train + heldout, 20):
        run = subprocess.run([sys.executable, "-c", p.extras["tool_code"]], capture_output=True, text=True, timeout=10)
        assert run.returncode == 0 and run.stdout == p.extras["tool_output"], (p.extras["tool_code"], run.stderr)


def test_bad_config_raises_lab_error():
    with pytest.raises(LabError, match="count_letter"):
        generate(SpellingConfig(tasks=("rhyme",)), 5)
    with pytest.raises(LabError, match="high, mid, low"):
        generate(SpellingConfig(bands=("rare",)), 5)
    with pytest.raises(LabError, match="high, mid, low"):
        words("rare")
    with pytest.raises(LabError, match="split"):
        generate(CFG, 5, split="dev")
    with pytest.raises(LabError, match="max_words"):
        generate(SpellingConfig(bands=("low",), max_words=50), 5)



def test_the_shipped_word_list_is_wordfreqs_own(monkeypatch):
    """tasks/english_words.tsv stands in for wordfreq where it is not installed (the GPU check's machine):
    the same words, ranks and Zipf values, so the problems are the same with or without the package."""
    import tasks.spelling as spelling

    with_wordfreq = spelling.ranked_words(20000)
    problems = generate(CFG, 200, split="heldout")
    monkeypatch.setitem(sys.modules, "wordfreq", None)  # `import wordfreq` now raises ImportError
    spelling._table.cache_clear()
    try:
        assert spelling.ranked_words(20000) == with_wordfreq
        assert spelling.ranked_words(5000) == [r for r in with_wordfreq if r[0] < 5000]
        assert generate(CFG, 200, split="heldout") == problems
        with pytest.raises(LabError, match="needs the wordfreq package"):
            spelling.ranked_words(30000)
    finally:
        spelling._table.cache_clear()  # later tests see wordfreq's table again
