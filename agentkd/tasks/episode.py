"""What a task with its own episode loop needs from the student, and one agent turn with tools.

A task's ``run`` is handed the student (it never builds one): ``StudentLike`` names the few members it
uses, which ``agentkd.student.student.Student`` has. ``agent_turn`` lets the student act until it replies in
text with the student's own loop (``agentkd.student.agent_loop.AgentLoop``: one generate → run tool → feed
back for every command), on the task's tools and on a conversation the task owns (multi-turn, with a
simulated customer)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from agentkd.chat import ChatModel, ChatResult, final_result
from agentkd.errors import ContextOverflowError, TaskError
from agentkd.models.runlog import CallRecord
from agentkd.schema import Message, Strategy, ToolCallRecord
from agentkd.student.agent_loop import AgentLoop, Done, prompt_room
from agentkd.tools import ToolBox


class StudentLike(Protocol):
    """The members of ``agentkd.student.student.Student`` that a task's own episode loop uses."""

    @property
    def llm(self) -> ChatModel: ...

    @property
    def temperature(self) -> float: ...

    @property
    def seed(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    def retrieve(self, question: str, task: str | None = None) -> list[tuple[Strategy, float]]: ...


class Customer(Protocol):
    """What plays the simulated customer: a model that completes a conversation (``Teacher.complete``)."""

    def complete(self, messages: list[Message], *, purpose: str = ..., max_tokens: int = ...) -> dict[str, Any]: ...


M = TypeVar("M", bound=BaseModel)


class StructuredModel(Protocol):
    """A model that answers with validated JSON (``agentkd.teacher.teacher.Teacher``): a spec's scenario writer
    and grader."""

    def structured(
        self, messages: list[Message], output: type[M], *, purpose: str = ..., max_tokens: int = ...
    ) -> M: ...


def choose_strategies(
    student: StudentLike, query: str, task: str, strategies: Sequence[Strategy] | None
) -> list[Strategy]:
    """``strategies`` when given (measuring an entry), else what the student retrieves for ``query``."""
    if strategies is not None:
        return list(strategies)
    return [s for s, _ in student.retrieve(query, task)]


@dataclass
class Turn:
    """What the student did in one turn: its text reply (if any), its tool calls and why it stopped."""

    text: str = ""
    calls: list[ToolCallRecord] = field(default_factory=list)
    completion_tokens: int = 0
    ended: str = "reply"  # reply | context (the conversation no longer fits the model's window)


def _fits(llm: Any, messages: list[Message], tools: list[dict[str, Any]] | None, max_tokens: int) -> bool:
    """Whether the prompt plus the reply fit the model's context (unknown models are assumed to fit)."""
    needs = prompt_room(llm, messages, tools)
    return needs is None or needs[0] + max_tokens <= needs[1]


def require_fit(student: StudentLike, messages: list[Message], tools: ToolBox, what: str) -> None:
    """Raise ``TaskError`` when even the opening prompt leaves no room for a reply: a setting to change."""
    needs = prompt_room(student.llm, messages, tools.specs() or None)
    if needs is not None and needs[0] + student.max_tokens > needs[1]:
        want = 1 << (needs[0] + 4 * student.max_tokens).bit_length()
        raise TaskError(
            f"{what} needs {needs[0]} prompt tokens before the conversation starts, but the student's context "
            f"holds {needs[1]}",
            hint=f"give the student a larger context: n_ctx={want} or more (AGENTKD_N_CTX / --n-ctx)",
        )


def chat(
    student: StudentLike,
    messages: list[Message],
    tools: list[dict[str, Any]] | None,
    *,
    purpose: str,
    max_tokens: int | None = None,
    tool_choice: str = "auto",
) -> ChatResult | None:
    """One student call, logged to the student's run log; None when the conversation is too long."""
    limit = max_tokens or student.max_tokens
    if not _fits(student.llm, messages, tools, limit):
        return None
    result = final_result(student.llm.chat_stream(
        messages,
        tools=tools,
        tool_choice=tool_choice,
        temperature=student.temperature,
        max_tokens=limit,
        seed=student.seed,
    ))
    log = getattr(student, "log", None)
    if log is not None:
        log.record(
            CallRecord(
                "student",
                str(getattr(student, "model_spec", "")),
                purpose,
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens,
                seconds=result.seconds,
            )
        )
    return result


def agent_turn(
    student: StudentLike,
    messages: list[Message],
    tools: ToolBox,
    *,
    max_steps: int,
    purpose: str = "episode",
    max_tokens: int | None = None,
) -> Turn:
    """Let the student call tools until it writes a reply: the student's own loop (``AgentLoop``) on the
    task's tools and on a conversation the task owns (the last step shows the tools but offers none).

    ``messages`` is extended in place with the assistant's messages and the tool results. A turn whose
    prompt leaves no room for a reply ends with ``ended == "context"``.
    """
    limit = max_tokens or student.max_tokens
    if not _fits(student.llm, messages, tools.specs() or None, limit):
        return Turn(ended="context")
    loop = AgentLoop(
        student.llm, tools, max_steps=max_steps, max_tokens=limit, temperature=student.temperature,
        seed=student.seed, log=getattr(student, "log", None), model_spec=str(getattr(student, "model_spec", "")),
        purpose=purpose, tool_output_answers=False,
    )  # fmt: skip
    try:
        answer = next(e.answer for e in loop.run(messages) if isinstance(e, Done))
    except ContextOverflowError:
        return Turn(ended="context")
    return Turn(text=answer.text, calls=answer.tool_calls, completion_tokens=answer.completion_tokens,
                ended="context" if answer.finish_reason == "context" else "reply")


class Stopwatch:
    """Seconds since creation (for ``Attempt.seconds``)."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.t0
