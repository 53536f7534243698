"""The math task families: each draws its numbers from the caller's `random.Random` for a difficulty band and
writes the question, the exact gold answer, the worked steps and a check line (a Draft).

The gold answer comes from exact integer / Fraction arithmetic; the parameters go into `extras` so a
verifier can recompute it without parsing the question. tasks/math.py registers the families and samples
from them; the step lines are written with tasks/math_solutions.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction
from math import gcd, lcm

from tasks.math_solutions import add_steps, apply_op, inverse_step, mul_steps, simplify_steps, sub_steps, terms

NAMES = ["Mia", "Sam", "Ana", "Leo", "Zoe", "Ben", "Ivy", "Max", "Eva", "Tom", "Nora", "Omar", "Lily", "Raj"]


@dataclass
class Draft:
    """A generator's output before the split filter and the optional check line."""
    question: str
    answer: str
    steps: list[str]
    check: str  # "Check: ... Correct." — appended only for a check_share of problems
    extras: dict


def _ndigit(rng: random.Random, k: int) -> int:
    return rng.randint(1 if k == 1 else 10 ** (k - 1), 10 ** k - 1)


# ----- arithmetic ------------------------------------------------------------------------------------

ARITHMETIC_SHAPES = {1: [("+", 1, 1), ("-", 1, 1)], 2: [("+", 2, 2), ("-", 2, 2)],
                     3: [("*", 2, 1), ("+", 3, 3), ("-", 3, 3)], 4: [("*", 3, 2), ("+", 4, 4), ("-", 4, 4)]}


def arithmetic(rng: random.Random, band: int) -> Draft:
    op, da, db = rng.choice(ARITHMETIC_SHAPES[band])
    a, b = _ndigit(rng, da), _ndigit(rng, db)
    if op == "-" and a < b:
        a, b = b, a  # keep results non-negative so the column procedure never flips sign
    if op == "*" and db == 1:
        b = max(b, 2)
    v = apply_op(a, op, b)
    steps = ["Work column by column from the right."] + {"+": add_steps, "-": sub_steps, "*": mul_steps}[op](a, b)
    question = rng.choice(["What is {}?", "Compute {}.", "Calculate {}."]).format(f"{a} {op} {b}")
    return Draft(question, str(v), steps + [f"Result: {v}."], f"Check: {inverse_step(a, op, b, v)}. Correct.",
                 {"a": a, "b": b, "op": op})


# ----- order of operations -----------------------------------------------------------------------------

def _render(toks: list[str]) -> str:
    return " ".join(toks).replace("( ", "(").replace(" )", ")")


def _evaluate(toks: list[str]) -> tuple[int, list[str], tuple] | None:
    """Reduce innermost parentheses first, then * and / before + and -, left to right; one line per step.
    None if a step goes negative or divides inexactly (the tiny model only ever sees whole numbers)."""
    lines, last = [], None
    while len(toks) > 1:
        lo, hi = 0, len(toks)
        if ")" in toks:
            hi = toks.index(")")
            lo = max(i for i in range(hi) if toks[i] == "(") + 1
        ops = [i for i in range(lo, hi) if toks[i] in ("*", "/")] or [i for i in range(lo, hi) if toks[i] in ("+", "-")]
        i = ops[0]
        a, op, b = int(toks[i - 1]), toks[i], int(toks[i + 1])
        if op == "/" and (b == 0 or a % b):
            return None
        v = apply_op(a, op, b)
        if v < 0:
            return None
        toks = toks[:i - 1] + [str(v)] + toks[i + 2:]
        if lo > 0 and toks[lo - 1] == "(" and toks[lo + 1] == ")":  # "(8)" -> "8"
            toks = toks[:lo - 1] + [toks[lo]] + toks[lo + 2:]
        lines.append(f"{a} {op} {b} = {v}" + (f", so the expression becomes {_render(toks)}." if len(toks) > 1 else "."))
        last = (a, op, b, v)
    return int(toks[0]), lines, last


OOO_SHAPES = {1: (3, "+-*", False, 9), 2: (4, "+-*", False, 12), 3: (4, "+-*", True, 12), 4: (5, "+-*/", True, 15)}


