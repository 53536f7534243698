"""Safe final-answer checking for verifiable math rewards: is a model's answer the gold answer?

Rewards run on untrusted model text millions of times, so the checker never evals that text, never hangs and
never exhausts memory. The parts, each its own module:
- rewards/extract.py: the final answer of a response (currency and GSM8K's "<<...>>" dropped; the last
  marker wins: \\boxed{}, "####", "Answer:", "the answer is", a line "A: ..."; else the last math span, an answer
  on its own, the last number).
- rewards/normalize.py: canonical text, and plain numbers settled in-process with Fraction (most RL answers).
- rewards/parse.py: the lab's own parser into sympy objects; rewards/field_parser.py: math-verify's LaTeX
  parser for what that one does not read (relations, \\pm, functions, matrices), after TeX programs,
  exploding powers and deep nesting are refused; rewards/equivalence.py: the comparison.
- rewards/pool.py: worker processes (sympy imported once each) where every check has a hard deadline and an
  overrunning worker is killed and replaced.

Equivalence rules (choices, so callers know what "equal" means):
- "50%" equals "50"; "0.5" equals "50%" only with percent=True. Decimals are exact: 0.333 != 1/3.
- "1,000" is a thousands separator only when the whole answer is one such number; "2, 3" is a list; TeX's
  "1{,}000", "32,\\! 349" and spaced "1 000" / "10\\;000" (groups of exactly three) are thousands too.
- Decimal comma: an unspaced "d,d" that is no thousands number ("1,5", "1000,99", "0,111") reads both as the
  list 1, 5 and as the decimal 1.5, so it equals 1.5 and equals {1, 5}; "1,000" stays one thousand.
- ".4" is 0.4; \\dfrac, \\tfrac, \\cfrac are \\frac; \\sqrt3 is \\sqrt{3}, a braceless argument being one token
  (\\sqrt12 is \\sqrt{1}2 = 2, as \\frac12 is 1/2); \\left, \\right, $...$, \\(...\\) and \\[...\\] are dropped.
- A whole answer that is a mixed number is one: "2\\frac{3}{4}" and "2 3/4" are 11/4 (a proper fraction after a
  whole number; "2\\frac{5}{4}" stays the product 5/2).
- "x = 3", "3 = x" and "3" are equal; "x = 2, y = 3" is a system compared by variable name (or as the
  tuple of values ordered by name), and so is "(x, y) = (2, 3)"; other equations are equal when lhs - rhs
  agree up to sign. A chain "s = 2\\cdot 3 + 4 = 10", and an equation of numbers "2 + 3 = 5", is its last member.
- Relations are the sets they describe, in one variable: "y \\le -2" = "-2 \\ge y" = "(-\\infty, -2]";
  "-2 < x \\le 7" = "(-2, 7]", with symbolic bounds too ("a < x \\le b"); "t \\ne 4" is the reals but 4;
  "3 - 2t < 1" = "t > 1" (solved over the reals); two relations must name the same variable.
- "x = 1 or x = 2", "1, 2" and "{2, 1}" are unordered solution sets, and so is "1 \\pm \\sqrt{19}" (a set of two);
  "(1, 2)" is an ordered pair (or the open interval), "[1, 2)" an interval, a \\cup union a list of intervals;
  a bare list is ordered only when compared with a tuple. A matrix equals a matrix of the same shape with
  equal entries, nothing else (a column vector is not a tuple).
- trailing words are units ("12 apples", "5 cm^2", "5 \\text{ meters}"); \\text{}, \\textbf{}, \\mathrm{} and the
  like keep their content, "$" is dropped; a one-letter unit ("5 m") stays a variable; no unit conversion.
  "e" is Euler's number, "pi" is pi, "oo"/"\\infty" infinity; "30^\\circ" is 30 (no conversion to radians).
- functions have their exact values: "\\sin(\\pi/6)" = 1/2, "\\log_2 8" = 3 (a bare "sin", "log" reads as \\sin).
- irrational numbers agree to 40 significant digits; expressions: simplify(a - b) == 0, else equal values
  at random points (which also give a fast "not equal" before simplify).
- not supported: "\\approx"; 1e5 notation; equations equal only up to a factor other than -1 ("2x = 4" is not
  "x = 2"); chains of relations in several variables; base subscripts (204_5); text answers ("\\text{(C)}", names);
  a bare product of letters in a sentence-free answer, such as "a^2+2ab+b^2" with no marker, is taken for
  words (its last number is extracted).
"""

from __future__ import annotations

from dataclasses import dataclass

from rewards import pool as workers
from rewards.extract import MAX_CHARS, extract_answer
from rewards.normalize import precheck, reads_as_answer
from rewards.pool import shutdown

# the forms a gold answer may take, for the error line of a data file whose answers the verifier cannot read
ANSWER_FORMS = ("answers the verifier reads: a number (72, -3/4, 1,000, 2.5, 50%), an expression or equation "
                "(2x+1, x = 3), a set, tuple or interval ({1, 2}, (1, 2), [0, 1)), an inequality (x \\le 3), LaTeX "
                "(\\frac{1}{2}, \\sqrt{3}, \\boxed{...}), or a worked solution ending '#### 72'")

__all__ = ["ANSWER_FORMS", "MAX_CHARS", "Verdict", "extract_answer", "precheck", "reads_as_answer", "shutdown", "verify",
           "verify_many", "verify_response"]


@dataclass(frozen=True)
class Verdict:
    equivalent: bool
    reason: str  # one of: "equal", "not_equal", "unparseable", "timeout", "no_answer"
    prediction: str | None  # the extracted answer text (None if none found)


def _verify_all(jobs: list[tuple[str | None, str, bool]], timeout: float) -> list[Verdict]:
    jobs = [(p, str(g), bool(percent)) for p, g, percent in jobs]  # a gold may come from a column of ints
    reasons = [precheck(p, g, percent) for p, g, percent in jobs]
    ask = [i for i, r in enumerate(reasons) if r is None]
    if ask:
        for i, r in zip(ask, workers.pool.run([["check", *jobs[i]] for i in ask], timeout)):
            reasons[i] = r
    return [Verdict(r == "equal", r, None if r == "no_answer" else p) for r, (p, _, _) in zip(reasons, jobs)]


def verify(prediction: str, gold: str, timeout: float = 2.0, percent: bool = False) -> Verdict:
    """Is an already-extracted answer equivalent to the gold answer? The module docstring has the rules."""
    return _verify_all([(prediction, gold, percent)], timeout)[0]


def verify_response(response: str, gold: str, timeout: float = 2.0, last_number_fallback: bool = True) -> Verdict:
    return verify_many([(response, gold)], timeout, last_number_fallback)[0]


def verify_many(pairs: list[tuple[str, str]], timeout: float = 2.0, last_number_fallback: bool = True) -> list[Verdict]:
    """(response, gold) pairs, extracted here and checked in parallel by the pool; order kept."""
    return _verify_all([(extract_answer(r, last_number_fallback), g, False) for r, g in pairs], timeout)
