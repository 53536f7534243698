"""The verifier on real outputs' forms: currency and GSM8K's calculator annotations in worked solutions, final
markers ("A: 14") over earlier spans, relations read as the sets they describe, chains of equalities, \\pm,
mixed numbers and functions' exact values; and the real-format labelled sets of tests/fixtures/verifier_real
(GSM8K's human solutions, math-verify's and MATH's answer forms), whose sources the README there cites."""

import time
from pathlib import Path

import pytest

from rewards.extract import drop_currency
from rewards.verifier import extract_answer, verify, verify_many, verify_response

REAL = Path(__file__).parent / "fixtures" / "verifier_real"

EXTRACT = [
    # GSM8K's worked solutions: calculator annotations, prices on several lines, a short final line
    ("She pays $<<3*12=36>>36 for the pens.\nThen she has $50 - $36 = $<<50-36=14>>14 left.\nA: 14", "14"),
    ("It costs $5*16 = $<<5*16=80>>80.\nShe saves $80-$3 = $<<80-3=77>>77.\nA: 77", "77"),
    ("He spent $1,200 on rent and $300 on food.\nA: $1,500", "1,500"),
    ("The total is $<<2*9=18>>18\n#### 18", "18"), ("She earns $<<5*8=40>>40 a day", "40"),
    ("They cost $5, $6, and $7 in all", "7"), ("**A:** 12", "12"),
    # math spans survive the currency rule
    ("The area is $24\\text{ cm}^2$.", "24\\text{ cm}^2"), ("So $x = 5$ and $2x = 10$.", "2x = 10"),
    ("It is $12$ apples", "12"), ("$$x = 3$$ is it", "x = 3"), ("We get $\\$18.90$.", "\\$18.90"),
    # the final marker wins over the spans of the working before it
    ("We have $x^2 = 4$, so $x = 2$ or $x = -2$; checking $2^2 = 4$.\nThe answer is $2$.", "2"),
    ("Long work: $a = 1$, $b = 2$, $c = a + b = 3$.\nA: 3", "3"),
    # a line starting "A:" is the marker; "a:" inside working is not
    ("Let a: 3 be given\nso 4", "4"),
    # MATH's punctuation inside math, an answer on the line after its marker, chat-template debris after it
    ("a multiple of $3,$ since $1 + 4 + 9 + 1 + 6 = 21.$", "1 + 4 + 9 + 1 + 6 = 21"),
    ("Thus, the answer is:\n\\[ \\frac{207}{64} \\]", "\\frac{207}{64}"),
    ("Final Answer: The largest $n$ is 19. <|im_start|>user", "19"),
    ("# Answer\n\n29", "29"), ("Since sine has period $2\\pi$, $\\sin a = b$.", "\\sin a = b"),
    ("so $x = 2$ or $x = 3$.", "x = 2, x = 3"),
]


@pytest.mark.parametrize("response,expected", EXTRACT)
def test_extract_answer_from_real_shapes(response, expected):
    assert extract_answer(response) == expected


def test_currency_signs_go_and_the_numbers_stay():
    assert drop_currency("$50 - $36 = $<<50-36=14>>14 left") == "50 - 36 = 14 left"
    assert drop_currency("$x$ costs $5") == "$x$ costs 5"
    assert drop_currency("\\$5 and $\\frac{1}{2}$") == "\\$5 and $\\frac{1}{2}$"


EQUAL = [
    # relations are the sets they describe
    ("y \\le -2", "-2 \\ge y"), ("t \\ne 4", "t \\neq 4"), ("3-2t < 1", "t > 1"), ("x \\geq 5", "[5,\\infty)"),
    ("-2 \\le x \\le 7", "[-2,7]"), ("x>1", "(1,\\infty)"), ("a < x \\leq b", "(a,b]"), ("x \\in (1, 2]", "1 < x \\le 2"),
    ("x \\ne 4", "(-\\infty,4)\\cup(4,\\infty)"), ("x^2 < 4", "(-2,2)"), ("5 \\le x", "[5, \\infty)"),
    ("x \\le -2 \\text{ or } x \\ge 2", "(-\\infty,-2]\\cup[2,\\infty)"), ("x ≤ 3", "x \\le 3"),
    # chains of equalities and equations of numbers: the last member
    ("s = 2\\cdot3+4 = 10", "10"), ("x=5+5+1=7=11", "11"), ("2 + 3 = 5", "5"), ("\\sqrt{2}\\cdot\\sqrt{2} = 2", "2"),
    # \pm is a set of two
    ("1 \\pm \\sqrt{19}", "\\{1-\\sqrt{19}, 1+\\sqrt{19}\\}"), ("\\pm 2", "\\{-2,2\\}"), ("x = \\pm 2", "\\{-2, 2\\}"),
    ("x = 1 \\pm \\sqrt{2}", "1+\\sqrt{2}, 1-\\sqrt{2}"),
    # mixed numbers, functions' exact values
    ("1\\frac{1}{2}", "3/2"), ("2 \\frac{3}{4}", "11/4"), ("2 1/2", "5/2"), ("-1\\frac{1}{2}", "-3/2"),
    ("\\sin(\\pi/6)", "1/2"), ("\\log_2 8", "3"), ("\\cos 0", "1"), ("\\ln e", "1"), ("log(100)/log(10)", "2"),
    # lists with an Oxford comma
    ("19, 46, \\text{ and } 82", "19, 46, and 82"),
    # relations in several variables: the same half-plane
    ("-2x-3y \\le -7", "2x + 3y \\ge 7"), ("y \\le 4 - x", "x + y \\le 4"), ("x + 1.5y \\ge 3.5", "2x + 3y \\ge 7"),
    ("x \\ne y", "y \\ne x"), ("x != 3", "x \\ne 3"),
    # decimals in LaTeX are exact, \\pm inside a fraction, a factorial before "=", TeX spacing the parser trips on
    ("-5.6 \\le x-2 \\le 5.6", "-3.6 \\le x \\le 7.6"), ("x = \\frac{-1 \\pm \\sqrt{9}}{2}", "\\{1, -2\\}"),
    ("-4, \\frac{5\\pm\\sqrt{5}}{2}", "\\{-4, \\frac{5+\\sqrt{5}}{2}, \\frac{5-\\sqrt{5}}{2}\\}"),
    ("2\\cdot5!\\cdot5!=2\\cdot120\\cdot120=28800", "28800"), ("\\log_2{3} \\cdot \\log_3{4}", "2"),
    ("\\cos \\left (\\frac {\\pi}{3} \\right)", "1/2"), ("d = 15\\frac{975}{1000}", "\\frac{639}{40}"),
    ("\\sin^2 (\\arcsin 0.5)", "1/4"), ("82 \\ge g(x) \\ge -80", "-80\\leq g(x)\\leq 82"), ("4\\frac 12", "4.5"),
    ("1 000 4/9", "9004/9"), ("\\mathbf{\\frac{3}{4}}", "0.75"),
]

