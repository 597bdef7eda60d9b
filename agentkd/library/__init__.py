"""The strategy library: strategies in Chroma, searched with the offline embedder.

The names below load on first use, so ``agentkd.library.bundle_reader`` imports with numpy alone (an edge
device has no Chroma, pydantic or yaml). Loading ``Library`` registers agentkd's embedding function with
Chroma (see ``store``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentkd.library.files import export_library, import_library
    from agentkd.library.history import History
    from agentkd.library.merge import merge
    from agentkd.library.retrieval import MMRRetriever, Retrieval, retrieve
    from agentkd.library.store import AgentKDEmbeddingFunction, Hit, Library

_HOME = {
    "export_library": "files", "import_library": "files", "History": "history", "merge": "merge",
    "MMRRetriever": "retrieval", "Retrieval": "retrieval", "retrieve": "retrieval",
    "AgentKDEmbeddingFunction": "store", "Hit": "store", "Library": "store",
}
__all__ = ["AgentKDEmbeddingFunction", "History", "Hit", "Library", "MMRRetriever", "Retrieval", "export_library",
           "import_library", "merge", "retrieve"]


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"agentkd.library.{_HOME[name]}"), name)
    raise AttributeError(f"module 'agentkd.library' has no attribute {name!r}")
