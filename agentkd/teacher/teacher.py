"""The teacher: a black-box chat model behind a transport (litellm by default).

Two rules from the field: transient faults (timeouts, 429s, dropped connections) are retried with
backoff, honouring Retry-After; output that fails its Pydantic spec is *re-asked* with the validation
error, a bounded number of times, and then raises ``TeacherOutputError`` carrying every attempt.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from agentkd.chat import JSON, ChatResult, ToolChoice, ToolSpec
from agentkd.errors import TeacherError, TeacherOutputError, TeacherUnavailable
from agentkd.models.runlog import CallRecord, RunLog
from agentkd.prompts import render
from agentkd.schema import Message

T = TypeVar("T", bound=BaseModel)
Transport = Callable[..., dict[str, Any]]

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def extract_json(text: str) -> str:
    """The JSON object inside a reply that may wrap it in prose or code fences."""
    if m := _FENCE.search(text):
        text = m.group(1)
    start, end = text.find("{"), text.rfind("}")
    return text[start : end + 1] if start != -1 and end > start else text.strip()


class Teacher:
    """Calls a chat model with retries, records usage, and parses structured output."""

    def __init__(
        self,
        model: str,
        *,
        transport: Transport | None = None,
        retries: int = 3,
        max_reasks: int = 2,
        temperature: float = 0.0,
        seed: int | None = 1234,
        log: RunLog | None = None,
        backoff: float = 1.0,
        json_mode: bool | None = None,
        scrub: Callable[[str], str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if transport is None:
            from agentkd.models.litellm_transport import LitellmTransport

            transport = LitellmTransport()
        if json_mode is None:
            from agentkd.models.litellm_transport import supports_json_schema

            json_mode = supports_json_schema(model)
        self.model, self.transport = model, transport
        self.retries, self.max_reasks = retries, max_reasks
        self.temperature, self.seed = temperature, seed
        self.log = log or RunLog()
        self.backoff, self.json_mode, self.scrub, self._sleep = backoff, json_mode, scrub, sleep

    @property
    def is_local(self) -> bool:
        return self.model.startswith("local/")

    def complete(
        self, messages: list[Message], *, purpose: str = "chat", max_tokens: int = 512, **params: Any
    ) -> dict[str, Any]:
        """One assistant message (OpenAI-shaped), after retrying transient faults."""
        return dict(self._call(messages, purpose, max_tokens, params)["choices"][0]["message"])

    def chat_stream(
        self, messages: list[Message], *, tools: list[ToolSpec] | None = None, tool_choice: ToolChoice = "auto",
        temperature: float | None = None, max_tokens: int = 512, seed: int | None = None, stop: tuple[str, ...] = (),
        json_schema: JSON | None = None, prefix: str = "", purpose: str = "chat",
    ) -> Iterator[str | ChatResult]:
        """The teacher as a ``ChatModel`` (``agentkd.chat``): one turn, with that call's own usage.

        The reply arrives whole (the provider's stream is not relayed), as one delta and then the result.
        """
        params: dict[str, Any] = {}
        if tools:
            params.update(tools=tools, tool_choice=tool_choice)
        if stop:
            params["stop"] = list(stop)
        if temperature is not None:
            params["temperature"] = temperature
        if seed is not None:
            params["seed"] = seed
        if json_schema is not None:
            params["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": "reply", "schema": json_schema}}
        talk = [*messages, {"role": "assistant", "content": prefix}] if prefix else messages
        t0 = time.perf_counter()
        data = self._call(talk, purpose, max_tokens, params)
        choice = data["choices"][0]
        message = clean_message(choice["message"])
        if prefix:
            message["content"] = prefix + str(message.get("content") or "")
        usage = data.get("usage") or {}
        if message.get("content"):
            yield str(message["content"])
        yield ChatResult(message, str(choice.get("finish_reason") or "stop"), int(usage.get("prompt_tokens") or 0),
                         int(usage.get("completion_tokens") or 0),
                         float(data.get("_seconds") or time.perf_counter() - t0))

    def _call(self, messages: list[Message], purpose: str, max_tokens: int, params: dict[str, Any]) -> dict[str, Any]:
        """One provider call (the whole response), after retrying transient faults; every try is logged."""
        if self.scrub is not None:
            messages = [
                {**m, "content": self.scrub(m["content"])} if isinstance(m.get("content"), str) else m for m in messages
            ]
        last: TeacherUnavailable | None = None
        for attempt in range(self.retries + 1):
            t0 = time.perf_counter()
            try:
                data = self.transport(
                    model=self.model,
                    messages=messages,
                    max_tokens=max_tokens,
                    **{"temperature": self.temperature, "seed": self.seed, **params},  # a call may sample
                )
            except TeacherUnavailable as exc:
                last = exc
                self.log.record(
                    CallRecord(
                        "teacher",
                        self.model,
                        purpose,
                        seconds=time.perf_counter() - t0,
                        outcome="retry" if attempt < self.retries else "error",
                        detail=str(exc),
                    )
                )
                if attempt < self.retries:
                    self._sleep(self._delay(attempt, exc))
                continue
            usage = data.get("usage") or {}
            self.log.record(
                CallRecord(
                    "teacher",
                    self.model,
                    purpose,
                    prompt_tokens=int(usage.get("prompt_tokens") or 0),
                    completion_tokens=int(usage.get("completion_tokens") or 0),
                    cost_usd=data.get("_cost"),
                    seconds=float(data.get("_seconds") or time.perf_counter() - t0),
                )
            )
            return dict(data)
        raise TeacherError(
            f"teacher {self.model} failed {self.retries + 1} times; last error: {last}",
            hint="check the provider's status and your network, or raise AGENTKD_TEACHER_RETRIES / _TIMEOUT.",
        )

    def _delay(self, attempt: int, exc: TeacherUnavailable) -> float:
        if exc.retry_after is not None:
            return min(exc.retry_after, 120.0)
        return min(self.backoff * 2**attempt, 60.0) * (0.75 + 0.5 * random.random())

    def structured(
        self,
        messages: list[Message],
        output: type[T],
        *,
        purpose: str = "structured",
        max_tokens: int = 700,
        check: Callable[[T], str | None] | None = None,
    ) -> T:
        """Ask for JSON matching ``output``; re-ask with the validation error; raise after ``max_reasks``.

        ``check`` adds a rule the schema cannot express: it returns why a parsed value is unacceptable
        (fed back to the teacher like a validation error) or None.
        """
        schema = output.model_json_schema()
        instruction = render("structured.md", schema=json.dumps(schema, ensure_ascii=False))
        convo = [*messages[:-1], {**messages[-1], "content": f"{messages[-1]['content']}\n\n{instruction}"}]
        params: dict[str, Any] = {}
        if self.json_mode:
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": output.__name__, "schema": schema},
            }
        attempts: list[dict[str, Any]] = []
        for _ in range(self.max_reasks + 1):
            reply = self.complete(convo, purpose=purpose, max_tokens=max_tokens, **params)
            raw = str(reply.get("content") or "")
            try:
                # strict=False: raw newlines inside strings are common and harmless
                value = output.model_validate(json.loads(extract_json(raw), strict=False))
                problem = check(value) if check is not None else None
                if problem is None:
                    return value
                error = problem
            except json.JSONDecodeError as exc:
                error = f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
            except ValidationError as exc:
                error = _describe(exc)
            attempts.append({"output": raw, "error": error})
            self.log.record(CallRecord("teacher", self.model, purpose, outcome="reask", detail=error[:500]))
            convo = [
                *convo,
                {"role": "assistant", "content": raw},
                {"role": "user", "content": render("reask.md", error=error)},
            ]
        raise TeacherOutputError(
            f"teacher {self.model} returned invalid {output.__name__} {len(attempts)} times; "
            f"last error: {attempts[-1]['error']}",
            attempts=attempts,
            hint="use a stronger teacher, or raise AGENTKD_MAX_REASKS.",
        )


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def clean_message(message: dict[str, Any]) -> dict[str, Any]:
    """An assistant message with only the OpenAI fields (providers add their own, which some reject back)."""
    out: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
    calls = []
    for i, call in enumerate(message.get("tool_calls") or []):
        fn = call.get("function") or {}
        args = fn.get("arguments")
        calls.append({"id": call.get("id") or f"call_{i}", "type": "function",
                      "function": {"name": fn.get("name", ""),
                                   "arguments": args if isinstance(args, str) else json.dumps(args or {})}})
    if calls:
        out["tool_calls"] = calls
    return out
