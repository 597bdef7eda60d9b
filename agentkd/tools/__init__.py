"""Tools the student model calls: the Tool type, the ``@tool`` decorator, and the built-in tools."""

from __future__ import annotations

from agentkd.tools.base import Tool, ToolBox, ToolResult, tool
from agentkd.tools.calculator import calculator
from agentkd.tools.sandbox import SandboxResult, python_tool, run_python


def code_tools() -> ToolBox:
    """The student's tools when a task brings none: the Python sandbox, which it uses as ```python blocks."""
    return ToolBox([python_tool()])


def default_tools(*, timeout: float = 10.0, memory_mb: int = 512) -> ToolBox:
    """A ToolBox with the python sandbox and the calculator."""
    return ToolBox([python_tool(timeout=timeout, memory_mb=memory_mb), calculator])


__all__ = ["SandboxResult", "Tool", "ToolBox", "ToolResult", "calculator", "code_tools", "default_tools",
           "python_tool", "run_python", "tool"]