def order_of_operations(rng: random.Random, band: int) -> Draft:
    count, symbols, parens, top = OOO_SHAPES[band]
    while True:
        ops = [rng.choice(symbols) for _ in range(count - 1)]
        if not (set(ops) & set("*/") and set(ops) & set("+-")):
            continue  # without both precedence levels the problem does not test precedence
        toks = [str(rng.randint(1, top))]
        for op in ops:
            toks += [op, str(rng.randint(1, top))]
        if parens:
            i = rng.randrange(count - 1)
            j = rng.randrange(i + 1, count)
            if (i, j) == (0, count - 1):
                continue
            toks = toks[:2 * i] + ["("] + toks[2 * i:2 * j + 1] + [")"] + toks[2 * j + 1:]
        result = _evaluate(toks)
        if result is not None:
            break
    v, lines, (a, op, b, _) = result
    expr = _render(toks)
    steps = ["Parentheses first, then * and / from left to right, then + and - from left to right."] + lines
    return Draft(f"What is {expr}?", str(v), steps, f"Check: {inverse_step(a, op, b, v)}. Correct.", {"expr": expr})


# ----- fractions -------------------------------------------------------------------------------------

def fractions(rng: random.Random, band: int) -> Draft:
    if band == 1:
        d = rng.randint(2, 9)
        n = rng.choice([k for k in range(1, d) if gcd(k, d) == 1])
        k = rng.randint(2, 6)
        v = Fraction(n, d)
        check = f"Check: {n} * {d * k} = {n * d * k} and {d} * {n * k} = {n * d * k}. Correct."
        return Draft(f"Simplify {n * k}/{d * k}.", str(v), simplify_steps(n * k, d * k), check,
                     {"op": "simplify", "a": [n * k, d * k]})
    while True:
        if band == 2:
            d1 = d2 = rng.randint(3, 12)
            n1, n2, op = rng.randint(1, d1 - 1), rng.randint(1, d1 - 1), rng.choice("+-")
        elif band == 3:
            d1, d2 = rng.randint(2, 12), rng.randint(2, 12)
            n1, n2, op = rng.randint(1, d1 - 1), rng.randint(1, d2 - 1), rng.choice("+-")
        else:
            d1, d2, n1, n2, op = rng.randint(2, 9), rng.randint(2, 9), rng.randint(1, 9), rng.randint(1, 9), rng.choice("*/")
        x, y = Fraction(n1, d1), Fraction(n2, d2)
        v = {"+": x + y, "-": x - y, "*": x * y, "/": x / y}[op]
        # operands in lowest terms, distinct denominators in band 3, and a positive answer that is not whole
        if gcd(n1, d1) == gcd(n2, d2) == 1 and (band != 3 or d1 != d2) and v > 0 and v.denominator > 1:
            break
    if op in "+-" and d1 == d2:
        m = n1 + n2 if op == "+" else n1 - n2
        verb = "add" if op == "+" else "subtract"
        steps = [f"The denominators are both {d1}, so {verb} the numerators: {n1} {op} {n2} = {m}, giving {m}/{d1}."]
        steps += simplify_steps(m, d1)
    elif op in "+-":
        common = lcm(d1, d2)
        a, b = n1 * common // d1, n2 * common // d2
        m = a + b if op == "+" else a - b
        steps = [f"The common denominator is lcm({d1}, {d2}) = {common}.", f"{x} = {a}/{common} and {y} = {b}/{common}.",
                 f"{a} {op} {b} = {m}, giving {m}/{common}."] + simplify_steps(m, common)
    else:
        p, q = (n2, d2) if op == "*" else (d2, n2)  # dividing by a fraction is multiplying by its flip
        steps = [] if op == "*" else [f"Dividing by {y} is multiplying by {p}/{q}."]
        steps += [f"Multiply the numerators: {n1} * {p} = {n1 * p}.",
                  f"Multiply the denominators: {d1} * {q} = {d1 * q}, giving {n1 * p}/{d1 * q}."]
        steps += simplify_steps(n1 * p, d1 * q)
    inv = {"+": "-", "-": "+", "*": "/", "/": "*"}[op]
    shown = f"{x} divided by {y}" if op == "/" else f"{x} {op} {y}"  # "2/5 / 7/6" would be ambiguous
    return Draft(f"What is {shown}? Give the answer as a fraction in lowest terms.", str(v), steps,
                 f"Check: ({v}) {inv} ({y}) = {x}. Correct.", {"op": op, "a": [n1, d1], "b": [n2, d2]})


