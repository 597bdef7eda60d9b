"""Tools the student calls: a ``Tool``, the ``@tool`` decorator that builds one, and a ``ToolBox``.

A tool never raises at the model: bad arguments and exceptions inside the tool come back as an
error ``ToolResult`` the model can read and act on. A badly *defined* tool raises ``ToolError``.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, overload

from agentkd.errors import ToolError
from agentkd.tools.arguments import check_arguments, parse_arguments
from agentkd.tools.signature import function_schema

MAX_OUTPUT = 2000  # characters a tool may put in a small model's context
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI-style APIs accept


@dataclass
class ToolResult:
    """What a tool call returns to the model; ``error`` marks a failed call."""

    output: str
    error: bool = False


def truncate(text: str, limit: int = MAX_OUTPUT) -> str:
    """Keep the head and the tail of ``text`` (where tracebacks end) within ``limit`` characters."""
    if len(text) <= limit:
        return text
    note = f"\n... [{len(text) - limit} characters cut] ...\n"
    head = max(limit - len(note), 0) * 3 // 4
    tail = max(limit - len(note) - head, 0)
    return text[:head] + note + (text[-tail:] if tail else "")


@dataclass
class Tool:
    """A function the model can call; ``parameters`` is the JSON schema of its keyword arguments.

    ``timeout`` (seconds) makes ``run`` stop waiting and return an error; the function keeps running
    in its thread, so tools that can hang should also stop themselves (the python tool does).
    """

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    timeout: float | None = None
    max_output: int = MAX_OUTPUT

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ToolError(f"invalid tool name {self.name!r}", hint="use 1-64 letters, digits, '_' or '-'")
        if self.parameters.get("type") != "object" or not isinstance(self.parameters.get("properties", {}), dict):
            raise ToolError(f"tool {self.name!r}: parameters must be a JSON schema of type 'object'",
                            hint='e.g. {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}')
        if not self.description.strip():
            raise ToolError(f"tool {self.name!r} has no description",
                            hint="add a docstring: its first paragraph is what the model reads")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the underlying function directly (for code, not for the model)."""
        return self.fn(*args, **kwargs)

    def spec(self) -> dict[str, Any]:
        """The OpenAI tool definition."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}

    def usage(self) -> str:
        """A one-line signature for error messages, e.g. ``calculator(expression: string)``."""
        required = set(self.parameters.get("required", []))
        parts = []
        for name, schema in self.parameters.get("properties", {}).items():
            kind = schema.get("type") or "|".join(json.dumps(v) for v in schema.get("enum", [])) or "value"
            kind = "|".join(kind) if isinstance(kind, list) else kind
            parts.append(f"{name}: {kind}" + ("" if name in required else " (optional)"))
        return f"{self.name}({', '.join(parts)})"

    def run(self, arguments: Mapping[str, Any] | str | None = None) -> ToolResult:
        """Call the tool with the model's arguments; every failure becomes an error ToolResult."""
        try:
            kwargs = check_arguments(self.parameters, parse_arguments(arguments, tool=self.name), tool=self.name)
            value = self._call(kwargs)
        except Exception as exc:
            hint = f"\nCall it as {self.usage()}: {self.description.split('. ')[0].rstrip('.')}."
            return ToolResult(truncate(f"Error: {type(exc).__name__}: {exc}{hint}", self.max_output), error=True)
        if isinstance(value, ToolResult):
            return ToolResult(truncate(value.output, self.max_output), value.error)
        return ToolResult(truncate(_to_text(value), self.max_output))

    def _call(self, kwargs: dict[str, Any]) -> Any:
        if self.timeout is None:
            return self.fn(**kwargs)
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["value"] = self.fn(**kwargs)
            except BaseException as exc:
                box["error"] = exc

        worker = threading.Thread(target=target, name=f"tool-{self.name}", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            raise TimeoutError(f"{self.name} did not finish within {self.timeout:g} s; try a smaller input")
        if "error" in box:
            raise box["error"]
        return box["value"]


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "(no result)"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(*, name: str | None = None, description: str | None = None,
         timeout: float | None = None) -> Callable[[Callable[..., Any]], Tool]: ...
def tool(fn: Callable[..., Any] | None = None, /, *, name: str | None = None, description: str | None = None,
         timeout: float | None = None) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a Tool from a typed function: ``@tool`` or ``@tool(name=..., timeout=...)``.

    The docstring's first paragraph is the description and its ``Args:`` section describes each
    parameter; parameters with a default are optional.
    """

    def build(f: Callable[..., Any]) -> Tool:
        tool_name = name or f.__name__
        doc_description, parameters = function_schema(f, name=tool_name)
        return Tool(tool_name, description or doc_description, parameters, f, timeout=timeout)

    return build if fn is None else build(fn)


class ToolBox:
    """The tools offered to the model, by name."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.add(t)

    def add(self, tool: Tool) -> Tool:
        """Register ``tool``; a second tool with the same name is a ToolError."""
        if tool.name in self._tools:
            raise ToolError(f"a tool named {tool.name!r} is already in the toolbox",
                            hint="give one of them another name with @tool(name=...)")
        self._tools[tool.name] = tool
        return tool

    def __getitem__(self, name: str) -> Tool:
        return self._tools[name]

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def specs(self) -> list[dict[str, Any]]:
        """The OpenAI tool definitions of every tool, in the order they were added."""
        return [t.spec() for t in self._tools.values()]

    def run(self, name: str, arguments: Mapping[str, Any] | str | None = None) -> ToolResult:
        """Run the named tool; an unknown name is an error result that lists the available tools."""
        found = self._tools.get(name)
        if found is None:
            return ToolResult(f"Error: unknown tool {name!r}. Available tools: {', '.join(self._tools) or 'none'}",
                              error=True)
        return found.run(arguments)
