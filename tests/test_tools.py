"""The Tool type, the @tool decorator's schemas, argument checking, the ToolBox and the calculator."""

from __future__ import annotations

import json
import time
from typing import Literal, Optional

import pytest

from agentkd.errors import ToolError
from agentkd.tools import Tool, ToolBox, ToolResult, calculator, default_tools, tool
from agentkd.tools.base import MAX_OUTPUT


@tool
def search(query: str, limit: int = 5, unit: Literal["km", "mi"] = "km", tags: list[str] | None = None,
           weights: Optional[dict[str, float]] = None, exact: bool = False, scale: float = 1.0) -> str:  # noqa: UP045
    """Search the notes for a phrase.

    Longer prose that the model does not need.

    Args:
        query: What to look for,
            in plain words.
        limit (int): How many results to return.
        unit: Distance unit.
        tags: Only notes with these tags.
        weights: Weight per field.

    Returns:
        The matching notes.
    """
    return f"{query}|{limit}|{unit}|{tags}|{weights}|{exact}|{scale}"


def test_decorator_builds_the_schema_from_hints_and_docstring() -> None:
    assert search.name == "search"
    assert search.description == "Search the notes for a phrase."
    assert search.parameters == {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "What to look for, in plain words."},
            "limit": {"type": "integer", "description": "How many results to return.", "default": 5},
            "unit": {"type": "string", "enum": ["km", "mi"], "description": "Distance unit.", "default": "km"},
            "tags": {"type": ["array", "null"], "items": {"type": "string"},
                     "description": "Only notes with these tags.", "default": None},
            "weights": {"type": ["object", "null"], "additionalProperties": {"type": "number"},
                        "description": "Weight per field.", "default": None},
            "exact": {"type": "boolean", "default": False},
            "scale": {"type": "number", "default": 1.0},
        },
        "required": ["query"],
    }
    assert search.spec() == {"type": "function", "function": {
        "name": "search", "description": search.description, "parameters": search.parameters}}
    json.dumps(search.spec())  # the spec must be sendable as JSON


def test_decorator_with_options_and_optional_without_default() -> None:
    @tool(name="lookup", description="Look a word up.", timeout=3)
    def f(word: str | None, mode: Literal[1, 2]) -> str:
        """Ignored docstring."""
        return str(word)

    assert (f.name, f.description, f.timeout) == ("lookup", "Look a word up.", 3)
    assert f.parameters["required"] == ["word", "mode"]
    assert f.parameters["properties"]["word"] == {"type": ["string", "null"]}
    assert f.parameters["properties"]["mode"] == {"type": "integer", "enum": [1, 2]}
    assert f.run({"word": None, "mode": 2}) == ToolResult("None")


def _untyped(x):  # type: ignore[no-untyped-def]
    """Doc."""


def _set_param(x: set[int]) -> None:
    """Doc."""


def _custom_class(x: ToolBox) -> None:
    """Doc."""


def _int_keys(x: dict[int, str]) -> None:
    """Doc."""


def _var_args(*xs: int) -> None:
    """Doc."""


def _no_doc(x: int) -> None:
    pass


@pytest.mark.parametrize(("fn", "message", "hint"), [
    (_untyped, "parameter 'x' has no type hint", "annotate it"),
    (_set_param, "unsupported type", "Literal"),
    (_custom_class, "unsupported type", "list[...]"),
    (_int_keys, "keys are strings", "dict[str, ...]"),
    (_var_args, "*args", "normal parameter"),
    (_no_doc, "has no description", "add a docstring"),
])
def test_bad_definitions_raise_tool_error_saying_how_to_fix(fn: object, message: str, hint: str) -> None:
    with pytest.raises(ToolError) as info:
        tool(fn)  # type: ignore[call-overload]
    assert message in str(info.value)
    assert info.value.hint is not None and hint in info.value.hint


def test_bad_tool_name_raises() -> None:
    with pytest.raises(ToolError, match="invalid tool name"):
        Tool("has space", "Does things.", {"type": "object", "properties": {}}, lambda: None)


@tool
def divide(a: float, b: float) -> float:
    """Divide a by b."""
    return a / b


@pytest.mark.parametrize(("arguments", "expected"), [
    ({"a": 1, "b": 0}, "Error: ZeroDivisionError: division by zero"),
    ({"a": 1}, "Error: TypeError: divide() is missing required argument(s) 'b'"),
    ({"a": 1, "b": 2, "c": 3}, "Error: TypeError: divide() got unexpected argument(s) 'c'; its arguments are: a, b"),
    ({"a": "one", "b": 2}, "Error: TypeError: argument 'a' must be number, not str \"one\""),
    ({"a": [1], "b": 2}, "Error: TypeError: argument 'a' must be number, not list"),
    ('{"a": 1, "b":', "Error: TypeError: the arguments of divide are not valid JSON"),
    ("[1, 2]", "Error: TypeError: the arguments of divide must be a JSON object, not list"),
])
def test_model_mistakes_become_error_results_with_usage(arguments: object, expected: str) -> None:
    result = divide.run(arguments)  # type: ignore[arg-type]
    assert result.error
    assert result.output.startswith(expected)
    assert "Call it as divide(a: number, b: number): Divide a by b." in result.output


