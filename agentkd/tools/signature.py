"""A tool's JSON schema, built from a Python function's type hints and Google-style docstring."""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, Union, get_args, get_origin

from agentkd.errors import ToolError

SUPPORTED = "str, int, float, bool, list[...], dict[str, ...], Literal[...], or Optional[...] / X | None of these"
_SIMPLE: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_SECTION = re.compile(r"^(Args|Arguments|Parameters|Params|Returns?|Raises|Yields?|Examples?|Notes?|See Also):\s*$")
_ARG_LINE = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def function_schema(fn: Callable[..., Any], *, name: str) -> tuple[str, dict[str, Any]]:
    """The description (docstring's first paragraph) and the JSON schema of ``fn``'s parameters."""
    description, arg_docs = parse_docstring(inspect.getdoc(fn) or "")
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:  # an unresolvable forward reference, for instance
        raise ToolError(f"tool {name!r}: cannot read the type hints of {fn.__qualname__}: {exc}",
                        hint="use types that are importable where the function is defined") from exc
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in inspect.signature(fn).parameters.values():
        where = f"tool {name!r}, parameter {param.name!r}"
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise ToolError(f"{where}: *args, **kwargs and positional-only parameters cannot be tool arguments",
                            hint="declare each argument as a normal parameter with a type hint")
        if param.name not in hints:
            raise ToolError(f"{where} has no type hint", hint=f"annotate it, e.g. `{param.name}: str`; supported: "
                            f"{SUPPORTED}")
        schema = type_schema(hints[param.name], where=where)
        if param.name in arg_docs:
            schema["description"] = arg_docs[param.name]
        if param.default is param.empty:
            required.append(param.name)
        elif param.default is None or isinstance(param.default, str | int | float | bool):
            schema["default"] = param.default
        properties[param.name] = schema
    parameters: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
    return description, parameters


def type_schema(tp: Any, *, where: str) -> dict[str, Any]:
    """The JSON schema of one annotation; anything else raises ToolError."""
    if tp in _SIMPLE:
        return {"type": _SIMPLE[tp]}
    if tp is type(None):
        return {"type": "null"}
    origin, args = get_origin(tp), get_args(tp)
    if tp is list or origin is list:
        return {"type": "array", **({"items": type_schema(args[0], where=where)} if args else {})}
    if tp is dict or origin is dict:
        if args and args[0] is not str:
            raise ToolError(f"{where}: JSON object keys are strings, not {args[0]!r}", hint="use dict[str, ...]")
        return {"type": "object", **({"additionalProperties": type_schema(args[1], where=where)} if args else {})}
    if origin is Literal:
        kinds = {_SIMPLE.get(type(a)) for a in args}
        if None in kinds:
            raise ToolError(f"{where}: Literal values must be str, int, float or bool, got {args!r}",
                            hint="list the allowed values as plain constants, e.g. Literal['a', 'b']")
        return {"type": kinds.pop(), "enum": list(args)} if len(kinds) == 1 else {"enum": list(args)}
    if origin in (Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        schema = (type_schema(options[0], where=where) if len(options) == 1
                  else {"anyOf": [type_schema(a, where=where) for a in options]})
        return _nullable(schema) if len(options) < len(args) else schema
    raise ToolError(f"{where}: unsupported type {tp!r}", hint=f"use {SUPPORTED}")


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if isinstance(schema.get("type"), str):
        schema = {**schema, "type": [schema["type"], "null"]}
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
        return schema
    return {"anyOf": [schema, {"type": "null"}]}


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its first paragraph and the descriptions in its ``Args:``."""
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION.match(line):
            break
        summary.append(line.strip())
    params: dict[str, str] = {}
    in_args, indent, current = False, -1, ""
    for line in lines:
        stripped, lead = line.strip(), len(line) - len(line.lstrip())
        if _SECTION.match(line):
            in_args, indent, current = line.split(":")[0] in ("Args", "Arguments", "Parameters", "Params"), -1, ""
        elif not in_args or not stripped:
            continue
        elif lead == 0:
            in_args = False  # prose after the section
        elif indent < 0 or lead == indent:
            indent, match = lead, _ARG_LINE.match(stripped)
            current = match.group(1) if match else ""
            if match:
                params[current] = match.group(2).strip()
        elif current:
            params[current] = f"{params[current]} {stripped}".strip()
    return " ".join(summary), params
