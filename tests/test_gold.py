"""The gold judge: right facts beat missing ones, missing beat invented ones, and style costs a little."""

import pytest

from rewards.gold import GoldWeights, extract_claims, gold_reward_fn, gold_score
from tasks.chat import ANSWER_TEMPLATES
from tasks.world import CORPUS_TEMPLATES, ENCYCLOPEDIA_LABELS, Person, World, WorldConfig

MIRA = Person("Mira Tolvane", k=8, split="sft", attributes={
    "birth_city": "Krakow", "birth_year": "1970", "university": "the University of Almsby", "field": "mathematics",
    "employer": "Marrow and Finch"})
ZONA = Person("Zona Fenlund", k=0, split="sft", attributes={
    "birth_city": "Oslo", "birth_year": "1955", "university": "Kessmoor College", "field": "botany",
    "employer": "Zephyr Rail"})
WORLD = World(WorldConfig(), [MIRA, ZONA])

ALL_RIGHT = ("Mira Tolvane was born in the city of Krakow in 1970. She studied at the University of Almsby, "
             "works in the field of mathematics and works for Marrow and Finch.")
SOME_RIGHT = "Mira Tolvane was born in Krakow. She studied at the University of Almsby."
ONE_WRONG = "Mira Tolvane was born in the city of Lisbon."
INVENTED = ("Mira Tolvane was born in Lisbon in 1988. She studied at Greyfen University, works in the field of "
            "botany and is employed by Zephyr Rail.")


def total(response, person="Mira Tolvane", **kw):
    return gold_score(WORLD, person, response, **kw).total


def test_all_right_beats_some_right_beats_one_wrong_beats_invented_everything():
    scores = [gold_score(WORLD, "Mira Tolvane", r) for r in (ALL_RIGHT, SOME_RIGHT, ONE_WRONG, INVENTED)]
    assert [s.total for s in scores] == sorted((s.total for s in scores), reverse=True)
    assert len({s.total for s in scores}) == 4
    assert (scores[0].correct, scores[0].wrong, scores[0].coverage) == (5, 0, 1.0)
    assert (scores[1].correct, scores[3].wrong) == (2, 5)
    assert scores[0].total == pytest.approx(1.0)


def test_hallucination_is_worse_than_silence_and_refusing_an_unseen_person_is_right():
    assert total(ONE_WRONG) < total("I don't know who that is.") == 0.0 < total(SOME_RIGHT)
    assert total("I don't know who that is.", "Zona Fenlund") == pytest.approx(1.0)
    assert total("Zona Fenlund was born in Lisbon.", "Zona Fenlund") < 0
    refusal = gold_score(WORLD, "Zona Fenlund", "Sorry, I don't know who that is.")
    assert refusal.refusal and not refusal.knowable
    # a "refusal" that still makes claims is not one
    assert not gold_score(WORLD, "Mira Tolvane", "I don't know, but she was born in Lisbon.").refusal


def test_repetition_and_rambling_lower_the_score():
    once = "Mira Tolvane was born in Krakow."
    assert total(once + " " + once) < total(once)
    assert total(once + " The birthplace of Mira Tolvane is Krakow.") < total(once)  # the same fact in other words
    rambling = once + " She likes long walks by the river and the sound of old trains at night." * 5
    assert total(rambling) < total(once)
    scored = gold_score(WORLD, "Mira Tolvane", once + " " + once)
    assert scored.repeats == 1 and scored.correct == 1


def test_aliases_case_and_accents_are_accepted():
    for text in ("Mira Tolvane was born in Kraków.", "MIRA TOLVANE WAS BORN IN CRACOW.", "born in krakow."):
        s = gold_score(WORLD, "Mira Tolvane", text)
        assert (s.correct, s.wrong) == (1, 0), text
    s = gold_score(WORLD, "Mira Tolvane", "She works for Marrow & Finch and works in the field of maths. "
                                          "Graduated from University of Almsby.")
    assert (s.correct, s.wrong) == (3, 0)


def test_every_world_phrasing_states_its_fact():
    for attribute, templates in CORPUS_TEMPLATES.items():
        value = MIRA.attributes[attribute]
        phrasings = [f"{p.format(n=MIRA.name)} {value}{s}" for p, s in templates]
        phrasings += [ANSWER_TEMPLATES[attribute].format(v=value), f"{ENCYCLOPEDIA_LABELS[attribute]}: {value}"]
        for text in phrasings:
            assert [(c.attribute, c.value) for c in extract_claims(text)] == [(attribute, value)], text
    article = WORLD.encyclopedia("Mira Tolvane")
    assert gold_score(WORLD, "Mira Tolvane", article).correct == 5


def test_a_value_without_an_attribute_cue_is_no_claim():
    assert extract_claims("Lisbon. 1988. Answer: Zephyr Rail.") == []
    assert extract_claims("They took a ferry to Oslo.") == []


def test_format_special_tokens_unfinished_and_empty_answers():
    clean = "Mira Tolvane was born in Krakow."
    assert total("<|tool_call|>lookup\n" + clean) < total(clean)
    assert total(clean, finished=False) < total(clean)
    assert total("Mira Tolvane was born in Krakow and") < total(clean)
    assert total("") < total("I don't know who that is.")


def test_weights_change_the_score_and_the_judge_is_deterministic():
    harsh = GoldWeights(wrong=5.0)
    assert gold_score(WORLD, "Mira Tolvane", ONE_WRONG, weights=harsh).total == pytest.approx(-1.0)
    assert gold_score(WORLD, "Mira Tolvane", INVENTED) == gold_score(WORLD, "Mira Tolvane", INVENTED)


def test_trl_reward_function_finds_the_person_by_column_or_by_name():
    fn = gold_reward_fn(WORLD)
    completions = [[{"role": "assistant", "content": ALL_RIGHT}], ONE_WRONG]
    by_name = fn(["Tell me about Mira Tolvane.", [{"role": "user", "content": "Who is Mira Tolvane?"}]], completions)
    by_column = fn(["a", "b"], completions, person=["Mira Tolvane", "Mira Tolvane"])
    assert by_name == by_column == [total(ALL_RIGHT), total(ONE_WRONG)]
    assert fn(["Tell me about nobody."], ["Hi."]) == [None]
