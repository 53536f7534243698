"""The reward registry (rewards/registry.py): names, import paths, factories built from a RewardContext, one-line errors."""

import pytest
from test_gold import ALL_RIGHT, WORLD
from test_reward_model import source  # noqa: F401  (fixture: a run whose sft-idk stage is a tiny labgpt)

import rewards.gold
import rewards.math_answers
from lab.errors import LabError
from rewards.completions import completion_text
from rewards.registry import (
    REWARDS,
    RewardContext,
    get_reward,
    get_rewards,
    register_reward,
    register_reward_factory,
)

REGISTERED = ("correctness, exact_match, format, length_penalty, self_check, verified_check, group_solved, penalised, "
              "zero_one, proxy, gold")


def shout(prompts, completions, **kwargs):
    """A reward outside the registry, reached by its import path."""
    return [float(completion_text(c).isupper()) for c in completions]


NOT_A_FUNCTION = 3


@pytest.fixture
def toys():
    """A toy reward and a toy factory registered the way code outside rewards/ adds one; removed afterwards."""
    @register_reward("toy_length")
    def length(prompts, completions, **kwargs):
        return [float(len(completion_text(c))) for c in completions]

    @register_reward_factory("toy_scaled", needs=("world",))
    def scaled(context):
        def reward(prompts, completions, **kwargs):
            return [len(context.world.people) * 1.0 for _ in completions]
        return reward

    yield length
    REWARDS.pop("toy_length")
    REWARDS.pop("toy_scaled")


def test_a_registered_toy_reward_is_used_by_name_and_logged_under_it(toys):
    fn, = get_rewards(["toy_length"])
    assert fn is toys and fn.__name__ == "toy_length"  # TRL logs rewards/toy_length/mean
    assert fn(["q", "q"], ["abc", [{"role": "assistant", "content": "de"}]]) == [3.0, 2.0]
    built, = get_rewards(["toy_scaled"], RewardContext(world=WORLD))
    assert built.__name__ == "toy_scaled" and built(["q"], ["x"]) == [2.0]
    with pytest.raises(LabError, match="already registered"):
        register_reward("toy_length")(shout)


def test_a_name_that_is_taken_is_refused():
    with pytest.raises(LabError, match="'format' is already registered"):
        register_reward("format")(shout)
    assert REWARDS["format"] is rewards.math_answers.format_reward and shout.__name__ == "shout"


def test_dotted_import_paths_are_accepted_in_both_spellings():
    dotted, colon, real = get_rewards(["test_reward_registry.shout", "test_reward_registry:shout",
                                       "rewards.math_answers.self_check"])
    assert dotted is colon is shout and real is REWARDS["self_check"]
    assert dotted(["q", "q"], ["LOUD", "quiet"]) == [1.0, 0.0]


def test_the_format_reward_is_logged_as_format():
    assert get_rewards(["format"])[0].__name__ == "format"
    assert get_reward(shout) is shout  # a function is passed through (an experiment's own proxy)


@pytest.mark.parametrize("names,wrong", [
    (["correctnes"], "unknown reward(s) 'correctnes'"),
    (["format", "bogus", "nope"], "unknown reward(s) 'bogus', 'nope'"),
    ([], "no rewards given"),
    (["no_such_package.module.fn"], "cannot import no_such_package.module"),
    (["rewards.math_answers.nothing_here"], "rewards.math_answers has no nothing_here"),
    (["rewards.math_answers:nothing.here"], "rewards.math_answers has no nothing.here"),
    (["test_reward_registry.NOT_A_FUNCTION"], "names a int, not a function"),
    ([None], "None is not a name"),
])
def test_each_bad_reward_is_one_line_naming_the_valid_ones(names, wrong):
    with pytest.raises(LabError) as err:
        get_rewards(names)
    message = str(err.value)
    assert "\n" not in message and wrong in message and f"valid rewards are {REGISTERED}" in message


@pytest.mark.parametrize("names,context,missing", [
    (["proxy"], None, "the proxy reward needs the rm stage"),
    (["correctness", "proxy"], RewardContext(tokenizer=object()), "the proxy reward needs the rm stage"),
    (["proxy"], RewardContext(rm_dir="somewhere"), "the proxy reward needs the policy's tokenizer"),
    (["gold"], RewardContext(), "the gold reward needs the world"),
])
def test_a_factory_without_what_it_needs_says_what_is_missing(names, context, missing):
    with pytest.raises(LabError) as err:
        get_rewards(names, context)
    assert "\n" not in str(err.value) and missing in str(err.value)


def test_gold_is_built_from_the_world():
    gold, = get_rewards(["gold"], RewardContext(world=WORLD))
    assert gold.__name__ == "gold"  # rewards/gold/mean
    assert gold(["Tell me about Mira Tolvane."], [ALL_RIGHT]) == [pytest.approx(1.0)]
    assert gold(["Tell me about Mira Tolvane."], [[{"role": "assistant", "content": ALL_RIGHT}]]) == [pytest.approx(1.0)]


def test_proxy_loads_the_rm_stage_checks_the_tokenizer_and_is_held(source):  # noqa: F811
    from lab.model.tokenizer import load_tokenizer, train_tokenizer
    from rewards.proxy import make_reward_fn

    stage = source.stage_dir("sft-idk")  # a causal LM loads as an RM with a new head: enough to score
    tokenizer = load_tokenizer(stage)
    context = RewardContext(tokenizer=tokenizer, world=WORLD, rm_dir=stage)
    proxy, gold = get_rewards(["proxy", "gold"], context)
    assert (proxy.__name__, gold.__name__) == ("proxy", "gold")  # rewards/proxy/mean, rewards/gold/mean
    (model,) = context.held  # the RM counts in RLHF's memory figure
    direct = make_reward_fn(model, tokenizer)
    assert proxy(["Tell me about Mira."], ["Got it."]) == direct(["Tell me about Mira."], ["Got it."])
    other = train_tokenizer(["completely different words here, many of them, again and again"] * 30, vocab_size=300)
    with pytest.raises(LabError, match="tokenizer"):
        get_rewards(["proxy"], RewardContext(tokenizer=other, rm_dir=stage))


def test_one_completion_text_for_every_reward():
    assert rewards.gold.completion_text is rewards.math_answers.completion_text is completion_text
    # what TRL passes here (text prompts): strings, as they are
    assert completion_text("Mira was born in Krakow.\nAnswer: 2") == "Mira was born in Krakow.\nAnswer: 2"
    # the preference rows' one assistant message; content parts; an empty message
    assert completion_text([{"role": "assistant", "content": "Got it."}]) == "Got it."
    assert completion_text([{"content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]}]) == "AB"
    assert completion_text([{"role": "assistant", "content": None}]) == completion_text([]) == completion_text(None) == ""
    # several messages: the assistant's, one per line; a tool's result or the user's turn are not the model's words
    turns = [{"role": "assistant", "content": "<|tool_call|>lookup"}, {"role": "tool", "content": "Krakow"},
             {"role": "assistant", "content": "Answer: Krakow"}]
    assert completion_text(turns) == "<|tool_call|>lookup\nAnswer: Krakow"
    assert completion_text([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]) == "a"
