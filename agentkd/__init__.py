"""agentkd: distil a big teacher model's know-how into a small student's strategy library."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from agentkd.config import Settings
    from agentkd.library import Library
    from agentkd.student import Answer, Student
    from agentkd.teacher import Teacher

__all__ = ["Answer", "Library", "Settings", "Student", "Teacher", "__version__"]

_LAZY = {
    "Settings": "agentkd.config",
    "Library": "agentkd.library",
    "Student": "agentkd.student",
    "Answer": "agentkd.student",
    "Teacher": "agentkd.teacher",
}


def __getattr__(name: str) -> Any:
    """Import the heavy parts (llama.cpp, chromadb, litellm) only when they are used."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agentkd' has no attribute {name!r}")