NOT_EQUAL = [
    ("x<1", "(1,\\infty)"), ("y\\le -2", "y \\geq -2"), ("x \\le 3", "y \\le 3"), ("x < 3", "x \\le 3"),
    ("x \\geq 5", "x > 5"), ("(-2,2)", "-2 \\le x < 2"), ("1 \\pm \\sqrt{19}", "1+\\sqrt{19}"), ("x \\pm 2", "x+2"),
    ("\\sin(\\pi/6)", "\\frac{\\sqrt{3}}{2}"), ("2\\frac{5}{4}", "13/4"), ("x = 5+5+1 = 12", "11"), ("x < 3", "3"),
    ("y \\ge 4 - x", "x + y \\le 4"), ("2x + 3y \\ge 7", "2x + 3y > 7"), ("x + y \\le 4", "x \\le 4"),
    ("x = \\frac{-1 \\pm \\sqrt{9}}{2}", "1"), ("-5.6 \\le x-2 \\le 5.6", "-3.6 < x \\le 7.6"),
]


@pytest.mark.parametrize("pred,gold", EQUAL)
def test_relations_chains_and_sets_equal(pred, gold):
    assert verify(pred, gold).reason == "equal"
    assert verify(gold, pred).reason == "equal"


@pytest.mark.parametrize("pred,gold", NOT_EQUAL)
def test_relations_chains_and_sets_not_equal(pred, gold):
    assert verify(pred, gold).reason == "not_equal"


def test_a_mixed_number_is_settled_in_process():
    from rewards.normalize import normalize, precheck
    assert normalize("2\\frac{3}{4}") == "11/4" and precheck("2 3/4", "2.75", False) == "equal"
    assert normalize("2\\frac{5}{4}") == "2\\frac{5}{4}"  # no proper fraction: the product stays


def test_many_prices_are_read_fast():
    start = time.monotonic()
    assert extract_answer("$1 and $2, " * 50_000 + "A: 7") == "7"
    assert extract_answer("$1" + "x" * 200_000 + "$ " * 1000 + "\nA: 8") == "8"
    assert time.monotonic() - start < 2.0


@pytest.mark.parametrize("name,least", [*((f"verifier_real/{n}", 0.98) for n in (
    "gsm8k_dev", "gsm8k_heldout", "math_dev", "math_heldout", "math_fresh", "math_final")),
    ("verifier_cases/dev", 0.97), ("verifier_cases/heldout", 0.97)])
def test_the_labelled_sets_agree_with_their_labels(name, least):
    """The labelled answer pairs of tests/fixtures (their READMEs cite each case): verifier_real holds GSM8K's
    human-written solutions (annotations, prices, "#### N" or "A: N" endings) and MATH-style forms from other
    people's test suites, datasets and model outputs (>= 0.98 each, against the issue's >= 0.99 on held-out
    material); verifier_cases the lab's first 451 MATH-style pairs (>= 0.97). Every set: no more false "equal"
    than 3% of its not-equal pairs."""
    from lab.experiments.bench import agreement, load_cases

    cases = load_cases(REAL.parent / f"{name}.jsonl")
    verdicts = [v.equivalent for v in verify_many([(c["prediction"], c["gold"]) for c in cases])]
    a = agreement(cases, verdicts, 1.0)
    assert a["agreement"] >= least, a["wrong"]
    assert a["negatives_rejected"] >= 0.97, a["wrong"]


def test_relations_too_slow_to_solve_are_refused_fast():
    start = time.monotonic()
    for relation in ("(x+1)^{999}(x-1)^{999} < (x^2-1)^{999}", "x^{99} + x^{98} < 1", "\\sin(\\sin(x)) > 0"):
        v = verify_response(f"Answer: ${relation}$", "x > 1")
        assert v.reason == "unparseable" and not v.equivalent
    assert time.monotonic() - start < 2.0
    assert verify("x \\ge 1", "[1, \\infty)").equivalent and verify("|x| < 3", "(-3, 3)").equivalent
