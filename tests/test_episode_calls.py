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
