"""The rewards a config names: one registry, REWARDS, and get_rewards, which turns names into TRL reward functions.

A reward function has TRL's signature, fn(prompts, completions, **kwargs) -> list[float | None], and TRL
logs it under its __name__ (rewards/<name>/mean), so a registered function's __name__ is its name here.
An entry of REWARDS is either such a function (the math rewards, rewards/math_answers.py; the rewards for
answers to world questions, rewards/world_answers.py) or a RewardFactory, which builds the function for one
run from a RewardContext: "proxy" loads the rm stage's reward model (rewards/proxy.py), "gold" is the
world's gold judge (rewards/gold.py).

A name with a dot is an import path instead, as in TRL's scripts: "package.module.function" or
"package.module:function", naming a reward function (or a RewardFactory). Adding a reward here: write the
function, list it in REWARDS below, test it. Code outside rewards/ (a test, a plugin) registers with the
@register_reward("name") / @register_reward_factory("name", needs=...) decorators.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import LabError
from rewards import math_answers, math_checks, world_answers
from tasks.world import World

RewardFn = Callable[..., list]


@dataclass
class RewardContext:
    """What a factory may need. `held` collects the models factories load (RLHF's memory figure counts them)."""

    tokenizer: Any = None  # the policy's tokenizer
    world: World | None = None
    rm_dir: Path | None = None  # the reward model's stage
    held: list = field(default_factory=list)


# What each context field is, for the error naming what a factory lacks.
NEEDS = {"tokenizer": "the policy's tokenizer", "world": "the world", "rm_dir": "the rm stage (a trained reward model)"}


@dataclass(frozen=True)
class RewardFactory:
    """A reward built per run: build(context) returns the reward function; `needs` are the context fields it reads."""

    build: Callable[[RewardContext], RewardFn]
    needs: tuple[str, ...] = ()


def proxy(context: RewardContext) -> RewardFn:
    """The rm stage's reward model scoring the policy's answers (its tokenizer checked against the policy's)."""
    # lazy: it loads torch, and the settings check their reward names against this registry at preset load
    from rewards.proxy import load_reward_model, make_reward_fn

    model, tokenizer = load_reward_model(context.rm_dir)
    context.held.append(model)
    return make_reward_fn(model, tokenizer, policy_tokenizer=context.tokenizer, name="proxy")


def gold(context: RewardContext) -> RewardFn:
    """The gold judge; with the policy's tokenizer it reads GRPO's completion_ids (special tokens and cut-offs cost)."""
    from rewards.gold import gold_reward_fn  # lazy, as proxy's: it loads the tokenizer stack (transformers)

    return gold_reward_fn(context.world, tokenizer=context.tokenizer)


REWARDS: dict[str, RewardFn | RewardFactory] = {
    "correctness": math_answers.correctness,
    "exact_match": math_answers.exact_match,
    "format": math_answers.format_reward,
    "length_penalty": math_answers.length_penalty(),
    "self_check": math_answers.self_check,
    "verified_check": math_checks.verified_check,
    "group_solved": math_answers.group_solved,
    "penalised": world_answers.penalised,
    "zero_one": world_answers.zero_one,
    "proxy": RewardFactory(proxy, needs=("rm_dir", "tokenizer")),
    "gold": RewardFactory(gold, needs=("world",)),
}


def _add(name: str, entry) -> None:
    if name in REWARDS and REWARDS[name] is not entry:
        raise LabError(f"a reward named {name!r} is already registered")
    REWARDS[name] = entry


def register_reward(name: str):
    """Decorator: register a reward function under `name` (its __name__ becomes `name`: what TRL logs)."""
    def register(fn: RewardFn) -> RewardFn:
        _add(name, fn)
        fn.__name__ = name
        return fn
    return register


def register_reward_factory(name: str, needs: tuple[str, ...] = ()):
    """Decorator: register `build(context) -> reward function` under `name`, needing the context fields `needs`."""
    unknown = [n for n in needs if n not in NEEDS]
    if unknown:
        raise LabError(f"reward factory {name!r} needs unknown context field(s) {unknown}; fields are {', '.join(NEEDS)}")

    def register(build: Callable[[RewardContext], RewardFn]):
        _add(name, RewardFactory(build, tuple(needs)))
        return build
    return register


def valid_rewards() -> str:
    return f"valid rewards are {', '.join(REWARDS)}, or an import path package.module.function"


def _import(path: str):
    module, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    if not module or not attr:
        raise LabError(f"reward {path!r} is not a name or an import path; {valid_rewards()}")
    try:
        found = importlib.import_module(module)
    except ImportError as e:
        why = " ".join(str(e).split())
        raise LabError(f"reward {path!r}: cannot import {module} ({why}); {valid_rewards()}") from None
    for part in attr.split("."):
        if not hasattr(found, part):
            raise LabError(f"reward {path!r}: {module} has no {attr}; {valid_rewards()}")
        found = getattr(found, part)
    return found


def _build(name: str, factory: RewardFactory, context: RewardContext | None) -> RewardFn:
    missing = [NEEDS[n] for n in factory.needs if context is None or getattr(context, n) is None]
    if missing:
        raise LabError(f"the {name} reward needs {' and '.join(missing)}; it is built for a run (RLHF), "
                       f"not from its name alone")
    fn = factory.build(context if context is not None else RewardContext())
    if name in REWARDS:
        fn.__name__ = name  # what TRL logs: rewards/<name>/mean
    return fn


def _unknown(names) -> list[str]:
    """The names that are neither registered nor an import path: every typo at once, not the first only."""
    return [n for n in names if isinstance(n, str) and n not in REWARDS and "." not in n and ":" not in n]


def _entry(name: str) -> RewardFn | RewardFactory:
    """What `name` names: its registry entry, or what its import path imports; LabError unless that is a reward
    function or a factory of one."""
    if name in REWARDS:
        entry = REWARDS[name]
    elif "." in name or ":" in name:
        entry = _import(name)
    else:
        raise LabError(f"unknown reward {name!r}; {valid_rewards()}")
    if not callable(entry) and not isinstance(entry, RewardFactory):
        raise LabError(f"reward {name!r} names a {type(entry).__name__}, not a function; {valid_rewards()}")
    return entry


def get_reward(name: str | RewardFn, context: RewardContext | None = None) -> RewardFn:
    """The reward function for one registered name or import path; a function is passed through as it is."""
    if callable(name):
        return name
    if not isinstance(name, str) or not name.strip():
        raise LabError(f"reward {name!r} is not a name; {valid_rewards()}")
    entry = _entry(name)
    return _build(name, entry, context) if isinstance(entry, RewardFactory) else entry


def check_reward_names(names, setting: str = "rewards") -> None:
    """One LabError line for a reward list a config cannot use (an empty one, an unknown name, an import path that
    does not import or names no function), found when the settings are read, before anything trains. Factories
    are only looked up here; they are built for a run by get_rewards."""
    names = list(names)
    if not names:
        raise LabError(f"{setting} is empty; {valid_rewards()}")
    if unknown := _unknown(names):
        raise LabError(f"unknown reward(s) {', '.join(map(repr, unknown))} in {setting}; {valid_rewards()}")
    for name in names:
        _entry(name)


def get_rewards(names, context: RewardContext | None = None) -> list[RewardFn]:
    """The reward functions for `names`, in order: registry names, import paths, or reward functions (kept as they
    are, e.g. an experiment's own proxy). Factories are built with `context`. A bad entry is one LabError line."""
    names = [names] if isinstance(names, str) or callable(names) else list(names)
    if not names:
        raise LabError(f"no rewards given; {valid_rewards()}")
    if unknown := _unknown(names):
        raise LabError(f"unknown reward(s) {', '.join(map(repr, unknown))}; {valid_rewards()}")
    return [get_reward(n, context) for n in names]
