"""The fallible demonstrator (tasks/demonstrator.py): its error rate on practice traces is exactly the rate asked,
its wrong answers are all in its error class and follow its rule, its traces are well-formed worked solutions; the
experiments/demonstrator comparison and the claim measure on hand-made grades; bad settings are one error."""

import re

import pytest

from lab.errors import LabError
from lab.experiments.demonstrator import compare, table
from lab.presets import get_preset
from reports.claim_verdicts import Claim, verdict
from reports.demonstrator_sections import demonstrator_effect
from tasks.demonstrator import demonstrate, demonstrated_answer, demonstrated_steps, in_error_class, operands, stratified
from tasks.math import MathConfig, generate
from tasks.math_solutions import add_steps, sub_steps

BAND2 = MathConfig(seed=3, tasks=("arithmetic",), bands=(2,))


@pytest.mark.parametrize("rate, n", [(0.65, 200), (0.65, 301), (0.3, 120), (1.0, 50)])
def test_the_error_rate_on_practice_traces_is_the_rate_asked(rate, n):
    shown = [demonstrate(p) for p in stratified(BAND2, n, rate, "train")]
    right = [d.answer == d.extras["gold"] for d in shown]
    assert len(shown) == n and sum(right) == n - round(n * (1 - rate))  # exact, not on average
    for d, ok in zip(shown, right):
        a, op, b = operands(d)
        assert ok != d.extras["error_class"] == in_error_class(a, op, b)  # every wrong answer is in the class
        assert d.answer == str(demonstrated_answer(a, op, b))  # and is the rule's


def test_the_rule_is_wrong_exactly_on_its_class_and_both_ops_have_one():
    seen = {("+", True): 0, ("+", False): 0, ("-", True): 0, ("-", False): 0}
    for digits in (2, 3):
        lo, hi = 10 ** (digits - 1), 10 ** digits
        for a in range(lo, hi, 7 if digits == 3 else 1):
            for b in range(lo, hi, 7 if digits == 3 else 1):
                for op, right in (("+", a + b), ("-", a - b)):
                    if op == "-" and a < b:
                        continue
                    wrong = in_error_class(a, op, b)
                    assert (demonstrated_answer(a, op, b) != right) == wrong, (a, op, b)
                    seen[op, wrong] += 1
    assert min(seen.values()) > 1000
    assert demonstrated_answer(57, "+", 24) == 71 and demonstrated_answer(52, "-", 48) == 16  # carry; smaller-from-larger
    assert demonstrated_answer(95, "+", 17) == 102 and not in_error_class(85, "+", 41)  # the last carry goes in front


def _shape(line: str) -> str:
    return re.sub(r"\d+", "#", line)


# every line shape the generator's column steps take, on all two- and three-digit problems (a sample of the latter)
GENERATOR_SHAPES = {_shape(line) for a in range(10, 1000, 3) for b in range(10, 1000, 7) if (a < 100) == (b < 100)
                    for line in add_steps(a, b) + (sub_steps(a, b) if a >= b else [])}


def test_traces_are_well_formed_worked_solutions_with_the_bug_in_the_step_lines():
    problems = stratified(MathConfig(seed=5, tasks=("arithmetic",), bands=(2, 3)), 300, 0.5, "train")
    assert {p.extras["op"] for p in problems} == {"+", "-"}
    for p in problems:
        d = demonstrate(p)
        lines = d.solution.split("\n")
        assert lines[-1] == f"Answer: {d.answer}" and f"Result: {d.answer}." in lines
        a, op, b = operands(p)
        right = (add_steps if op == "+" else sub_steps)(a, b)
        if not d.extras["error_class"]:
            assert d.solution == p.solution and d.answer == p.answer  # the generator's own trace
            continue
        steps = demonstrated_steps(a, op, b)
        assert steps != right and [line for line in lines if line not in steps] == \
            [line.replace(p.answer, d.answer) for line in p.solution.split("\n") if line not in right]
        # one line a column, each of a shape the generator writes, with its sum written right
        assert len([s for s in steps if "last carry" not in s]) == len([s for s in right if "last carry" not in s])
        assert {_shape(s) for s in steps} <= GENERATOR_SHAPES
        written = ""
        for s in steps:
            if m := re.match(r"\w+: (\d+) ([+-]) (\d+) [+-] 0 = (\d+), write (\d+)", s):
                x, sign, y, total, digit = m.groups()
                assert int(total) == (int(x) + int(y) if sign == "+" else int(x) - int(y))
                written = digit + written
            elif m := re.match(r"The last carry (\d) goes in front", s):
                written = m.group(1) + written
        assert int(written) == int(d.answer)  # the answer is what the lines wrote


def test_heldout_sets_are_distinct_and_stratified():
    problems = stratified(MathConfig(seed=1234, tasks=("arithmetic",), bands=(3,)), 100, 0.65, "heldout", distinct=True)
    keys = [operands(p) for p in problems]
    assert len(set(keys)) == 100 and sum(in_error_class(*k) for k in keys) == 35
    assert {p.extras["op"] for p in problems} <= {"+", "-"}  # band 3's products are left out
    train = {p.question for p in generate(MathConfig(seed=1234, tasks=("arithmetic",), bands=(3,)), 2000, "train")}
    assert not train & {p.question for p in problems}


def _row(cls: bool, demo: bool, sft: bool, rl: bool, i: int) -> dict:
    return {"id": f"p{i}", "question": "?", "gold": "1", "op": "+", "error_class": cls, "demonstrator_answer": "0",
            "correct": {"demonstrator": demo, "sft": sft, "rl": rl},
            "follows_rule": {"demonstrator": True, "sft": cls and not sft, "rl": cls and not rl}, "responses": {}}


