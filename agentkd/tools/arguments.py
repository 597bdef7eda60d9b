"""Checking a model's tool arguments against the tool's JSON schema, with a few forgiving coercions.

Small models often send ``"3"`` for an integer, ``4.0`` for a count or ``null`` for an optional
argument they mean to leave out; those are accepted. Anything else that does not fit raises
``TypeError`` with a message the model can act on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "array": (list, tuple), "object": (dict,), "null": (type(None),),
}


def parse_arguments(arguments: Mapping[str, Any] | str | None, *, tool: str) -> dict[str, Any]:
    """The arguments as a dict; OpenAI tool calls carry them as a JSON string."""
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as exc:
            raise TypeError(f"the arguments of {tool} are not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(arguments, Mapping):
        raise TypeError(f"the arguments of {tool} must be a JSON object, not {type(arguments).__name__}")
    return dict(arguments)


def check_arguments(parameters: Mapping[str, Any], arguments: dict[str, Any], *, tool: str) -> dict[str, Any]:
    """Validate ``arguments`` against an object schema and return them, coerced where that is safe."""
    properties: dict[str, Any] = parameters.get("properties", {})
    unknown = [name for name in arguments if name not in properties]
    if unknown:
        raise TypeError(f"{tool}() got unexpected argument(s) {', '.join(map(repr, unknown))}; "
                        f"its arguments are: {', '.join(properties) or 'none'}")
    required = parameters.get("required", [])
    arguments = {name: value for name, value in arguments.items()  # null for an optional argument: not given
                 if value is not None or name in required or _allows_null(properties[name])}
    missing = [name for name in required if name not in arguments]
    if missing:
        raise TypeError(f"{tool}() is missing required argument(s) {', '.join(map(repr, missing))}")
    return {name: conform(value, properties[name], where=f"argument {name!r}") for name, value in arguments.items()}


def _allows_null(schema: Mapping[str, Any]) -> bool:
    kinds = schema.get("type")
    return (kinds == "null" or (isinstance(kinds, list) and "null" in kinds) or "type" not in schema
            or any(_allows_null(option) for option in schema.get("anyOf", [])))


def conform(value: Any, schema: Mapping[str, Any], *, where: str) -> Any:
    """``value`` if it fits ``schema`` (after a safe coercion); otherwise raise TypeError."""
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            try:
                return conform(value, option, where=where)
            except TypeError:
                continue
        raise TypeError(f"{where} does not match any allowed form: {json.dumps(schema['anyOf'])}")
    kinds = schema.get("type")
    if kinds is not None:
        value = _coerce(value, [kinds] if isinstance(kinds, str) else list(kinds), where=where)
    if "enum" in schema and value not in schema["enum"]:
        raise TypeError(f"{where} must be one of {json.dumps(schema['enum'])}, not {json.dumps(value)}")
    if isinstance(value, list | tuple) and "items" in schema:
        value = [conform(item, schema["items"], where=f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict) and isinstance(schema.get("additionalProperties"), Mapping):
        value = {k: conform(v, schema["additionalProperties"], where=f"{where}[{k!r}]") for k, v in value.items()}
    return value


def _coerce(value: Any, kinds: list[str], *, where: str) -> Any:
    for kind in kinds:
        if isinstance(value, _JSON_TYPES[kind]) and not (isinstance(value, bool) and kind in ("integer", "number")):
            return list(value) if isinstance(value, tuple) else value
    for kind in kinds:
        coerced = _try_coerce(value, kind)
        if coerced is not None:
            return coerced
    expected = " or ".join(kinds)
    raise TypeError(f"{where} must be {expected}, not {type(value).__name__} {json.dumps(value, default=str)[:80]}")


def _try_coerce(value: Any, kind: str) -> Any:
    if isinstance(value, bool):
        return str(value).lower() if kind == "string" else None
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind in ("integer", "number") and isinstance(value, str):
        try:
            number = float(value.strip()) if kind == "number" else int(value.strip())
        except ValueError:
            return None
        return number
    if kind == "string" and isinstance(value, int | float):
        return str(value)
    if kind == "boolean" and isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None
