"""The strategy library: strategies in Chroma, searched with the offline embedder.

Importing this package registers agentkd's embedding function with Chroma (see ``store``).
"""

from agentkd.library.files import export_library, import_library
from agentkd.library.history import History
from agentkd.library.merge import merge
from agentkd.library.retrieval import MMRRetriever, Retrieval, retrieve
from agentkd.library.store import AgentKDEmbeddingFunction, Hit, Library

__all__ = [
    "AgentKDEmbeddingFunction",
    "History",
    "Hit",
    "Library",
    "MMRRetriever",
    "Retrieval",
    "export_library",
    "import_library",
    "merge",
    "retrieve",
]
