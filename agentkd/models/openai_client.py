"""A student served over an OpenAI-compatible endpoint (llama.cpp's server, vLLM, Ollama...): the only
``openai`` import.

It has the surface the student uses from ``engine.LocalLLM`` (``chat``, ``chat_stream``,
``count_tokens``, ``render``, ``n_ctx``), so a build can spread the student's episodes over a server's
slots (``--student-concurrency``) instead of serializing them on one in-process model. Tool calls and
JSON output are the server's to constrain; token counts for packing and context checks are estimates.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any

import openai

from agentkd.config import get_settings
from agentkd.errors import ConfigError, ModelNotFoundError
from agentkd.models.chat_template import ChatResult, final_result

CONNECT_TIMEOUT = 10.0  # seconds to open a connection
RETRIES = 2  # of a request that timed out or lost its connection
CHARS_PER_TOKEN = 3.0  # conservative for English and code with BPE vocabularies: over-counts, never overflows


class ServedLLM:
    """One model behind ``api_base``; thread-safe (one HTTP client, no shared state)."""

    def __init__(self, model: str, api_base: str, *, api_key: str | None = None, n_ctx: int = 4096,
                 seed: int = 1234, timeout: float | None = None, retries: int = RETRIES) -> None:
        """``timeout``: seconds one request may take (default: the ``student_timeout`` setting)."""
        self.name, self.api_base, self.n_ctx, self.seed = model, api_base, n_ctx, seed
        self.timeout = get_settings().student_timeout if timeout is None else timeout
        self.retries = retries
        # a server that accepts and never answers must end in an error, not a hang: every phase is bounded,
        # connecting more tightly than answering (a prompt may take long to prefill, a connect should not)
        limit = openai.Timeout(self.timeout, connect=min(CONNECT_TIMEOUT, self.timeout))
        self._client = openai.OpenAI(base_url=api_base, api_key=api_key or "not-needed", timeout=limit,
                                     max_retries=retries)

    def count_tokens(self, text: str) -> int:
        return math.ceil(len(text) / CHARS_PER_TOKEN)

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
        """The text the token estimate is taken from (the server applies the real chat template)."""
        parts = [str(m.get("content") or "") + json.dumps(m.get("tool_calls") or "") for m in messages]
        return "\n".join(parts) + (json.dumps(tools) if tools else "")

    def reset(self) -> None:
        """Nothing to forget here: the server owns its caches."""

    def chat(self, messages: list[dict[str, Any]], **kwargs: Any) -> ChatResult:
        return final_result(self.chat_stream(messages, **kwargs))

    def chat_stream(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] = "auto",
        temperature: float = 0.0,
        max_tokens: int = 512,
        seed: int | None = None,
        json_schema: dict[str, Any] | None = None,
        stop: tuple[str, ...] = (),
        prefix: str = "",
    ) -> Iterator[str | ChatResult]:
        """The reply in one request (not streamed: a tool call arrives whole anyway), then the ``ChatResult``."""
        if prefix:
            raise ConfigError("a first-thought prefix needs an in-process student",
                              hint="turn first_thought off for a served student, or serve it from a GGUF file")
        params: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens,
                                  "seed": self.seed if seed is None else seed}
        if stop:
            params["stop"] = list(stop)[:4]  # the OpenAI API takes at most four
        if tools and tool_choice != "none":
            params["tools"], params["tool_choice"] = tools, tool_choice
        if json_schema is not None:
            params["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": "reply", "schema": json_schema, "strict": True}}
        t0 = time.perf_counter()
        try:
            resp = self._client.chat.completions.create(model=self.name, messages=messages,  # type: ignore[arg-type]
                                                        **params)
        except openai.APITimeoutError as exc:  # before APIConnectionError, its base class
            raise ModelNotFoundError(
                f"the student server at {self.api_base} did not answer within {self.timeout:g} s "
                f"({self.retries + 1} tries)",
                hint="check that it is a working OpenAI-compatible server and not stuck or overloaded, or allow "
                "more time with AGENTKD_STUDENT_TIMEOUT") from exc
        except openai.APIConnectionError as exc:
            raise ModelNotFoundError(f"cannot reach the student server at {self.api_base}: {exc}",
                                     hint="start it (e.g. llama-server --port 8080 -m model.gguf --parallel 4) "
                                     "or fix --student-api-base") from exc
        except openai.NotFoundError as exc:
            raise ModelNotFoundError(f"the server at {self.api_base} does not serve {self.name!r}",
                                     hint="pass the model name the server lists at /v1/models") from exc
        except openai.APIStatusError as exc:  # a prompt over the server's context, an option it lacks...
            raise ConfigError(f"the student server at {self.api_base} refused the request ({exc.status_code}): "
                              f"{exc.message}", hint="check the server's context size (match it with "
                              "AGENTKD_N_CTX) and that it supports tools and JSON schemas") from exc
        seconds = time.perf_counter() - t0
        choice = resp.choices[0]
        message: dict[str, Any] = {"role": "assistant", "content": (choice.message.content or "").strip() or None}
        if choice.message.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function",
                 "function": {"name": c.function.name, "arguments": c.function.arguments}}  # type: ignore[union-attr]
                for c in choice.message.tool_calls
            ]
        if message["content"]:
            yield message["content"]
        usage = resp.usage
        yield ChatResult(
            message=message,
            finish_reason="tool_calls" if message.get("tool_calls") else (choice.finish_reason or "stop"),
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            seconds=seconds,
            timings={"ttft": seconds, "prefill": 0.0, "decode_tps": 0.0, "grammar_rejections": 0.0},
        )
