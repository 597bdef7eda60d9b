"""The one chat-model interface: every model agentkd talks to (the in-process student, a served student, the
teacher) answers one assistant turn the same way, so one agent loop can drive any of them.

    for item in model.chat_stream(messages, tools=tools):   # text deltas as sampled ...
        ...                                                  # ... then exactly one ChatResult
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Message = dict[str, Any]  # OpenAI-shaped: role, content, tool_calls, tool_call_id, name
ToolSpec = dict[str, Any]  # OpenAI-shaped: {"type": "function", "function": {name, description, parameters}}
ToolChoice = Literal["auto", "none", "required"] | str | dict[str, Any]
JSON = dict[str, Any]


@dataclass
class ChatResult:
    """One assistant turn. ``message`` is OpenAI-shaped (role, content, tool_calls).

    ``timings`` holds ``ttft`` (seconds from the call to the first sampled token), ``prefill`` (seconds
    spent evaluating the prompt), ``decode_tps`` (tokens per second after the first) and
    ``grammar_rejections`` (tokens for which the grammar had to mask the whole vocabulary).
    """

    message: dict[str, Any]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    cached_tokens: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def content(self) -> str:
        return str(self.message.get("content") or "")

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        return list(self.message.get("tool_calls") or [])

    @property
    def usage(self) -> dict[str, int]:
        """The turn's token counts, OpenAI-shaped."""
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}


class ChatModel(Protocol):
    """One assistant turn: text deltas as sampled, then exactly one ``ChatResult`` (with its usage).

    ``LocalLLM`` (llama.cpp in-process), its batched view, ``ServedLLM`` (an OpenAI-compatible server) and
    the ``Teacher`` (litellm) implement it. ``json_schema`` constrains the reply to a JSON value of that
    schema where the backend can; ``prefix`` is text the reply starts with (already "said").
    """

    def chat_stream(
        self, messages: list[Message], *, tools: list[ToolSpec] | None = None, tool_choice: ToolChoice = "auto",
        temperature: float = 0.0, max_tokens: int = 512, seed: int | None = None, stop: tuple[str, ...] = (),
        json_schema: JSON | None = None, prefix: str = "",
    ) -> Iterator[str | ChatResult]: ...  # fmt: skip


class StudentModel(ChatModel, Protocol):
    """A student's model: a ``ChatModel`` that also renders and counts its own prompts, so strategies can be
    packed into a token budget and a prompt measured against the context before it is sent.

    ``LocalLLM``, its batched view and ``ServedLLM`` implement it. An in-process model also has
    ``batched(width)`` and callers probe for it with ``hasattr``; ``n_ctx`` is probed too (a model that
    cannot tell is assumed to fit).
    """

    def render(self, messages: list[Message], tools: list[ToolSpec] | None = None) -> str: ...

    def count_tokens(self, text: str) -> int: ...


def final_result(stream: Iterable[str | ChatResult]) -> ChatResult:
    """Drain a ``chat_stream`` (text deltas, then one ``ChatResult``) and return the result."""
    result = None
    for item in stream:
        if isinstance(item, ChatResult):
            result = item
    assert result is not None, "a chat stream ends with its ChatResult"
    return result


def call_arguments(raw: Any) -> tuple[dict[str, Any], str | None]:
    """A tool call's arguments as a dict, or ``({}, why)`` when the model wrote no JSON object: that is the
    model's mistake, fed back to it as the call's result so it can call again, never an exception."""
    if isinstance(raw, dict):
        return dict(raw), None
    try:
        value = json.loads(raw) if isinstance(raw, str) and raw.strip() else {}
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        return {}, f"the call's arguments are not valid JSON ({exc}); call it again with a JSON object of the arguments"
    if not isinstance(value, dict):
        return {}, "the call's arguments must be a JSON object of the arguments; call it again with one"
    return value, None