def test_arguments_as_json_string_and_safe_coercions() -> None:
    assert divide.run('{"a": 6, "b": 3}') == ToolResult("2.0")
    assert divide.run({"a": "6", "b": 4}) == ToolResult("1.5")  # numeric strings are accepted
    assert search.run({"query": 42, "limit": "3", "exact": "true"}).output == "42|3|km|None|None|True|1.0"
    assert search.run({"query": "q", "limit": 2.0}).output.startswith("q|2|")
    bad = search.run({"query": "q", "unit": "miles"})
    assert bad.error and 'must be one of ["km", "mi"]' in bad.output
    assert search.run({"query": "q", "tags": ["a", 1]}).output.startswith("q|5|km|['a', '1']")
    assert search.run({"query": "q", "limit": True}).error  # a bool is not a count
    assert search.run({"query": "q", "limit": None}).output.startswith("q|5|")  # null: left out, default used
    assert divide.run({"a": 1, "b": None}).error  # but a required argument cannot be null


def test_output_is_truncated_keeping_head_and_tail() -> None:
    @tool
    def flood(n: int) -> str:
        """Return a long text."""
        return "HEAD" + "x" * n + "TAIL"

    result = flood.run({"n": 100_000})
    assert len(result.output) <= MAX_OUTPUT
    assert result.output.startswith("HEAD") and result.output.endswith("TAIL")
    assert "characters cut" in result.output


def test_tool_timeout_returns_an_error_instead_of_hanging() -> None:
    @tool(timeout=0.2)
    def slow(seconds: float) -> str:
        """Sleep."""
        time.sleep(seconds)
        return "done"

    start = time.perf_counter()
    result = slow.run({"seconds": 2})
    assert time.perf_counter() - start < 1.5
    assert result.error and "did not finish within 0.2 s" in result.output
    assert slow.run({"seconds": 0}) == ToolResult("done")


def test_toolbox_dispatches_and_lists_names_for_unknown_tools() -> None:
    box = ToolBox([divide, calculator])
    assert box.names == ["divide", "calculator"] and len(box) == 2 and "divide" in box
    assert [s["function"]["name"] for s in box.specs()] == ["divide", "calculator"]
    assert box.run("calculator", {"expression": "2*21"}) == ToolResult("42")
    unknown = box.run("calc", {"expression": "1"})
    assert unknown.error and unknown.output == "Error: unknown tool 'calc'. Available tools: divide, calculator"
    with pytest.raises(ToolError, match="already in the toolbox"):
        box.add(divide)


def test_default_tools() -> None:
    box = default_tools()
    assert box.names == ["python", "calculator"]
    assert box["python"].parameters["required"] == ["code"]


@pytest.mark.parametrize(("expression", "expected"), [
    ("1 + 2 * 3", "7"), ("(1 + 2) * 3", "9"), ("10 / 4", "2.5"), ("10 / 2", "5"), ("7 // 2", "3"), ("7 % 3", "1"),
    ("2 ** 100", "1267650600228229401496703205376"), ("-3 + +1", "-2"), ("0.1 + 0.2", "0.3"), ("sqrt(16)", "4"),
    ("abs(-2.5)", "2.5"), ("round(2.5)", "3"), ("round(3.14159, 2)", "3.14"), ("min(3, 1, 2)", "1"),
    ("max(3, 1, 2)", "3"), ("floor(2.7)", "2"), ("ceil(2.1)", "3"), ("log(e)", "1"), ("log(8, 2)", "3"),
    ("exp(0)", "1"), ("2 * pi", "6.28318530717959"), ("1e20", "1e+20"), ("3 * 4 =", "12"),
])
def test_calculator_results(expression: str, expected: str) -> None:
    assert calculator.run({"expression": expression}) == ToolResult(expected)


@pytest.mark.parametrize(("expression", "message"), [
    ("__import__('os').system('ls')", "only these functions can be called: sqrt, abs"),
    ("__import__('os')", "function '__import__' is not available"),
    ("x + 1", "unknown name 'x'"),
    ("(1).real", "attribute access is not allowed"),
    ("pow(2, 3)", "function 'pow' is not available"),
    ("sqrt(x=4)", "is not available (no keyword arguments"),
    ("[1, 2]", "List is not allowed"),
    ("'a' * 3", "only numbers are allowed"),
    ("2 ^ 3", "write ** instead"),
    ("1 / 0", "ZeroDivisionError"),
    ("(-8) ** 0.5", "complex number"),
    ("2 +", "not a valid expression"),
    ("lambda: 1", "Lambda is not allowed"),
])
def test_calculator_rejects_anything_outside_the_allow_list(expression: str, message: str) -> None:
    result = calculator.run({"expression": expression})
    assert result.error and message in result.output


@pytest.mark.parametrize("expression", ["9**9**9", "10**10**10", "2**(2**64)", "(10**3000) * (10**3000)",
                                        "round(5, -10**18)", "exp(10**6)"])
def test_calculator_refuses_huge_numbers_quickly(expression: str) -> None:
    start = time.perf_counter()
    result = calculator.run({"expression": expression})
    assert time.perf_counter() - start < 0.5
    assert result.error
