"""The verifier's properties (hypothesis: every rendering of a number equals it, different numbers never do, solution
sets ignore order) and our own math generator's problems (every gold verifies against itself, restyled and not off
by one). The equivalence tables, extraction, hostile inputs and the pool are in test_verifier.py."""

import random
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rewards.verifier import verify, verify_many
from tasks.math import BANDS, TASKS, MathConfig, generate

# ----- properties --------------------------------------------------------------------------------------

def as_decimal(f: Fraction) -> str | None:
    """The exact decimal of f, or None if it does not terminate."""
    for k in range(12):
        if 10 ** k % f.denominator == 0:
            digits = str(abs(f.numerator) * 10 ** k // f.denominator).rjust(k + 1, "0")
            return ("-" if f < 0 else "") + (digits[:-k] + "." + digits[-k:] if k else digits)
    return None


@settings(max_examples=150, deadline=None)
@given(st.integers(-10**6, 10**6), st.integers(1, 10**4), st.integers(2, 50))
def test_renderings_of_a_fraction_are_equal(n, d, k):
    f = Fraction(n, d)
    sign = "-" if f < 0 else ""
    forms = [f"{f.numerator}/{f.denominator}", f"{n * k}/{d * k}",
             f"{sign}\\frac{{{abs(f.numerator)}}}{{{f.denominator}}}"]
    if as_decimal(f) is not None:
        assert Fraction(as_decimal(f)) == f
        forms.append(as_decimal(f))
    for form in forms:
        assert verify(form, forms[0]).reason == "equal", form
    assert verify(f"{f.numerator}/{f.denominator + 1}", forms[0]).reason == ("equal" if n == 0 else "not_equal")


@settings(max_examples=150, deadline=None)
@given(st.integers(-10**12, 10**12))
def test_an_integer_equals_itself_in_any_spelling(n):
    assert verify(str(n), str(n)).equivalent
    assert verify(f"{n:,}", str(n)).equivalent
    assert verify(f"{n}.0", str(n)).equivalent


@settings(max_examples=80, deadline=None)
@given(st.integers(-10**12, 10**12), st.integers(-10**12, 10**12))
def test_different_integers_are_never_equal(a, b):
    assume(a != b)
    assert verify(str(a), str(b)).reason == "not_equal"
    assert verify(f"x = {a}", str(b)).reason == "not_equal"


@settings(max_examples=25, deadline=None)
@given(st.integers(-9, 9), st.integers(-9, 9))
def test_factored_and_expanded_quadratics(a, b):
    expanded = f"x^2 + {a + b}x + {a * b}"
    assert verify(f"(x + {a})(x + {b})", expanded).reason == "equal"
    assert verify(f"(x + {a})(x + {b})", f"x^2 + {a + b}x + {a * b + 1}").reason == "not_equal"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-20, 20), min_size=1, max_size=4, unique=True), st.randoms(use_true_random=False))
def test_solution_sets_ignore_order(roots, rnd):
    shuffled = roots[:]
    rnd.shuffle(shuffled)
    gold = "{" + ", ".join(map(str, sorted(roots))) + "}"
    assert verify(" or ".join(f"x = {r}" for r in shuffled), gold).equivalent
    assert verify(", ".join(map(str, shuffled)), gold).equivalent
    assert not verify(", ".join(map(str, shuffled + [max(roots) + 1])), gold).equivalent


# ----- our own generator -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def problems():
    """Ten problems of every task in every band: a few hundred, covering every answer format we generate."""
    return [p for task in TASKS for band in BANDS
            for p in generate(MathConfig(seed=5, tasks=(task,), bands=(band,)), 10)]


def restyled(answer: str, rng: random.Random) -> str:
    """The same answer written the way a model might: other order, other spelling."""
    if answer.startswith("{"):  # quadratics: a solution set
        roots = answer[1:-1].split(", ")
        rng.shuffle(roots)
        return " or ".join(f"x = {r}" for r in roots)
    if answer.startswith("x = ") and ", y = " in answer:  # a system, the other way round
        x, y = answer.split(", ")
        return f"{y.replace(' ', '')}, {x.replace(' ', '')}"
    if answer.startswith("x = "):
        return f"{answer[4:]} = x"
    if answer.endswith("%"):
        return answer[:-1] + "\\%"
    if "/" in answer:
        n, d = answer.split("/")
        return as_decimal(Fraction(answer)) or f"\\frac{{{2 * int(n)}}}{{{2 * int(d)}}}"
    return f"\\boxed{{{int(answer):,}}}"


def off_by_one(answer: str) -> str | None:
    """A wrong answer one step from the gold, for the formats where that is well defined."""
    if answer.lstrip("-").isdigit():
        return str(int(answer) + 1)
    if answer.startswith("x = ") and "," not in answer:
        return f"x = {int(answer[4:]) + 1}"
    if answer.startswith("x = "):
        x, y = answer.split(", ")
        return f"{x}, y = {int(y[4:]) + 1}"
    if answer.startswith("{"):
        return "{" + ", ".join(str(int(r) + 1) for r in answer[1:-1].split(", ")) + "}"
    return None


def test_generator_covers_every_task_and_band(problems):
    assert {(p.task, p.difficulty) for p in problems} == {(t, b) for t in TASKS for b in BANDS}


def test_generated_solutions_verify_against_their_gold(problems):
    verdicts = verify_many([(p.solution, p.answer) for p in problems])
    assert [(p.task, p.answer, v.reason) for p, v in zip(problems, verdicts) if not v.equivalent] == []
    assert all(v.prediction == p.answer for p, v in zip(problems, verdicts))


def test_restyled_answers_verify(problems):
    rng = random.Random(0)
    pairs = [(f"{p.solution.rsplit(chr(10), 1)[0]}\nAnswer: {restyled(p.answer, rng)}", p.answer) for p in problems]
    verdicts = verify_many(pairs)
    assert [(p.answer, r, v.reason) for p, (r, _), v in zip(problems, pairs, verdicts) if not v.equivalent] == []


def test_off_by_one_answers_are_not_equal(problems):
    wrong = [(p, off_by_one(p.answer)) for p in problems if off_by_one(p.answer)]
    assert len(wrong) > len(problems) // 2
    verdicts = verify_many([(p.solution.rsplit("\n", 1)[0] + f"\nAnswer: {w}", p.answer) for p, w in wrong])
    assert [(p.answer, w, v.reason) for (p, w), v in zip(wrong, verdicts) if v.reason != "not_equal"] == []
    ints = [p for p in problems if p.answer.isdigit()]
    assert all(v.reason == "not_equal" for v in verify_many([(p.solution, str(int(p.answer) + 1)) for p in ints]))
