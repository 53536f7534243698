"""Math tasks: deterministic, split by question text, and every gold answer re-derived by sympy from extras."""

import random
import re

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sympy.parsing.sympy_parser import convert_xor, implicit_multiplication_application, parse_expr, standard_transformations

from lab.errors import LabError
from tasks.math import BANDS, TASKS, MathConfig, Problem, generate, split_key, split_of

X, Y = sp.symbols("x y")
ALL = MathConfig(seed=7, bands=BANDS)
IMPLICIT = standard_transformations + (implicit_multiplication_application, convert_xor)


@pytest.fixture(scope="module")
def train():
    return generate(ALL, 1200)


@pytest.fixture(scope="module")
def heldout():
    return generate(ALL, 200, split="heldout")


def gold(p: Problem) -> str:
    """The answer recomputed by sympy from the problem's parameters, never from its text or our solver."""
    e, Int, R = p.extras, sp.Integer, sp.Rational
    if p.task == "arithmetic":
        a, b = Int(e["a"]), Int(e["b"])
        return str({"+": a + b, "-": a - b, "*": a * b}[e["op"]])
    if p.task == "order_of_operations":
        v = sp.sympify(e["expr"])  # sympy's own parser and precedence rules
        assert v.is_integer and v >= 0
        return str(v)
    if p.task == "fractions":
        a = R(*e["a"])
        v = a if e["op"] == "simplify" else {"+": a + R(*e["b"]), "-": a - R(*e["b"]), "*": a * R(*e["b"]),
                                             "/": a / R(*e["b"])}[e["op"]]
        assert v > 0 and not v.is_integer
        return f"{v.p}/{v.q}"
    if p.task == "percentages":
        share, base = R(e["p"], 100), Int(e["base"])
        if e["kind"] == "what_percent":
            return f"{R(e['part'], e['base']) * 100}%"
        return str({"of": share * base, "increase": base * (1 + share), "decrease": base * (1 - share)}[e["kind"]])
    if p.task == "linear_equations":
        (sol,) = sp.solve(sp.Eq(e["a"] * X + e["b"], e["c"] * X + e["d"]), X)
        return f"x = {sol}"
    if p.task == "linear_systems":
        s = sp.solve([sp.Eq(e["a1"] * X + e["b1"] * Y, e["c1"]), sp.Eq(e["a2"] * X + e["b2"] * Y, e["c2"])], [X, Y])
        return f"x = {s[X]}, y = {s[Y]}"
    if p.task == "quadratics":
        roots = sorted(set(sp.solve(e["a"] * X ** 2 + e["b"] * X + e["c"], X)))
        assert all(r.is_integer for r in roots)
        return "{" + ", ".join(map(str, roots)) + "}"
    assert p.task == "word_problems"
    k, three = e["kind"], e["steps"] == 3
    if k == "shopping":
        v = Int(e["q"]) * e["p"] + e["e"]
        v = e["bill"] - v if three else v
    elif k == "sharing":
        total = Int(e["g"]) * e["s"] if three else Int(e["total"])
        v = (total - e["k"]) / e["f"]
    elif k == "ages":
        now = Int(e["age"]) + e["older"]
        v = (now * e["times"] if three else now) + e["later"]
    else:
        v = Int(e["rate"]) * e["hours"] - e["sold"]
        v = v / e["bag"] if three else v
    assert v.is_integer and v >= 0
    return str(v)


def test_same_seed_same_problems_other_seed_others():
    a, b = generate(ALL, 150), generate(ALL, 150)
    assert a == b
    assert generate(ALL, 40) == a[:40]  # a prefix of a longer run: n never reshuffles the stream
    assert [p.question for p in generate(MathConfig(seed=8, bands=BANDS), 150)] != [p.question for p in a]
    assert generate(ALL, 30, "heldout") == generate(ALL, 30, "heldout")


def _params(p: Problem) -> dict:
    return {k: v for k, v in p.extras.items() if k != "checked"}


def test_train_and_heldout_are_disjoint_by_question_and_by_calculation(train, heldout):
    assert {p.question for p in train}.isdisjoint({p.question for p in heldout})
    assert {split_key(p.task, _params(p)) for p in train}.isdisjoint({split_key(p.task, _params(p)) for p in heldout})
    assert all(split_of(split_key(p.task, _params(p))) == "train" for p in train)
    assert all(split_of(split_key(p.task, _params(p))) == "heldout" for p in heldout)
    assert {p.task for p in heldout} == set(TASKS)
    rng = random.Random(0)
    drafts = [(t, TASKS[t](rng, b)) for t in TASKS for b in BANDS for _ in range(100)]
    share = sum(split_of(split_key(t, d.extras)) == "heldout" for t, d in drafts) / len(drafts)
    assert 0.06 < share < 0.14  # about a tenth of the draws are held out


