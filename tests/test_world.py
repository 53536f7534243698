"""The world: deterministic, uniquely named, split by person, paraphrased, clean novel prompts."""

import random
import re

import pytest

from lab.errors import LabError
from tasks.world import (
    CORPUS_TEMPLATES,
    NOVEL_TEMPLATES,
    REAL_SURNAMES,
    VALUES,
    WORD_FIRST_NAMES,
    WorldConfig,
    build_world,
    name_space,
)

CFG = WorldConfig(people_per_exposure=10, exposures=(0, 1, 2, 4, 16))


@pytest.fixture(scope="module")
def world():
    return build_world(CFG)


def snapshot(w):
    return [(p.name, p.k, p.split, p.attributes, w.biography(p, 3), [q.__dict__ for q in w.questions(p)])
            for p in w.people]


def test_same_seed_same_world_other_seed_other_world(world):
    assert snapshot(build_world(CFG)) == snapshot(world)
    other = build_world(WorldConfig(seed=1, people_per_exposure=10, exposures=(0, 1, 2, 4, 16)))
    assert [p.name for p in other.people] != [p.name for p in world.people]


def test_default_world_size():
    w = build_world(WorldConfig())
    assert len(w.people) == 360 and len(w.heldout_people()) == 180 and len(w.unseen_people()) == 60


