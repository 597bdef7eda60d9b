"""A task's own episode loop (tau2, BFCL, spec domains) feeds malformed tool-call JSON back to the model,
as the student's loop does: the model's mistake is data, never an exception in the middle of a build."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agentkd.chat import ChatResult, call_arguments
from agentkd.tasks.episode import agent_turn
from agentkd.tools import ToolBox, calculator


class Calls:
    """A model that first writes a call with ``arguments``, then a reply (a real small model cannot be made to
    write broken JSON on demand)."""

    def __init__(self, arguments: str) -> None:
        self.arguments, self.seen = arguments, []

    def chat_stream(self, messages: list[dict[str, Any]], **_: Any) -> Iterator[str | ChatResult]:
        self.seen.append([dict(m) for m in messages])
        if len(self.seen) == 1:
            call = {"id": "c1", "type": "function", "function": {"name": "calculator", "arguments": self.arguments}}
            yield ChatResult(message={"role": "assistant", "content": None, "tool_calls": [call]},
                             finish_reason="tool_calls", prompt_tokens=5, completion_tokens=5, seconds=0.0)
        else:
            yield ChatResult(message={"role": "assistant", "content": "done"}, finish_reason="stop",
                             prompt_tokens=5, completion_tokens=1, seconds=0.0)


class Student:
    temperature, seed, max_tokens = 0.0, 1, 32

    def __init__(self, llm: Calls) -> None:
        self.llm = llm


@pytest.mark.parametrize("arguments", ['{"expression": "2+', "[1, 2]", "not json at all"])
def test_a_malformed_call_is_fed_back_and_the_episode_goes_on(arguments: str) -> None:
    model = Calls(arguments)
    messages: list[dict[str, Any]] = [{"role": "user", "content": "What is 2+2?"}]
    turn = agent_turn(Student(model), messages, ToolBox([calculator]), max_steps=3)  # type: ignore[arg-type]
    assert turn.text == "done" and len(turn.calls) == 1 and turn.calls[0].error
    fed_back = model.seen[1][-1]
    assert fed_back["role"] == "tool" and "JSON object" in fed_back["content"]


def test_call_arguments_reads_objects_and_names_what_is_wrong() -> None:
    assert call_arguments('{"x": 1}') == ({"x": 1}, None)
    assert call_arguments({"x": 1}) == ({"x": 1}, None)
    assert call_arguments("") == ({}, None)
    args, why = call_arguments("{oops")
    assert args == {} and why is not None and "not valid JSON" in why


class TwoCalls:
    """A served model's reply with two calls at once, then a text reply."""

    def __init__(self) -> None:
        self.seen: list[list[dict[str, Any]]] = []

    def chat_stream(self, messages: list[dict[str, Any]], **_: Any) -> Iterator[str | ChatResult]:
        self.seen.append([dict(m) for m in messages])
        if len(self.seen) == 1:
            calls = [{"id": f"c{i}", "type": "function",
                      "function": {"name": "calculator", "arguments": f'{{"expression": "{e}"}}'}}
                     for i, e in enumerate(("2+2", "3*3"), start=1)]  # fmt: skip
            yield ChatResult(message={"role": "assistant", "content": None, "tool_calls": calls},
                             finish_reason="tool_calls", prompt_tokens=5, completion_tokens=9, seconds=0.0)
        else:
            yield ChatResult(message={"role": "assistant", "content": "4 and 9"}, finish_reason="stop",
                             prompt_tokens=5, completion_tokens=3, seconds=0.0)


def test_every_call_of_a_reply_is_run_and_answered_in_order() -> None:
    model = TwoCalls()
    messages: list[dict[str, Any]] = [{"role": "user", "content": "2+2 and 3*3?"}]
    turn = agent_turn(Student(model), messages, ToolBox([calculator]), max_steps=3)  # type: ignore[arg-type]
    assert turn.text == "4 and 9" and [c.result for c in turn.calls] == ["4", "9"]
    assert turn.completion_tokens == 12 and turn.ended == "reply"
    tools = [m for m in model.seen[1] if m["role"] == "tool"]  # the API wants one tool message per call
    assert [(m["tool_call_id"], m["content"]) for m in tools] == [("c1", "4"), ("c2", "9")]


class Counts(TwoCalls):
    """A model that counts its prompt, in a window that only the first step fits."""

    n_ctx = 64

    def render(self, messages: list[dict[str, Any]], tools: Any = None) -> str:
        return " ".join(str(m.get("content") or "") for m in messages)

    def count_tokens(self, text: str) -> int:
        return 40 * len(self.seen) + 1  # 1 before the first call, 41 after: 41 + 32 > 64


def test_a_turn_that_outgrows_the_window_ends_as_context_not_as_an_exception() -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "2+2 and 3*3?"}]
    turn = agent_turn(Student(Counts()), messages, ToolBox([calculator]), max_steps=3)  # type: ignore[arg-type]
    assert turn.ended == "context" and len(turn.calls) == 2