# ----- percentages -----------------------------------------------------------------------------------

def percentages(rng: random.Random, band: int) -> Draft:
    while True:
        if band == 1:
            kind, p, base = "of", rng.choice([10, 20, 25, 50]), 20 * rng.randint(1, 10)
        elif band == 2:
            kind, p, base = "of", 5 * rng.randint(1, 19), 10 * rng.randint(1, 40)
        elif band == 3:
            kind, p, base = rng.choice(["increase", "decrease"]), 5 * rng.randint(1, 10), 10 * rng.randint(2, 30)
        else:
            kind, p, base = "what_percent", rng.randint(1, 99), 10 * rng.randint(1, 30)
        if p * base % 100 == 0:
            break
    part = p * base // 100
    steps = [f"{p}% of {base} means {p}/100 of {base}.", f"{p} * {base} = {p * base}.", f"{p * base} / 100 = {part}."]
    check = f"Check: {part} * 100 / {base} = {p}, so {part} is {p}% of {base}. Correct."
    extras = {"kind": kind, "p": p, "base": base}
    if kind == "of":
        return Draft(f"What is {p}% of {base}?", str(part), steps, check, extras)
    if kind == "what_percent":
        steps = [f"Divide the part by the whole and multiply by 100: {part} * 100 / {base}.",
                 f"{part} * 100 = {part * 100}.", f"{part * 100} / {base} = {p}."]
        check = f"Check: {p} * {base} / 100 = {part}, so {p}% of {base} is {part}. Correct."
        return Draft(f"What percent of {base} is {part}?", f"{p}%", steps, check, extras | {"part": part})
    item = rng.choice(["jacket", "bike", "lamp", "chair", "game", "backpack"])
    v = base + part if kind == "increase" else base - part
    sign, change = ("+", "goes up") if kind == "increase" else ("-", "is discounted")
    steps += [f"{base} {sign} {part} = {v}."]
    check = f"Check: {inverse_step(base, sign, part, v)}, and {part} * 100 / {base} = {p}. Correct."
    question = f"A {item} costs ${base}. Its price {change} by {p}%. What is the new price in dollars?"
    return Draft(question, str(v), steps, check, extras)


# ----- equations -------------------------------------------------------------------------------------

def linear_equations(rng: random.Random, band: int) -> Draft:
    """a*x + b = c*x + d with an integer solution; bands add a coefficient, negatives, then x on both sides."""
    x = rng.randint(1, 20) if band <= 2 else rng.randint(-12, 12)
    a = 1 if band == 1 else rng.choice([k for k in range(-9, 10) if abs(k) >= 2 and (band > 2 or k > 0)])
    b = rng.randint(1, 20) if band <= 2 else rng.choice([k for k in range(-20, 21) if k])
    c = rng.choice([k for k in range(-6, 7) if k and k != a]) if band == 4 else 0
    d = a * x + b - c * x
    steps, k, rhs = [], a - c, d - b
    if c:
        verb = f"Subtract {terms((c, 'x'))} from" if c > 0 else f"Add {terms((-c, 'x'))} to"
        steps.append(f"{verb} both sides: {terms((k, 'x'), (b, ''))} = {d}.")
    verb = f"Subtract {b} from" if b > 0 else f"Add {-b} to"
    steps.append(f"{verb} both sides: {terms((k, 'x'))} = {rhs}.")
    if k != 1:
        steps.append(f"Divide both sides by {k}: x = {x}.")
    question = f"Solve {terms((a, 'x'), (b, ''))} = {terms((c, 'x'), (d, '')) if c else d}."
    check = f"Check: {terms((a, f'({x})'), (b, ''))} = {a * x + b}"
    check += f" and {terms((c, f'({x})'), (d, ''))} = {a * x + b}. Correct." if c else ". Correct."
    return Draft(question, f"x = {x}", steps, check, {"a": a, "b": b, "c": c, "d": d})


SYSTEM_SHAPES = {2: (1, 3, 0, 10), 3: (-5, 5, -10, 10), 4: (-9, 9, -12, 12)}


