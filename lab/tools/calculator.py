"""The `calculator` tool: exact arithmetic on model-written expressions, without eval.

The expression is parsed with `ast.parse(mode="eval")`, which builds a syntax tree and executes nothing, and
only number literals, + - * / // % ** and unary signs are evaluated, by walking the tree here. Every value is
a Fraction, so 1/3*3 is exactly 1 and 0.1+0.2 is exactly 0.3. Exponents and magnitudes are bounded before
anything is computed, so `9**9**9**9` is refused instantly instead of eating the machine's memory.
"""

from __future__ import annotations

import ast
import math
import operator
import time
from decimal import Decimal, localcontext
from fractions import Fraction

from lab.tools.result import ToolResult

MAX_CHARS = 200
MAX_EXPONENT = 1000
MAX_MAGNITUDE = 10**100
SIGNIFICANT_DIGITS = 10

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}


class _Refused(Exception):
    """An expression the calculator will not evaluate; args are (message for the model, error_kind)."""


def _too_large() -> _Refused:
    return _Refused("error: number too large", "too_large")


def _log10(value: Fraction) -> float:
    # Numerator and denominator separately: float(value) would overflow or underflow to 0 for extreme values.
    return math.log10(abs(value.numerator)) - math.log10(value.denominator)


def _checked(value: Fraction) -> Fraction:
    if abs(value) > MAX_MAGNITUDE:
        raise _too_large()
    return value


def _power(base: Fraction, exponent: Fraction) -> Fraction:
    if exponent.denominator != 1:
        raise _Refused("error: only whole-number exponents are supported", "bad_arguments")
    if abs(exponent) > MAX_EXPONENT:
        raise _too_large()
    if base == 0:
        if exponent < 0:
            raise _Refused("error: division by zero", "division_by_zero")
        return Fraction(1) if exponent == 0 else Fraction(0)
    # Estimate the size first (a little slack; the exact check follows) so that no huge power is ever built.
    if exponent * _log10(base) > math.log10(MAX_MAGNITUDE) + 1:
        raise _too_large()
    return _checked(base ** int(exponent))


def _evaluate(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        if isinstance(node.value, float) and not math.isfinite(node.value):
            raise _too_large()
        # repr gives the shortest decimal that round-trips, so the literal 0.1 becomes exactly 1/10.
        return _checked(Fraction(repr(node.value)) if isinstance(node.value, float) else Fraction(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        value = _evaluate(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        return _power(_evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if right == 0 and isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)):
            raise _Refused("error: division by zero", "division_by_zero")
        return _checked(Fraction(_BINARY[type(node.op)](left, right)))
    raise _Refused("error: only arithmetic is allowed", "bad_arguments")


def format_number(value: Fraction) -> str:
    """Integers in full; anything else as a decimal rounded to 10 significant digits (1/3 -> 0.3333333333)."""
    if value.denominator == 1:
        return str(value.numerator)
    with localcontext() as context:
        context.prec = SIGNIFICANT_DIGITS + 10
        quotient = Decimal(value.numerator) / Decimal(value.denominator)
    return format(quotient, f".{SIGNIFICANT_DIGITS}g")


def _calculate(expression: str) -> str:
    if not isinstance(expression, str) or not expression.strip():
        raise _Refused("error: the calculator needs an arithmetic expression, e.g. 12*(3+4)", "bad_arguments")
    expression = expression.strip()
    if len(expression) > MAX_CHARS:
        raise _Refused(f"error: expression longer than {MAX_CHARS} characters", "bad_arguments")
    try:
        tree = ast.parse(expression, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        hint = " (use ** for powers)" if "^" in expression else ""
        raise _Refused(f"error: not a valid arithmetic expression{hint}", "syntax") from None
    if "^" in expression:  # parses as XOR, which is never what a model means
        raise _Refused("error: only arithmetic is allowed (use ** for powers)", "bad_arguments")
    return format_number(_evaluate(tree.body))


def calculate(expression: str) -> ToolResult:
    """Evaluate an arithmetic expression exactly; every failure is an `error: ...` result, never an exception."""
    start = time.monotonic()
    try:
        output, ok, kind = _calculate(expression), True, None
    except _Refused as refused:
        (output, kind), ok = refused.args, False
    except (ArithmeticError, RecursionError, MemoryError, ValueError, TypeError):
        # Belt and braces: the checks above should leave nothing for these to catch.
        output, ok, kind = "error: could not evaluate the expression", False, "bad_arguments"
    return ToolResult(ok, output, kind, time.monotonic() - start)
