"""The calculator tool: arithmetic evaluated by walking the expression's syntax tree, never ``eval``."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

from agentkd.tools.base import tool

MAX_DIGITS = 4000  # below Python's 4300-digit int-to-str limit; 9**9**9 would need 370 million
_MAX_BITS = int(MAX_DIGITS * math.log2(10))


def _round(value: int | float, ndigits: int | None = None) -> int | float:
    """Round half away from zero, as people do by hand (2.5 -> 3), not Python's half-to-even."""
    if ndigits is not None and (not isinstance(ndigits, int) or abs(ndigits) > 100):
        raise ValueError("round(x, n) needs a whole number n between -100 and 100")
    if isinstance(value, float) and not math.isfinite(value):
        return value
    with localcontext() as ctx:
        ctx.prec = MAX_DIGITS + 200
        rounded = Decimal(repr(value)).quantize(Decimal(1).scaleb(-(ndigits or 0)), rounding=ROUND_HALF_UP)
    return int(rounded) if ndigits is None or (isinstance(value, int) and ndigits >= 0) else type(value)(rounded)


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt, "abs": abs, "round": _round, "min": min, "max": max, "floor": math.floor,
    "ceil": math.ceil, "log": math.log, "exp": math.exp,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
_ALLOWED = (f"numbers, + - * / // % **, parentheses, the functions {', '.join(_FUNCTIONS)} "
            f"and the constants {', '.join(_CONSTANTS)}")

Number = int | float


def evaluate(expression: str) -> Number:
    """The value of an arithmetic expression; anything outside the allowed forms raises ValueError."""
    text = expression.strip().rstrip("=").strip()
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"{text!r} is not a valid expression ({exc.msg}); it may only contain {_ALLOWED}") from None
    return _eval(tree.body)


def format_number(value: Number) -> str:
    """Integers without ``.0``; other floats to 15 significant digits (so 0.1 + 0.2 shows 0.3)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return f"{value:.15g}" if isinstance(value, float) else str(value)


def _eval(node: ast.expr) -> Number:
    match node:
        case ast.Constant(value=bool()):
            raise ValueError("True and False are not numbers here; write 1 or 0")
        case ast.Constant(value=int() | float() as value):
            return value
        case ast.Constant(value=value):
            raise ValueError(f"only numbers are allowed, not {type(value).__name__} {value!r}")
        case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINARY:
            a, b = _eval(left), _eval(right)
            if isinstance(op, ast.Pow):
                _check_power(a, b)
            return _checked(_BINARY[type(op)](a, b))
        case ast.BinOp(op=ast.BitXor()):
            raise ValueError("'^' is not a power here: write ** instead, e.g. 2**10")
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            return -_eval(operand)
        case ast.UnaryOp(op=ast.UAdd(), operand=operand):
            return _eval(operand)
        case ast.Name(id=name) if name in _CONSTANTS:
            return _CONSTANTS[name]
        case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in _FUNCTIONS:
            return _checked(_FUNCTIONS[name](*(_eval(a) for a in args)))
        case ast.Call(func=ast.Name(id=name)):
            raise ValueError(f"function {name!r} is not available (no keyword arguments either); "
                             f"available: {', '.join(_FUNCTIONS)}")
        case ast.Call():
            raise ValueError(f"only these functions can be called: {', '.join(_FUNCTIONS)}")
        case ast.Name(id=name):
            raise ValueError(f"unknown name {name!r}: variables are not supported; only {_ALLOWED} are allowed")
        case ast.Attribute():
            raise ValueError(f"attribute access is not allowed; only {_ALLOWED} are allowed")
    raise ValueError(f"{type(node).__name__} is not allowed in an expression; only {_ALLOWED} are allowed")


def _check_power(base: Number, exponent: Number) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        digits = exponent * math.log10(abs(base))
        if digits > MAX_DIGITS:
            raise ValueError(f"the result would have about {digits:.3g} digits (limit {MAX_DIGITS}); "
                             "use logarithms, or the python tool with modular arithmetic (pow(a, b, m))")


def _checked(value: Any) -> Number:
    if isinstance(value, complex):
        raise ValueError("the result is a complex number (e.g. a fractional power of a negative number)")
    if isinstance(value, int) and value.bit_length() > _MAX_BITS:
        raise ValueError(f"the result has more than {MAX_DIGITS} digits")
    return value  # type: ignore[no-any-return]


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression and return its value.

    Supports + - * / // % ** and parentheses, the functions sqrt, abs, round, min, max, floor, ceil,
    log (natural, or log(x, base)), exp, and the constants pi and e. Integers are exact; round
    rounds halves up (2.5 -> 3).

    Args:
        expression: The expression, e.g. "(17 * 23 + 5) / 4" or "sqrt(2) * pi".
    """
    return format_number(evaluate(expression))
