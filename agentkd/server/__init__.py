"""An OpenAI-compatible server for the student (``agentkd serve``); see ``app`` for how turns are run."""

from agentkd.server.app import Busy, ModelWorker, create_app
from agentkd.server.request import ChatRequest

__all__ = ["Busy", "ChatRequest", "ModelWorker", "create_app"]