def linear_systems(rng: random.Random, band: int) -> Draft:
    while True:
        if band == 1:
            (a1, b1, a2, b2), x, y = (1, 1, 1, -1), rng.randint(1, 10), rng.randint(1, 10)
        else:
            lo, hi, vlo, vhi = SYSTEM_SHAPES[band]
            a1, b1, a2, b2 = (rng.choice([k for k in range(lo, hi + 1) if k]) for _ in range(4))
            x, y = rng.randint(vlo, vhi), rng.randint(vlo, vhi)
        if a2 * b1 - a1 * b2 != 0:
            break
    c1, c2 = a1 * x + b1 * y, a2 * x + b2 * y
    e1, e2 = terms((a1, "x"), (b1, "y")), terms((a2, "x"), (b2, "y"))
    k, m = a2 * b1 - a1 * b2, a2 * c1 - a1 * c2
    if a1 == a2:
        steps = ["The x coefficients are equal, so subtract the second equation from the first:"]
    else:
        steps = [f"Multiply the first equation by {a2}: {terms((a2 * a1, 'x'), (a2 * b1, 'y'))} = {a2 * c1}.",
                 f"Multiply the second equation by {a1}: {terms((a1 * a2, 'x'), (a1 * b2, 'y'))} = {a1 * c2}.",
                 "Subtract the second equation from the first:"]
    steps.append(f"{terms((k, 'y'))} = {m}.")
    if k != 1:
        steps.append(f"Divide both sides by {k}: y = {y}.")
    steps.append(f"Put y = {y} into the first equation: {terms((a1, 'x'), (b1, f'({y})'))} = {c1}, "
                 f"so {terms((a1, 'x'))} = {c1 - b1 * y}.")
    if a1 != 1:
        steps.append(f"Divide both sides by {a1}: x = {x}.")
    check = (f"Check: {terms((a1, f'({x})'), (b1, f'({y})'))} = {c1} and "
             f"{terms((a2, f'({x})'), (b2, f'({y})'))} = {c2}. Correct.")
    question = f"Solve the system: {e1} = {c1} and {e2} = {c2}."
    return Draft(question, f"x = {x}, y = {y}", steps, check, {"a1": a1, "b1": b1, "c1": c1, "a2": a2, "b2": b2, "c2": c2})


def quadratics(rng: random.Random, band: int) -> Draft:
    """a(x - r)(x - s) = 0 expanded; answered as the solution set, roots ascending, a double root once."""
    lo, hi = (1, 6) if band == 1 else (-6, 6) if band == 3 else (-9, 9)
    r, s = sorted((rng.randint(lo, hi), rng.randint(lo, hi)))
    a = rng.randint(2, 3) if band == 3 else rng.randint(1, 3) if band == 4 else 1
    b, c = -a * (r + s), a * r * s
    poly = terms((a, "x^2"), (b, "x"), (c, ""))
    steps = []
    if band == 4:  # the constant starts on the right: one more step to reach standard form
        question = f"Solve {terms((a, 'x^2'), (b, 'x'))} = {-c}. Give the solution set."
        steps.append(f"Move everything to the left: {poly} = 0.")
    else:
        question = f"Solve {poly} = 0. Give the solution set."
    if a != 1:
        steps.append(f"Divide both sides by {a}: {terms((1, 'x^2'), (b // a, 'x'), (c // a, ''))} = 0.")
    steps.append(f"Find two numbers with product {c // a} and sum {b // a}: {-r} and {-s}.")
    fr, fs = terms((1, "x"), (-r, "")), terms((1, "x"), (-s, ""))
    steps.append(f"So ({fr})({fs}) = 0." if r != s else f"So ({fr})^2 = 0.")
    steps.append(f"{fr} = 0 gives x = {r}" + (f", and {fs} = 0 gives x = {s}." if r != s else ", a double root."))
    answer = "{" + ", ".join(str(v) for v in sorted({r, s})) + "}"
    check = "Check: " + " and ".join(f"{terms((a, f'({v})^2'), (b, f'({v})'), (c, ''))} = 0" for v in sorted({r, s}))
    return Draft(question, answer, steps, check + ". Correct.", {"a": a, "b": b, "c": c})


# ----- word problems ---------------------------------------------------------------------------------

