"""The world and its corpus: deterministic, split by person, exposure exactly as assigned."""

import json
import random

import pytest

from lab.errors import LabError
from tasks.corpus import CorpusConfig, build_corpus, load_corpus, load_text_files, save_corpus
from tasks.world import CORPUS_TEMPLATES, NOVEL_TEMPLATES, WorldConfig, build_world

CFG = WorldConfig(people_per_exposure=10, exposures=(0, 1, 2, 4, 16))


@pytest.fixture(scope="module")
def world():
    return build_world(CFG)


def test_same_seed_same_world_other_seed_other_world(world):
    again = build_world(CFG)
    assert [(p.name, p.k, p.split, p.attributes) for p in again.people] == \
           [(p.name, p.k, p.split, p.attributes) for p in world.people]
    assert again.biography(again.people[5], 3) == world.biography(world.people[5], 3)
    other = build_world(WorldConfig(seed=1, people_per_exposure=10, exposures=(0, 1, 2, 4, 16)))
    assert [p.name for p in other.people] != [p.name for p in world.people]


def test_names_are_unique_and_splits_span_every_exposure(world):
    assert len({p.name for p in world.people}) == len(world.people) == 50
    for split in ("sft", "heldout"):
        assert {p.k for p in world.people if p.split == split} == set(CFG.exposures)
    assert {p.name for p in world.sft_people()}.isdisjoint({p.name for p in world.heldout_people()})


def test_unseen_people_never_appear_and_exposure_is_exact(world):
    train, heldout, manifest = build_corpus(world, CorpusConfig(narratives=50, heldout_docs=10))
    text = "\n".join(d["text"] for d in train + heldout)
    for p in world.unseen_people():
        assert p.name not in text
    for p in world.people:
        assert manifest["exposure"][p.name] == p.k
        assert sum(d["person"] == p.name for d in train) == p.k
    assert not any(d["source"] == "biography" for d in heldout)


def test_biographies_are_paraphrased_and_reordered(world):
    person = next(p for p in world.people if p.k == 16)
    bios = [world.biography(person, v) for v in range(16)]
    assert len(set(bios)) >= 8
    assert len({b.split(".")[0] for b in bios}) >= 3  # different opening sentences
    for bio in bios:
        assert all(v in bio for v in person.attributes.values())


def test_novel_prompts_are_phrasings_the_corpus_never_uses():
    corpus_prefixes = {prefix.format(n="X") for templates in CORPUS_TEMPLATES.values() for prefix, _ in templates}
    for template in NOVEL_TEMPLATES.values():
        novel = template.format(n="X")
        assert all(novel not in c and c not in novel for c in corpus_prefixes)


def test_contamination_check_flags_heldout_names_and_questions(world):
    held = world.heldout_people()[0]
    question = world.questions(held)[0].text
    sft = world.sft_people()[0]
    clean = [f"Q: {world.questions(sft)[0].text} A: {sft.attributes['birth_city']}", f"Lisbon is a city."]
    assert world.contamination_check(clean) == []
    found = world.contamination_check(clean + [f"Tell me about {held.name}.", question])
    assert len(found) >= 2 and any(held.name in v for v in found)


def test_impossible_configs_are_one_clear_error():
    with pytest.raises(LabError, match="exposures is empty"):
        build_world(WorldConfig(exposures=()))
    with pytest.raises(LabError, match="unique names"):
        build_world(WorldConfig(people_per_exposure=10**6))
    with pytest.raises(LabError, match="unknown corpus source"):
        build_corpus(build_world(CFG), CorpusConfig(extra_sources={"poetry": 3}))


def test_corpus_round_trip_and_user_files(world, tmp_path):
    train, heldout, manifest = build_corpus(world, CorpusConfig(narratives=5, heldout_docs=2))
    save_corpus(tmp_path / "data", train, heldout, manifest)
    loaded = load_corpus(tmp_path / "data")
    assert loaded["train"]["text"] == [d["text"] for d in train]
    assert json.loads((tmp_path / "data" / "manifest.json").read_text())["exposure"] == manifest["exposure"]
    (tmp_path / "u").mkdir()
    (tmp_path / "u" / "a.txt").write_text("A whole document.")
    (tmp_path / "u" / "b.jsonl").write_text('{"text": "one"}\nnot json\n{"nope": 1}\n{"text": "two"}\n')
    docs = load_text_files([tmp_path / "u"])
    assert sorted(d["text"] for d in docs) == ["A whole document.", "one", "two"]
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(LabError, match="not UTF-8"):
        load_text_files([tmp_path / "bad.txt"])
    with pytest.raises(LabError, match="does not exist"):
        load_text_files([tmp_path / "missing"])


def test_narratives_name_only_seen_people(world):
    seen = {p.name for p in world.people if p.k > 0}
    unseen = {p.name for p in world.unseen_people()}
    for doc in world.narratives(30, random.Random(0)):
        assert not any(name in doc for name in unseen)
        assert any(name in doc for name in seen)
