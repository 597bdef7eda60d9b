"""agentkd: distil a big teacher model's know-how into a small student's strategy library."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentkd.version import __version__

if TYPE_CHECKING:
    from agentkd.config import Settings
    from agentkd.library import Library
    from agentkd.parts import load_student
    from agentkd.student.student import Answer, Student
    from agentkd.teacher.teacher import Teacher

__all__ = ["Answer", "Library", "Settings", "Student", "Teacher", "__version__", "load_student"]

_LAZY = {
    "Settings": "agentkd.config",
    "Library": "agentkd.library",
    "Student": "agentkd.student.student",
    "Answer": "agentkd.student.student",
    "Teacher": "agentkd.teacher.teacher",
    "load_student": "agentkd.parts",
}


def __getattr__(name: str) -> Any:
    """Import the heavy parts (llama.cpp, chromadb, litellm) only when they are used."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agentkd' has no attribute {name!r}")
