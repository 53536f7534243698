"""The world-question rewards (rewards/world_answers.py): right +1, refusal 0, wrong -1 for `penalised`, and
right 1, anything else 0 for `zero_one`, read from TRL's `answer` column and resolved by name from the registry."""

import pytest

from lab.cli.options import preset_named
from lab.errors import LabError
from rewards.registry import get_rewards
from rewards.world_answers import penalised, zero_one

PROMPTS = ["Where was Mira Tolvane born?"] * 3


@pytest.mark.parametrize("completion, value, scores", [
    ("Mira Tolvane was born in Krakow.", "Krakow", (1.0, 1.0)),
    ("She was born in KRAKOW", "Krakow", (1.0, 1.0)),  # case does not matter
    ("I don't know who that is.", "Krakow", (0.0, 0.0)),
    ("I don\u2019t know.", "Krakow", (0.0, 0.0)),  # a typographic apostrophe is still a refusal
    ("She was born in Lisbon.", "Krakow", (-1.0, 0.0)),
    ("She was born in Cracow.", "Krakow", (1.0, 1.0)),  # an alias of the value (tasks.world.ALIASES)
    ("She was born in Kraków.", "Krakow", (1.0, 1.0)),
    ("She studied at University of Almsby.", "the University of Almsby", (1.0, 1.0)),  # "the X" as "X"
    ("She was born in Krakowiec.", "Krakow", (-1.0, 0.0)),  # the value as whole words, not inside another
    ("She was born in 19701.", "1970", (-1.0, 0.0)),
    ("I don't know, maybe Krakow.", "Krakow", (0.0, 0.0)),  # a refusal is never right
    ("", "Krakow", (-1.0, 0.0)),
])
def test_right_refusal_and_wrong_answers(completion, value, scores):
    assert (penalised(PROMPTS[:1], [completion], answer=[value]),
            zero_one(PROMPTS[:1], [completion], answer=[value])) == ([scores[0]], [scores[1]])


def test_conversational_completions_are_read_like_strings():
    completions = [[{"role": "assistant", "content": "Born in Krakow."}],
                   [{"role": "assistant", "content": "<|tool_call|>lookup\nMira Tolvane<|/tool_call|>"},
                    {"role": "tool", "content": "Birth city: Krakow"},  # the tool's words are not the model's
                    {"role": "assistant", "content": "She was born in Lisbon."}],
                   [{"role": "assistant", "content": "I do not know."}]]
    assert penalised(PROMPTS, completions, answer=["Krakow"] * 3) == [1.0, -1.0, 0.0]
    assert zero_one(PROMPTS, completions, answer=["Krakow"] * 3) == [1.0, 0.0, 0.0]


def test_a_year_column_of_numbers_is_read_as_text():
    assert penalised(PROMPTS[:2], ["In 1970.", "In 1971."], answer=[1970, 1970]) == [1.0, -1.0]


@pytest.mark.parametrize("reward", [penalised, zero_one])
def test_a_missing_answer_column_is_one_line_naming_it(reward):
    with pytest.raises(LabError) as err:
        reward(PROMPTS, ["Krakow"] * 3, question=["q"] * 3)  # TRL passes the dataset's other columns too
    message = str(err.value)
    assert "\n" not in message and f"the {reward.__name__} reward needs an 'answer' column" in message


def test_both_resolve_by_name_and_are_logged_under_it():
    fns = get_rewards(["penalised", "zero_one"])
    assert fns == [penalised, zero_one] and [f.__name__ for f in fns] == ["penalised", "zero_one"]
    assert preset_named("tiny", ["rl.rewards=penalised"]).rl.rewards == ("penalised",)  # what the config checks
