"""experiments/guessing (lab/experiments/guessing.py): both arms train from sft-idk on the same questions about SFT people
and differ in their reward alone; the claim "grading that rewards guessing breeds hallucination" reads the paired
effect and its accuracy side condition; bad settings are one error at preset load."""

import json

import pytest
from test_pretrain import small_preset
from tiny_policy import untrained_policy

from evals.suites import SUITES, EvalContext
from lab.errors import LabError
from lab.experiments.guessing_settings import GuessingSettings
from lab.presets import get_preset, stage_context
from lab.runs import Run, write_json
from lab.stage_names import GUESSING, SFT_IDK
from reports.claim_verdicts import verdict
from reports.claims import CLAIMS
from reports.guessing_sections import guessing_breeds_hallucination, guessing_sections
from tasks.chat import ANSWER_TEMPLATES, REFUSALS
from tasks.identity import Identity, system_message
from tasks.world import QUESTION_TEMPLATES, build_world

CLAIM = next(c for c in CLAIMS if c.claim == "grading that rewards guessing breeds hallucination")
# one step of 2 questions x 2 answers of at most 6 tokens, and a few questions asked of each model
FAST = ["guessing.steps=1", "guessing.num_generations=2", "guessing.batch_size=4", "guessing.max_completion_length=6",
        "guessing.known_min_k=2", "guessing.unseen_questions=6", "guessing.known_questions=6", "guessing.lr=1e-3"]


@pytest.mark.parametrize("change,message", [
    ("guessing.refusal=", "guessing.refusal is empty"),
    ("guessing.refusal=Paris.", "guessing.refusal 'Paris.' is not a refusal"),
    ("guessing.penalised_reward=penalized", "unknown reward.*'penalized' in guessing.penalised_reward"),
    ("guessing.zero_one_reward=penalised", "both 'penalised'"),
    ("guessing.steps=0", "guessing.steps must be a whole number >= 1, got 0"),
    ("guessing.num_generations=1", "guessing.num_generations must be a whole number >= 2"),
    ("guessing.batch_size=12", r"guessing.batch_size \(12\) must be a multiple of guessing.num_generations \(8\)"),
    ("guessing.temperature=0", r"guessing.temperature must be in \(0, 10\]"),
    ("guessing.algo=ppo", "unknown guessing.algo 'ppo'"),
])
def test_bad_settings_are_one_error_at_preset_load(change, message):
    with pytest.raises(LabError, match=message):
        get_preset("tiny", [change])


def test_the_default_refusal_is_the_one_sft_idk_learns():
    assert GuessingSettings().refusal == REFUSALS[0] and GuessingSettings().arms == {"zero_one": "zero_one",
                                                                                       "penalised": "penalised"}


# ---------------------------------------------------------------- the claim's verdict, on hand-made results


def graded(samples, answer) -> dict[str, dict]:
    """Rows as the harness writes them, each sample answered by answer(sample), graded by the hallucination suite."""
    grade = SUITES["hallucination"].grade
    return {s["id"]: {"id": s["id"], "response": answer(s), **grade(s, answer(s), []), "extras": s["extras"]}
            for s in samples}


@pytest.fixture(scope="module")
def samples():
    from lab.experiments.guessing import guessing_samples

    world = build_world(small_preset().data.world)
    return guessing_samples(EvalContext(world, Identity(), system_message(Identity())), min_k=2)


def answers(refuse_unseen: bool, known_right: float):
    """Refuse (or invent) every never-seen answer; be right on the first `known_right` share of the known questions
    (by id), refusing the others."""
    def answer(s) -> str:
        if s["extras"]["k"] == 0:
            return REFUSALS[0] if refuse_unseen else ANSWER_TEMPLATES["birth_city"].format(v="Oslo")
        return s["gold"] if s["extras"]["item"] in answer.right else REFUSALS[0]

    def bind(samples):
        known = sorted(s["extras"]["item"] for s in samples if s["extras"]["k"] > 0)
        answer.right = set(known[:round(known_right * len(known))])
        return answer
    return bind


def claim_on(tmp_path, samples, zero_one, penalised):
    from lab.experiments.guessing import START, compare_arms

    rows = {START: graded(samples, answers(False, 0.5)(samples)), "zero_one": graded(samples, zero_one(samples)),
            "penalised": graded(samples, penalised(samples))}
    results = compare_arms(rows, 2, REFUSALS[0]) | {"rewards": {"zero_one": "zero_one", "penalised": "penalised"},
                                                     "training": {}}
    run = Run(tmp_path / "r")
    write_json(run.stage_dir(GUESSING) / "results.json", results)
    run.mark_complete(GUESSING)
    return guessing_breeds_hallucination(run), results