def test_every_gold_answer_matches_sympy(train, heldout):
    for p in train[:500] + heldout:
        assert p.answer == gold(p), (p.question, p.extras)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10 ** 9), band=st.sampled_from(BANDS))
def test_gold_answers_hold_for_any_seed(seed, band):
    for p in generate(MathConfig(seed=seed, bands=(band,)), 16):
        assert p.answer == gold(p) and p.difficulty == band


def test_solutions_end_with_exactly_the_answer_line(train, heldout):
    for p in train + heldout:
        lines = p.solution.split("\n")
        assert lines[-1] == f"Answer: {p.answer}"
        assert len(lines) >= 2 and not any(line.startswith("Answer:") for line in lines[:-1])


def test_every_task_and_band_generates():
    for task in TASKS:
        for band in BANDS:
            problems = generate(MathConfig(seed=1, tasks=(task,), bands=(band,)), 5)
            assert {(p.task, p.difficulty) for p in problems} == {(task, band)}
            assert all(p.answer == gold(p) for p in problems)


def test_arithmetic_bands_grow_in_digit_count():
    widest = {}
    for band in BANDS:
        problems = generate(MathConfig(seed=2, tasks=("arithmetic",), bands=(band,)), 150)
        digits = {(len(str(p.extras["a"])), len(str(p.extras["b"])), p.extras["op"]) for p in problems}
        widest[band] = max(max(a, b) for a, b, _ in digits)
        if band == 1:
            assert digits == {(1, 1, "+"), (1, 1, "-")}
        if band == 2:
            assert digits == {(2, 2, "+"), (2, 2, "-")}
        if band == 3:
            assert digits == {(2, 1, "*"), (3, 3, "+"), (3, 3, "-")}
        if band == 4:
            assert digits == {(3, 2, "*"), (4, 4, "+"), (4, 4, "-")}
    assert [widest[b] for b in BANDS] == [1, 2, 3, 4]
    steps = {p.extras["steps"] for p in generate(MathConfig(tasks=("word_problems",), bands=(1, 2)), 50)}
    assert steps == {2} and {p.extras["steps"] for p in generate(MathConfig(tasks=("word_problems",), bands=(3, 4)), 50)} == {3}


def _true_clauses(check: str) -> int:
    """Every purely numeric "A = B" clause of a Check line, evaluated by sympy; returns how many were checked."""
    body = re.fullmatch(r"Check: (.*)\. Correct\.", check).group(1)
    clauses = [c for c in re.split(r" and |, ", body) if "=" in c and re.fullmatch(r"[-0-9()+*/^ =]+", c)]
    for clause in clauses:
        lhs, rhs = clause.split(" = ")
        assert sp.simplify(parse_expr(lhs, transformations=IMPLICIT) - parse_expr(rhs, transformations=IMPLICIT)) == 0, check
    return len(clauses)


def test_check_share_controls_the_check_line():
    every = generate(MathConfig(seed=3, bands=BANDS, check_share=1.0), 240)
    for p in every:
        check = p.solution.split("\n")[-2]
        assert check.startswith("Check: ") and check.endswith(" Correct.") and p.extras["checked"]
        assert _true_clauses(check) >= 1  # the check is a real, correct re-derivation
    none = generate(MathConfig(seed=3, bands=BANDS, check_share=0.0), 240)
    assert not any("Check:" in p.solution for p in none)
    half = generate(MathConfig(seed=3, bands=BANDS, check_share=0.5), 400)
    assert 120 < sum("Check:" in p.solution for p in half) < 280
    # the check decision never changes which questions are drawn
    assert [p.question for p in every] == [p.question for p in none]


def test_bad_config_raises_lab_error():
    with pytest.raises(LabError, match="arithmetic"):
        generate(MathConfig(tasks=("calculus",)), 5)
    with pytest.raises(LabError, match="valid bands are 1, 2, 3, 4"):
        generate(MathConfig(bands=(9,)), 5)
    with pytest.raises(LabError, match="split"):
        generate(MathConfig(), 5, split="dev")
    with pytest.raises(LabError, match="check_share"):
        generate(MathConfig(check_share=1.5), 5)
