"""The strategy library: strategies in Chroma, searched with the offline embedder.

Importing this package registers agentkd's embedding function with Chroma (see ``store``).
"""

from agentkd.library.history import History
from agentkd.library.merge import merge
from agentkd.library.store import AgentKDEmbeddingFunction, Hit, Library

__all__ = ["AgentKDEmbeddingFunction", "History", "Hit", "Library", "merge"]
