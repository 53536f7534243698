"""The knowledge-vs-exposure grader (evals/knowledge.py): what counts as knowing a fact, and as inventing one."""

import pytest

import evals.knowledge as knowledge
from evals.knowledge import grade, summarize
from tasks.world import VALUES, WorldConfig, build_world

CITIES = VALUES["birth_city"]


@pytest.mark.parametrize("completion,correct", [
    (f" {CITIES[0]}.", True),
    (f" {CITIES[0].upper()}, where she grew up", True),  # case and punctuation do not matter
    (f" {CITIES[0]}ia and beyond", False),  # a longer word is not the value
    (f" the city of {CITIES[0]}", False),  # the value must come first: the prompt ends where it goes
    ("", False),
])
def test_a_completion_is_correct_when_it_names_the_gold_value_first_as_whole_words(completion, correct):
    assert grade(completion, CITIES[0], CITIES)["correct"] is correct


def test_a_wrong_value_of_the_right_kind_is_plausible_and_gibberish_is_not():
    assert grade(f" {CITIES[1]}", CITIES[0], CITIES) == {"correct": False, "plausible": True}
    assert grade(" xq zzv", CITIES[0], CITIES) == {"correct": False, "plausible": False}
    assert grade(" 19880", "1988", VALUES["birth_year"])["correct"] is False  # not the year 1988


def test_probe_grades_every_prompt_and_summarize_counts_inventions_by_exposure(monkeypatch):
    world = build_world(WorldConfig(exposures=(0, 4), people_per_exposure=2, attributes=("birth_city",)))
    known = {p.name for p in world.people if p.k == 4}

    def answers(model, tokenizer, prompts, params):  # the known people's facts right, a wrong city for the rest
        out = []
        for prompt in prompts:
            person = next(p for p in world.people if p.name in prompt)
            right = person.attributes["birth_city"]
            out.append(f" {right}." if person.name in known else f" {next(c for c in CITIES if c != right)}.")
        return out

    monkeypatch.setattr(knowledge, "generate_text", answers)
    tokenizer = type("Tokenizer", (), {"eos_token_id": 0})()
    items = knowledge.probe(None, tokenizer, world)
    assert len(items) == len(world.people) * 2  # a corpus and a novel phrasing each
    rows = {(r["k"], r["phrasing"]): r for r in summarize(items)}
    for phrasing in ("corpus", "novel"):
        assert rows[(4, phrasing)]["accuracy"]["value"] == 1.0 and rows[(4, phrasing)]["confident_wrong"]["value"] == 0
        assert rows[(0, phrasing)]["accuracy"]["value"] == 0 and rows[(0, phrasing)]["confident_wrong"]["value"] == 1.0
        assert rows[(0, phrasing)]["accuracy"]["n"] == 2
