"""Helpers for the student tests: a list retriever, sample strategies, and a scripted chat model."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from agentkd.models.llamacpp import ChatResult
from agentkd.schema import Strategy

STRATEGIES = [
    Strategy(id="s-b", title="Compute totals with a program", trigger="word problems that add or multiply quantities",
             body="1. Name each quantity as a variable. 2. Print the arithmetic result in Python."),
    Strategy(id="s-a", title="Check units first", trigger="problems that mix units such as minutes and hours",
             body="1. Convert every quantity to one unit. 2. Then compute."),
    Strategy(id="s-c", title="Percentages as fractions", trigger="questions about percent increase or discount",
             body="Write p% as p/100 before multiplying."),
]  # fmt: skip


@dataclass
class Hit:
    strategy: Strategy
    score: float


class ListRetriever:
    """Returns the given strategies in order, with falling scores (a stand-in for the library)."""

    def __init__(self, strategies: list[Strategy]) -> None:
        self.strategies = strategies
        self.queries: list[str] = []

    def search(self, query: str, *, k: int = 3, task: str | None = None) -> list[Hit]:
        self.queries.append(query)
        return [Hit(s, 0.9 - 0.1 * i) for i, s in enumerate(self.strategies[:k])]


Reply = dict[str, Any]  # an OpenAI-shaped assistant message


class ScriptedLLM:
    """A chat model whose replies come from ``script(messages, kwargs)``; records every call."""

    def __init__(self, script: Callable[[list[dict[str, Any]], dict[str, Any]], Reply]) -> None:
        self.script = script
        self.calls: list[tuple[list[dict[str, Any]], dict[str, Any]]] = []

    def chat_stream(self, messages: list[dict[str, Any]], **kwargs: Any) -> Iterator[str | ChatResult]:
        self.calls.append(([dict(m) for m in messages], kwargs))
        message = {"role": "assistant", **self.script(messages, kwargs)}
        if message.get("content"):
            yield message["content"]
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        yield ChatResult(message=message, finish_reason=finish, prompt_tokens=10, completion_tokens=5, seconds=0.0)


def call(name: str, arguments: str, cid: str = "c1") -> Reply:
    return {"content": None, "tool_calls": [{"id": cid, "type": "function",
                                             "function": {"name": name, "arguments": arguments}}]}  # fmt: skip