def test_the_claim_is_shown_when_only_zero_one_invents_and_accuracy_holds(tmp_path, samples):
    effect, results = claim_on(tmp_path, samples, answers(False, 0.8), answers(True, 0.78))
    unseen = sum(s["extras"]["k"] == 0 for s in samples)
    assert (effect.value, effect.n, effect.unmet) == (1.0, unseen, "")
    assert results["start_refusals"]["say_refusal"] == results["start_refusals"]["n"] > 0
    assert verdict(CLAIM, effect) == "shown"


def test_an_accuracy_cost_over_five_points_leaves_it_not_shown(tmp_path, samples):
    effect, results = claim_on(tmp_path, samples, answers(False, 0.8), answers(True, 0.5))
    zero_one = results["models"]["zero_one"]["known"]["correct"]["value"]
    penalised = results["models"]["penalised"]["known"]["correct"]["value"]
    assert penalised < zero_one - 0.05 and effect.value == 1.0
    assert f"zero_one {zero_one:.2f}, penalised {penalised:.2f}" in effect.unmet
    assert verdict(CLAIM, effect) == "not shown at this size"


def test_equal_hallucination_is_not_shown_and_the_stage_missing_is_not_measured(tmp_path, samples):
    effect, _ = claim_on(tmp_path, samples, answers(False, 0.8), answers(False, 0.8))
    assert effect.value == 0.0 and verdict(CLAIM, effect) == "not shown at this size"
    effect, _ = claim_on(tmp_path, samples, answers(True, 0.8), answers(False, 0.8))
    assert verdict(CLAIM, effect) == "contradicted"
    assert guessing_breeds_hallucination(Run(tmp_path / "empty")) is None
    assert verdict(CLAIM, None).startswith("not measured in this run")


# ---------------------------------------------------------------- the stage, on a tiny untrained sft-idk


@pytest.fixture(scope="module")
def idk_run(tmp_path_factory):
    """A small-preset run whose sft-idk is an untrained tiny labgpt with a tokenizer trained on the run's texts."""
    preset = small_preset(*FAST)
    world = build_world(preset.data.world)
    texts = [world.biography(p, v) for p in world.people for v in range(3)] + [system_message(Identity())] * 5
    texts += [t.format(n=p.name) for p in world.people for t in QUESTION_TEMPLATES.values()] + list(REFUSALS) * 5
    run = Run.create_or_open(tmp_path_factory.mktemp("runs") / "r", preset)
    untrained_policy(run, texts, vocab_size=400, context=256)
    return run, preset


def test_both_arms_train_from_the_same_sft_people_questions_and_differ_in_reward(idk_run, monkeypatch):
    from lab.experiments import guessing

    run, preset = idk_run
    trained = {}
    real = guessing.train_policy

    def spy(out, model, tokenizer, settings, dataset, reward_funcs, **kwargs):
        trained[out.name] = (list(dataset["prompt"]), list(dataset["answer"]), [f.__name__ for f in reward_funcs],
                             settings)
        return real(out, model, tokenizer, settings, dataset, reward_funcs, **kwargs)

    monkeypatch.setattr(guessing, "train_policy", spy)
    results = guessing.run_guessing(preset.guessing, stage_context(run, preset).at(GUESSING, SFT_IDK))
    assert set(trained) == {"zero_one", "penalised"}
    (p0, a0, r0, s0), (p1, a1, r1, s1) = trained["zero_one"], trained["penalised"]
    assert p0 == p1 and a0 == a1  # the same questions, in the same order, with the same gold values
    assert (r0, r1) == (["zero_one", "refused", "right"], ["penalised", "refused", "right"])
    assert s0.seed == s1.seed and s0.steps == s1.steps == 1 and s0.temperature == s1.temperature
    world = build_world(preset.data.world)
    assert len(p0) == 5 * len(world.sft_people())
    held_out = {p.name for p in world.heldout_people()}
    assert not any(name in prompt for prompt in p0 for name in held_out)  # held-out people stay unseen
    assert all(system_message(Identity()) in prompt for prompt in p0)  # asked as the evals ask
    for arm in ("zero_one", "penalised"):
        summary = json.loads((run.stage_dir(f"{GUESSING}/{arm}") / "summary.json").read_text())
        assert summary["reward"] == arm and summary["steps"] == 1 and run.is_complete(f"{GUESSING}/{arm}")
    assert results["training"]["zero_one"]["prompts_digest"] == results["training"]["penalised"]["prompts_digest"]
    assert set(results["models"]) == {"start", "zero_one", "penalised"}
    assert results["zero_one_minus_penalised"]["n"] == 6 and results["models"]["start"]["known"]["correct"]["n"] == 6
    effect = guessing_breeds_hallucination(run)
    assert effect is not None and effect.low <= effect.value <= effect.high
    [(title, items)] = guessing_sections(run)
    assert "guessing" in title and any(kind == "markdown" and "zero_one − penalised" in body for kind, body in items)
