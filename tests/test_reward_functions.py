"""Reward functions: TRL's calling convention, string and chat completions, scores, and the registry."""

import pytest

from lab.errors import LabError
from rewards.completions import completion_text
from rewards.math_answers import correctness, exact_match, format_reward, length_penalty
from rewards.registry import REWARDS, get_rewards
from tasks.math import MathConfig, generate


def chat(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def call(fn, completions, **columns):
    """Call a reward function the way TRL's GRPOTrainer does: keywords only, extra kwargs included."""
    prompts = ["What is 1 + 1?"] * len(completions)
    return fn(prompts=prompts, completions=completions, completion_ids=[[1, 2]] * len(completions),
              trainer_state=None, log_extra=None, log_metric=None, **columns)


def test_completion_text_reads_strings_and_chat_messages():
    assert completion_text("Answer: 2") == "Answer: 2"
    assert completion_text([{"role": "user", "content": "q"}, chat("Answer: 2")[0]]) == "Answer: 2"
    parts = [{"type": "text", "text": "Answer: "}, {"type": "text", "text": "2"}]
    assert completion_text([{"role": "assistant", "content": parts}]) == "Answer: 2"
    assert completion_text([{"role": "assistant", "content": None}]) == ""
    assert completion_text([]) == ""


def test_correctness_scores_each_completion_in_order():
    completions = ["1 + 1 = 2\nAnswer: 2", "Answer: 3", "2/4 of it\nAnswer: 1/2", "no idea", "Answer: y = 3, x = 2",
                   "#### 1,000", "\\boxed{\\frac{1}{2}}"]
    answers = ["2", "2", "0.5", "7", "x = 2, y = 3", "1000", "0.5"]
    assert call(correctness, completions, answer=answers) == [1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    assert call(correctness, [chat(c) for c in completions], answer=answers) == [1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    assert call(correctness, [], answer=[]) == []


def test_exact_match_pays_only_for_the_gold_string():
    completions = ["1 + 1 = 2\nAnswer: 2", "2/4 of it\nAnswer: 1/2", "Answer: 1 / 2", "#### 1,000", "Answer: x = 2"]
    answers = ["2", "0.5", "1/2", "1000", "2"]
    # the verifier accepts all five; exact match only the literal ones
    assert call(correctness, completions, answer=answers) == [1.0] * 5
    assert call(exact_match, completions, answer=answers) == [1.0, 0.0, 1.0, 0.0, 0.0]
    problems = generate(MathConfig(seed=1, bands=(1, 2)), 20)  # our worked solutions end on the gold string
    assert call(exact_match, [p.solution for p in problems], answer=[p.answer for p in problems]) == [1.0] * 20
    with pytest.raises(LabError, match="answer"):
        call(exact_match, ["Answer: 2"])


def test_correctness_on_generated_solutions():
    problems = generate(MathConfig(seed=1, bands=(1, 2, 3, 4)), 40)
    assert call(correctness, [p.solution for p in problems], answer=[p.answer for p in problems]) == [1.0] * 40
    wrong = [p.solution.rsplit("\n", 1)[0] + "\nAnswer: 123456789" for p in problems]
    assert call(correctness, wrong, answer=[p.answer for p in problems]) == [0.0] * 40


def test_correctness_needs_the_answer_column():
    with pytest.raises(LabError, match="answer"):
        call(correctness, ["Answer: 2"])


FORMAT = [
    ("1 + 1 = 2.\nAnswer: 2", 1.0),
    ("Step one.\nStep two.\n\nAnswer: x = 3\n", 1.0),
    ("ones: 1 + 1 = 2\n**Answer:** 2", 1.0),
    ("We get\n\\boxed{2}", 1.0),
    ("so the total is \\boxed{\\frac{1}{2}}.\n", 0.5),
    ("Answer: 2", 0.5),
    ("   \n\nAnswer: 2\n\n", 0.5),
    ("Final answer: 7", 0.5),
    ("1 + 1 = 2", 0.0),  # no marked answer
    ("Answer: 2\nand then I kept talking", 0.0),  # the answer is not the last line
    ("reasoning\nAnswer:", 0.0),  # an empty answer
    ("reasoning\nAnswer:   ", 0.0),
    ("reasoning\n\\boxed{}", 0.0),
    ("reasoning\n\\boxed{2", 0.0),  # cut off mid-answer
    ("", 0.0),
    ("The answer is 2", 0.0),
]


@pytest.mark.parametrize("completion,score", FORMAT)
def test_format(completion, score):
    assert call(format_reward, [completion]) == [score]
    assert call(format_reward, [chat(completion)]) == [score]


def test_format_on_generated_solutions():
    problems = generate(MathConfig(seed=2), 20)
    assert call(format_reward, [p.solution for p in problems]) == [1.0] * 20
    assert call(format_reward, [p.solution.splitlines()[-1] for p in problems]) == [0.5] * 20


def test_length_penalty():
    fn = length_penalty(target_chars=100, scale=0.5)
    scores = call(fn, ["x" * n for n in (0, 50, 100, 101, 150, 200, 1000)])
    assert scores[:3] == [0.0, 0.0, 0.0]
    assert all(s <= 0 for s in scores)
    assert scores[3] < 0 and scores == sorted(scores, reverse=True)  # longer is never better
    assert scores[4] == pytest.approx(-0.25) and scores[5] == pytest.approx(-0.5) and scores[6] == pytest.approx(-0.5)
    assert call(fn, [chat("x" * 150)]) == scores[4:5]
    assert call(length_penalty(target_chars=100, scale=0.0), ["x" * 500]) == [0.0]


@pytest.mark.parametrize("kwargs", [{"target_chars": 0}, {"target_chars": -5}, {"scale": -1.0}])
def test_length_penalty_rejects_bad_settings(kwargs):
    with pytest.raises(LabError, match="length_penalty"):
        length_penalty(**kwargs)


def test_registry_names_are_what_trl_logs():
    math = {"correctness", "exact_match", "format", "length_penalty", "self_check", "group_solved"}
    assert math | {"proxy", "gold"} <= set(REWARDS)
    for name in math:
        fn = REWARDS[name]
        assert fn.__name__ == name
        assert call(fn, ["1 + 1 = 2\nAnswer: 2"], answer=["2"])[0] in (0.0, 1.0)


def test_get_rewards_keeps_order():
    fns = get_rewards(["format", "correctness", "length_penalty"])
    assert [f.__name__ for f in fns] == ["format", "correctness", "length_penalty"]
    assert fns[1] is correctness


@pytest.mark.parametrize("names", [["correctnes"], ["format", "bogus"], []])
def test_get_rewards_unknown_name_is_one_clear_error(names):
    with pytest.raises(LabError) as err:
        get_rewards(names)
    message = str(err.value)
    assert "\n" not in message and "correctness, exact_match, format, length_penalty" in message
    assert all(n in message for n in names if n not in REWARDS)


def test_self_check_tracks_verification_phrases():
    got = REWARDS["self_check"]([None] * 3, ["x = 3\nCheck: 3 + 4 = 7. Correct.\nAnswer: x = 3", "Answer: 4",
                                             [{"role": "assistant", "content": "Wait, recompute: 12."}]])
    assert got == [1.0, 0.0, 1.0]


def test_group_solved_is_the_share_of_groups_holding_a_correct_answer():
    prompts = ["2+2?", "3+3?", "2+2?", "3+3?", "5+5?", "5+5?"]  # TRL's groups: the samples of one prompt
    completions = ["Answer: 4", "Answer: 7", "Answer: 5", "Answer: 5", "Answer: 10", "Answer: 10"]
    got = REWARDS["group_solved"](prompts, completions, answer=["4", "6", "4", "6", "10", "10"])
    assert got == [1.0, 0.0, 1.0, 0.0, 1.0, 1.0]  # mean 2/3: two of three groups give GRPO a signal
    assert REWARDS["group_solved"](prompts, ["Answer: 0"] * 6, answer=["4", "6", "4", "6", "10", "10"]) == [0.0] * 6
