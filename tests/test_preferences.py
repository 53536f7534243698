"""Preference data: gold-labelled pairs of the policy's answers, SFT people only, split by person, validated."""

import random

import pytest
from datasets import Dataset, DatasetDict

from lab.errors import LabError
from rewards import preferences
from rewards.preferences import (
    build_preferences,
    label,
    load_preferences,
    preference_probability,
    save_preferences,
    validate_preferences,
)
from tasks.world import WorldConfig, build_world

WORLD = build_world(WorldConfig(people_per_exposure=6, exposures=(0, 1, 16)))
HELDOUT = {p.name for p in WORLD.heldout_people()}


def scripted_sampler(monkeypatch, answers_for):
    """Replace the engine: each prompt gets the answers `answers_for(person, prompt)` returns (finished)."""
    def fake(model, tokenizer, prompts, samples, temperature, max_new_tokens, seed, batch_size=64):
        out = []
        for prompt in prompts:
            (name,) = WORLD.names_in(prompt)
            out.append([(a, True) for a in answers_for(WORLD.by_name(name), prompt)][:samples])
        return out

    monkeypatch.setattr(preferences, "sample_responses", fake)


def varied_answers(person, prompt):
    right = f"Was born in the city of {person.attributes['birth_city']}."
    return [right, right, "I don't know who that is.", "Was born in the city of Atlantis and in Lisbon and in Oslo."]


def test_pairs_come_from_sft_people_with_tr_format_and_a_person_split(monkeypatch):
    scripted_sampler(monkeypatch, varied_answers)
    data, stats = build_preferences(None, None, WORLD, pairs=40, label_mode="argmax", heldout_share=0.3)
    assert set(data) == {"train", "test"} and stats["pairs"] == 40 == len(data["train"]) + len(data["test"])
    people = {s: set(data[s]["person"]) for s in data}
    assert people["train"] and people["test"] and not people["train"] & people["test"]
    assert not (people["train"] | people["test"]) & HELDOUT
    row = data["train"][0]
    assert row["prompt"][0]["role"] == "user" and row["person"] in row["prompt"][0]["content"]
    assert row["chosen"][0]["role"] == row["rejected"][0]["role"] == "assistant"
    assert all(c > r for c, r in zip(data["train"]["gold_chosen"], data["train"]["gold_rejected"]))  # argmax
    assert stats["identical"] > 0  # the duplicated right answer was never paired with itself


def test_ties_and_identical_answers_are_dropped_and_no_pairs_is_an_error(monkeypatch):
    scripted_sampler(monkeypatch, lambda p, q: ["Got it.", "OK, noted.", "Got it.", "Thanks."])  # all gold 0
    with pytest.raises(LabError, match="no usable preference pairs"):
        build_preferences(None, None, WORLD, pairs=4, max_rounds=2)


def test_answers_naming_a_heldout_person_are_dropped(monkeypatch):
    intruder = sorted(HELDOUT)[0]
    scripted_sampler(monkeypatch, lambda p, q: [f"{intruder} was born in Oslo."] + varied_answers(p, q)[1:])
    data, stats = build_preferences(None, None, WORLD, pairs=10)
    texts = [m["content"] for s in data.values() for col in ("chosen", "rejected") for ms in s[col] for m in ms]
    assert stats["dropped_heldout_name"] > 0 and not any(intruder in t for t in texts)


def test_bradley_terry_labels_follow_the_gold_gap_and_noise_flips_them():
    rng = random.Random(0)
    draws = [label(0.2, 0.0, rng, "bt", temperature=0.1) for _ in range(4000)]
    assert sum(draws) / len(draws) == pytest.approx(preference_probability(0.2, 0.0, 0.1), abs=0.03)  # ~0.88
    assert all(label(0.2, 0.0, rng, "argmax") for _ in range(100))
    flipped = [label(1.0, 0.0, rng, "argmax", noise=0.25) for _ in range(4000)]
    assert sum(flipped) / len(flipped) == pytest.approx(0.75, abs=0.03)


def test_bad_settings_are_one_clear_error():
    for kwargs, message in [({"label_mode": "vote"}, "label_mode"), ({"samples_per_prompt": 1}, "at least 2"),
                            ({"label_noise": 0.7}, "label_noise"), ({"label_temperature": 0}, "label_temperature")]:
        with pytest.raises(LabError, match=message):
            build_preferences(None, None, WORLD, **kwargs)


def pairs(chosen, rejected, prompt="Tell me about X."):
    return Dataset.from_dict({"prompt": [[{"role": "user", "content": prompt}]],
                              "chosen": [[{"role": "assistant", "content": chosen}]],
                              "rejected": [[{"role": "assistant", "content": rejected}]]})


def test_validation_refuses_identical_empty_and_incomplete_pairs(tmp_path):
    validate_preferences(DatasetDict({"train": pairs("Was born in Oslo.", "Got it.")}))
    with pytest.raises(LabError, match="same text"):
        validate_preferences(pairs("Got it.", " Got it. "))
    with pytest.raises(LabError, match="empty rejected"):
        validate_preferences(pairs("Got it.", "   "))
    with pytest.raises(LabError, match="empty prompt"):
        validate_preferences(pairs("Got it.", "No.", prompt=""))
    with pytest.raises(LabError, match="lacks the column"):
        validate_preferences(pairs("a", "b").remove_columns("rejected"))
    with pytest.raises(LabError, match="same text"):  # plain-text preference format too
        validate_preferences(Dataset.from_dict({"prompt": ["Hi"], "chosen": ["x"], "rejected": ["x"]}))


def test_save_and_load_round_trip_and_a_bad_file_is_refused_at_load(tmp_path):
    data = DatasetDict({"train": pairs("Was born in Oslo.", "Got it."), "test": pairs("Got it.", "No.")})
    save_preferences(data, tmp_path / "prefs")
    assert load_preferences(tmp_path / "prefs")["train"][0] == data["train"][0]
    pairs("Same.", "Same.").save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(LabError, match="same text"):
        load_preferences(tmp_path / "bad")
    with pytest.raises(LabError, match="holds no preference data"):
        load_preferences(tmp_path / "missing")