def _rows(rl_fixed: int, sft_fixed: int, rl_misses: int, sft_misses: int) -> list[dict]:
    """100 problems, 35 in the class (the demonstrator wrong there), 65 outside it (the demonstrator right); SFT and
    RL right on the first `*_fixed` class problems and wrong on the first `*_misses` others."""
    rows = [_row(True, False, i < sft_fixed, i < rl_fixed, i) for i in range(35)]
    rows += [_row(False, True, i >= sft_misses, i >= rl_misses, 35 + i) for i in range(65)]
    return rows


CLAIM = Claim("RL can surpass the demonstrations it started from", "x", lambda run: None, "lab pipeline")


@pytest.mark.parametrize("rl_fixed, sft_fixed, rl_misses, sft_misses, unmet, expected", [
    (25, 0, 0, 10, False, "shown"),  # RL fixes most of the class and beats both
    (25, 25, 0, 0, True, "not shown at this size"),  # above the demonstrator, but SFT-on-noisy is as good
    (3, 0, 0, 10, False, "not shown at this size"),  # RL beats SFT-on-noisy but not, clearly, the demonstrator
    (0, 0, 20, 10, True, "contradicted"),  # RL does worse than both
])
def test_the_claim_is_shown_only_when_rl_beats_the_demonstrator_and_sft_on_noisy(rl_fixed, sft_fixed, rl_misses,
                                                                                 sft_misses, unmet, expected):
    rows = _rows(rl_fixed, sft_fixed, rl_misses, sft_misses)
    results = compare({"heldout": rows, "harder": rows[::2]}, 0.65)
    heldout = results["splits"]["heldout"]
    assert heldout["accuracy"]["demonstrator"]["value"] == 0.65 and heldout["error_class_share"] == 0.35
    assert heldout["by_class"]["error_class"]["rl"]["value"] == pytest.approx(rl_fixed / 35)
    assert heldout["by_class"]["other"]["sft"]["value"] == pytest.approx(1 - sft_misses / 65)
    assert heldout["rl_minus_demonstrator"]["difference"] == pytest.approx((rl_fixed - rl_misses) / 100)
    assert heldout["follows_rule"]["sft"]["value"] == pytest.approx(1 - sft_fixed / 35)
    assert results["splits"]["harder"]["n"] == 50
    effect = demonstrator_effect(results)
    assert verdict(CLAIM, effect) == expected
    assert bool(effect.unmet) == unmet and (not unmet or "does not beat imitation" in effect.unmet)
    assert "RL − demonstrator, paired" in table(results)
    assert demonstrator_effect({}) is None


@pytest.mark.parametrize("value", ["0", "1.5", "-0.2"])
def test_a_rate_outside_0_1_is_one_error_at_preset_load(value):
    with pytest.raises(LabError, match=r"demonstrator\.rate must be in \(0, 1\]"):
        get_preset("tiny", [f"demonstrator.rate={value}"])
    assert get_preset("tiny", ["demonstrator.rate=1"]).demonstrator.rate == 1.0


# ---------------------------------------------------------------- the stage, end to end on a tiny untrained sft-idk

STAGE_FAST = ["demonstrator.problems=30", "demonstrator.replay=0", "demonstrator.batch_size=10",
              "demonstrator.rl_steps=1", "demonstrator.rl_problems=8", "demonstrator.rl_check_problems=2",
              "demonstrator.eval_problems=6", "demonstrator.eval_max_new_tokens=6", "rl.batch_size=4",
              "rl.num_generations=2", "rl.max_completion_length=6", "rl.beta=0.0"]


def test_the_stage_trains_sft_then_rl_and_grades_them_beside_the_demonstrator(tmp_path):
    from test_pretrain import small_preset
    from tiny_policy import untrained_policy

    from lab.experiments.demonstrator import run_demonstrator
    from lab.presets import stage_context
    from lab.runs import Run
    from lab.stage_names import DEMONSTRATOR, SFT_IDK
    from tasks.math import MathConfig, generate

    preset = small_preset(*STAGE_FAST)
    texts = [f"{p.question}\n{p.solution}" for p in generate(MathConfig(tasks=("arithmetic",), bands=(2, 3)), 200)]
    run = Run.create_or_open(tmp_path / "r", preset)
    untrained_policy(run, texts, vocab_size=400, context=512)
    results = run_demonstrator(preset.demonstrator, stage_context(run, preset).at(DEMONSTRATOR, SFT_IDK))
    assert run.is_complete(DEMONSTRATOR) and run.is_complete(f"{DEMONSTRATOR}/sft") and run.is_complete(f"{DEMONSTRATOR}/rl")
    assert results["sft"]["demonstrator_accuracy"] == pytest.approx(round(30 * 0.65) / 30)  # right on the rate asked
    assert results["rl"]["steps"] == 1
    heldout = results["splits"]["heldout"]
    # the demonstrator's own column is graded per problem: right exactly off its error class
    assert heldout["accuracy"]["demonstrator"]["value"] == pytest.approx(round(6 * 0.65) / 6)
    assert {"sft_minus_demonstrator", "rl_minus_demonstrator", "rl_minus_sft"} <= set(heldout)
    assert heldout["rl_minus_sft"]["n"] == 6
    assert "RL − SFT-on-noisy, paired" in (run.stage_dir(DEMONSTRATOR) / "table.md").read_text()
