"""The student: a small local model that answers with tools, the library's entries, and optional voting."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentkd.student.student import Answer, Student

__all__ = ["Answer", "Student"]


def __getattr__(name: str) -> Any:
    """``Student`` imports llama.cpp: pay for it only when it is used."""
    if name in __all__:
        from agentkd.student import student

        return getattr(student, name)
    raise AttributeError(f"module 'agentkd.student' has no attribute {name!r}")