def word_problems(rng: random.Random, band: int) -> Draft:
    """GSM8K-shaped stories: two steps in bands 1-2, three in bands 3-4; bands 2 and 4 use bigger numbers.
    Each story is a chain of (a, op, b, lead-in) steps, so every solution line has the same shape."""
    three, big, name = band >= 3, band in (2, 4), rng.choice(NAMES)
    R = lambda small, large: rng.randint(*(large if big else small))  # noqa: E731
    kind = rng.choice(["shopping", "sharing", "ages", "baking"])
    if kind == "shopping":
        items, extra = rng.choice([("notebooks", "pen"), ("apples", "melon"), ("stickers", "folder"), ("tickets", "snack")])
        q, p, e = R((2, 5), (3, 12)), R((1, 9), (2, 25)), R((1, 9), (5, 40))
        story = f"{name} buys {q} {items} for ${p} each and a {extra} for ${e}."
        chain = [(q, "*", p, f"The {items} cost"), (q * p, "+", e, f"With the {extra}, the total is")]
        extras = {"q": q, "p": p, "e": e}
        if three:
            extras["bill"] = bill = 10 * ((q * p + e) // 10 + 1 + rng.randint(0, 2))
            story += f" {name} pays with a ${bill} bill. How many dollars of change does {name} get?"
            chain.append((bill, "-", q * p + e, "The change is"))
        else:
            story += f" How many dollars does {name} spend in total?"
    elif kind == "sharing":
        things, f = rng.choice(["apples", "marbles", "cookies", "stickers", "pencils"]), R((2, 5), (2, 9))
        if three:
            g, s = R((2, 5), (3, 9)), R((2, 6), (4, 12))
            total, f = g * s, min(f, g * s - 1)
            each = rng.randint(1, (total - 1) // f)
            story, extras = f"{name} has {g} boxes with {s} {things} in each box.", {"g": g, "s": s}
            chain = [(g, "*", s, "In total there are")]
        else:
            each = R((1, 6), (2, 15))
            total = each * f + R((1, 9), (3, 30))
            story, chain, extras = f"{name} has {total} {things}.", [], {"total": total}
        k = total - each * f
        story += (f" {name} gives {k} of them to a neighbour and shares the rest equally among {f} friends."
                  f" How many {things} does each friend get?")
        chain += [(total, "-", k, "After giving some away there are"), (total - k, "/", f, "Each friend gets")]
        extras |= {"k": k, "f": f}
    elif kind == "ages":
        sib = rng.choice(["brother", "sister", "cousin"])
        age, older, later = R((4, 12), (5, 30)), R((2, 6), (2, 15)), R((2, 9), (3, 20))
        now = age + older
        story = f"{name} is {age} years old. {name}'s {sib} is {older} years older than {name}."
        chain, extras = [(age, "+", older, f"The {sib} is now")], {"age": age, "older": older, "later": later}
        if three:
            extras["times"] = times = rng.randint(2, 3) if big else rng.randint(2, 4)
            story += f" Their aunt is {times} times as old as the {sib}. How old will the aunt be in {later} years?"
            chain += [(now, "*", times, "The aunt is now"), (now * times, "+", later, f"In {later} years the aunt will be")]
        else:
            story += f" How old will the {sib} be in {later} years?"
            chain.append((now, "+", later, f"In {later} years the {sib} will be"))
    else:
        goods = rng.choice(["muffins", "loaves", "pies", "cookies", "rolls"])
        rate, hours = R((2, 9), (6, 24)), R((2, 5), (3, 8))
        made = rate * hours
        bag = rng.randint(2, min(6, made - 1)) if three else 1
        left = bag * rng.randint(1, (made - 1) // bag)  # whole bags only, and something is always sold
        story = f"{name} bakes {rate} {goods} every hour for {hours} hours and sells {made - left} of them."
        chain, extras = [(rate, "*", hours, f"{name} bakes"), (made, "-", made - left, "Left after selling:")], \
            {"rate": rate, "hours": hours, "sold": made - left}
        if three:
            extras["bag"] = bag
            story += f" The rest are packed in bags of {bag}. How many bags are filled?"
            chain.append((left, "/", bag, "Bags filled:"))
        else:
            story += f" How many {goods} are left?"
    steps = [f"{lead} {a} {op} {b} = {apply_op(a, op, b)}." for a, op, b, lead in chain]
    a, op, b, _ = chain[-1]
    v = apply_op(a, op, b)
    return Draft(story, str(v), steps, f"Check: {inverse_step(a, op, b, v)}. Correct.",
                 {"kind": kind, "steps": len(chain)} | extras)