def test_names_are_unique_two_word_and_not_real():
    names = name_space()
    assert len(set(names)) == len(names) > 50_000
    assert all(re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+", n) for n in names)
    firsts, lasts = {n.split()[0] for n in names}, {n.split()[1] for n in names}
    assert not firsts & WORD_FIRST_NAMES and not lasts & REAL_SURNAMES
    assert "Mira Tolvane" in names
    # No value of any attribute shares a word with a name, so graders and name search never confuse them.
    value_words = {w for values in VALUES.values() for v in values for w in re.findall(r"[a-z]+", v.lower())}
    assert not value_words & {w.lower() for w in firsts | lasts}


def test_values_never_contain_each_other():
    values = [v.lower() for vs in VALUES.values() for v in vs]
    assert len(set(values)) == len(values)
    for a in values:
        for b in values:
            assert a == b or not re.search(rf"\b{re.escape(a)}\b", b), (a, b)
    assert all(len(vs) >= 20 for vs in VALUES.values())  # chance accuracy stays low


def test_split_is_by_person_and_stratified_by_exposure(world):
    for split in ("sft", "heldout"):
        assert {p.k for p in world.people if p.split == split} == set(CFG.exposures)
    assert {p.name for p in world.sft_people()}.isdisjoint({p.name for p in world.heldout_people()})
    assert len(world.sft_people()) + len(world.heldout_people()) == len(world.people) == 50
    assert all(p.k == 0 for p in world.unseen_people()) and len(world.unseen_people()) == 10
    # Even a tiny group puts someone in each split.
    tiny = build_world(WorldConfig(people_per_exposure=2, heldout_fraction=0.1, exposures=(0, 1)))
    assert sorted(p.split for p in tiny.people) == ["heldout", "heldout", "sft", "sft"]


def test_biographies_are_paraphrased_and_reordered(world):
    person = next(p for p in world.people if p.k == 16)
    bios = [world.biography(person, v) for v in range(16)]
    assert len(set(bios)) >= 8
    orders = {tuple(sorted(person.attributes, key=lambda a: bio.index(person.attributes[a]))) for bio in bios}
    assert len(orders) >= 4
    for bio in bios:
        assert all(v in bio for v in person.attributes.values())
    assert world.biography(person, 5) == build_world(CFG).biography(build_world(CFG).by_name(person.name), 5)


def test_every_attribute_has_many_corpus_phrasings():
    assert set(CORPUS_TEMPLATES) == set(NOVEL_TEMPLATES) == set(VALUES)
    for templates in CORPUS_TEMPLATES.values():
        assert len({prefix for prefix, _ in templates}) >= 4
        assert all(prefix.count("{n}") == 1 and prefix.index("{n}") < len(prefix) for prefix, _ in templates)


def test_novel_prompts_are_phrasings_the_corpus_never_uses(world):
    corpus_prefixes = {prefix.format(n="X") for templates in CORPUS_TEMPLATES.values() for prefix, _ in templates}
    corpus_words = {w for c in corpus_prefixes for w in c.lower().split()}
    for template in NOVEL_TEMPLATES.values():
        novel = template.format(n="X")
        assert all(novel not in c and c not in novel for c in corpus_prefixes)
        assert set(novel.lower().split()) - corpus_words  # at least one word the corpus templates never use
    person = world.people[-1]
    for attribute in CFG.attributes:
        prompts = world.fact_prompts(person, attribute)
        assert prompts["corpus"] in world.biography(person, 0)  # the canonical phrasing, seen at any k >= 1
        assert not any(prompts["novel"] in world.biography(person, v) for v in range(50))


def test_questions_lookup_and_encyclopedia(world):
    person = world.unseen_people()[0]
    questions = world.questions(person)
    assert [q.attribute for q in questions] == list(CFG.attributes)
    assert all(person.name in q.text and q.text.endswith("?") and q.k == 0 for q in questions)
    assert {q.answer for q in questions} == set(person.attributes.values())
    assert len({q.id for p in world.people for q in world.questions(p)}) == 5 * len(world.people)
    article = world.lookup(person.name.upper())
    assert article == world.encyclopedia(person.name) and all(v in article for v in person.attributes.values())
    assert world.lookup("Nobody Atall") is None
    with pytest.raises(LabError, match="no person named"):
        world.by_name("Nobody Atall")


def test_narratives_are_varied_and_name_only_seen_people(world):
    seen = {p.name for p in world.people if p.k > 0}
    docs = world.narratives(60, random.Random(0))
    assert len(set(docs)) == 60 and len({d.split(",")[0].split()[0] for d in docs}) >= 4
    for doc in docs:
        assert world.names_in(doc) and world.names_in(doc) <= seen
        assert not re.search(r"\bborn\b|\bstudie|\bwork|\bemploy|\bgraduat", doc)
        assert not any(v in doc for a in ("university", "field", "employer") for v in VALUES[a])
    assert docs == world.narratives(60, random.Random(0))


def test_contamination_check_flags_heldout_names_and_questions(world):
    held, sft = world.heldout_people()[0], world.sft_people()[0]
    question = world.questions(held)[1].text
    clean = [f"Q: {q.text} A: {q.answer}" for q in world.questions(sft)] + ["Lisbon is a city.", "1972"]
    assert world.contamination_check(clean) == []
    found = world.contamination_check(clean + [f"Tell me about {held.name.lower()}.", f"Q: {question}"])
    assert any(held.name in v and v.startswith(f"text {len(clean)}:") for v in found)
    assert any(question.lower() in v for v in found)
    # A longer name containing a held-out name's words is a different person, not a leak.
    assert world.contamination_check([f"X{held.name}"]) == []


def test_impossible_configs_are_one_clear_error():
    with pytest.raises(LabError, match="exposures is empty"):
        build_world(WorldConfig(exposures=()))
    with pytest.raises(LabError, match=">= 0"):
        build_world(WorldConfig(exposures=(0, -1)))
    with pytest.raises(LabError, match="unique names"):
        build_world(WorldConfig(people_per_exposure=10**6))
    with pytest.raises(LabError, match="at least 2"):
        build_world(WorldConfig(people_per_exposure=1))
    with pytest.raises(LabError, match="heldout_fraction"):
        build_world(WorldConfig(heldout_fraction=1.0))
    with pytest.raises(LabError, match="unknown world attribute 'shoe_size'"):
        build_world(WorldConfig(attributes=("field", "shoe_size")))
    with pytest.raises(LabError, match="k > 0"):
        build_world(WorldConfig(exposures=(0,))).narratives(3, random.Random(0))
