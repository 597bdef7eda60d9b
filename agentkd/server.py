"""An OpenAI-compatible server for the student: ``/v1/chat/completions`` (streaming or not) and ``/v1/models``.

- Requests *with* ``tools`` are relayed: the model sees the client's tools (and the strategies the
  library retrieves), and a call comes back as ``tool_calls`` for the client to run and send back.
- Requests *without* tools get the whole student: its own tools run here, the strategies are applied,
  and ``content`` is the worked transcript (the model's text, each tool's output, the final answer).
  The final answer alone, the strategies and the tool calls are in the extra ``agentkd`` field.
- There is one model and one KV cache, so turns run one at a time on a single worker thread; requests
  wait in FIFO order (``queue_limit`` waiting at most, then 503). The event loop never blocks: events
  cross from the worker to the request through an asyncio queue. A client that disconnects stops its
  generation at the next token.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from agentkd.errors import AgentKDError
from agentkd.student.agent_loop import Answer, Done, Event
from agentkd.student.student import Student
from agentkd.student.transcript import Transcript


class ChatRequest(BaseModel):
    """The fields of an OpenAI chat completion request that the student uses; others are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = ""
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] = "auto"
    temperature: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    seed: int | None = None
    stream_options: dict[str, Any] | None = None


class Busy(Exception):
    """More requests are waiting than the queue allows."""


class ModelWorker:
    """Runs one turn at a time on a dedicated thread; callers iterate its events asynchronously."""

    def __init__(self, queue_limit: int = 64) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentkd-model")
        self.queue_limit = queue_limit
        self.pending = 0
        self._lock = threading.Lock()

    async def events(self, make: Callable[[], Iterator[Event]]) -> AsyncIterator[Event]:
        with self._lock:
            if self.pending >= self.queue_limit:
                raise Busy(f"{self.pending} requests are already waiting")
            self.pending += 1
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()
        end = object()

        def put(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the event loop is gone: nobody is listening any more
                cancelled.set()

        def work() -> None:
            try:
                if cancelled.is_set():
                    return
                events = make()
                try:
                    for event in events:
                        put(event)
                        if cancelled.is_set():
                            break
                finally:
                    close = getattr(events, "close", None)
                    if close is not None:
                        close()  # in this thread: the engine's lock is released where it was taken
            except BaseException as exc:
                put(exc)
            finally:
                with self._lock:
                    self.pending -= 1
                put(end)

        loop.run_in_executor(self._pool, work)
        try:
            while (item := await queue.get()) is not end:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancelled.set()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _text(content: Any) -> str:
    """OpenAI content: a string, or a list of parts of which the text parts are kept."""
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "" if content is None else str(content)


def _messages(req: ChatRequest) -> list[dict[str, Any]]:
    out = []
    for m in req.messages:
        m = dict(m)
        if "content" in m and m["content"] is not None:
            m["content"] = _text(m["content"])
        out.append(m)
    return out


def _for_request(student: Student, req: ChatRequest) -> Student:
    """A shallow copy with the request's sampling settings (same model and library; turns run one at a time)."""
    s = copy.copy(student)
    s.temperature = student.temperature if req.temperature is None else req.temperature
    s.max_tokens = req.max_completion_tokens or req.max_tokens or student.max_tokens
    s.seed = student.seed if req.seed is None else req.seed
    return s


def _extra(answer: Answer) -> dict[str, Any]:
    return {
        "answer": answer.text,
        "strategies": [{"id": s.id, "title": s.title, "score": round(score, 4)} for s, score in answer.strategies],
        "tool_calls": [c.model_dump() for c in answer.tool_calls],
        "steps": answer.steps,
        "cached_tokens": answer.cached_tokens,
    }


def _usage(answer: Answer) -> dict[str, Any]:
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "total_tokens": answer.prompt_tokens + answer.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": answer.cached_tokens},
    }


def _error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status)


def create_app(student: Student, *, model_name: str | None = None, queue_limit: int = 64) -> FastAPI:
    """The FastAPI app serving ``student``."""
    name = model_name or Path(student.model_spec).name.removesuffix(".gguf")
    worker = ModelWorker(queue_limit)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        worker.close()

    app = FastAPI(title="agentkd student", version="1", lifespan=lifespan)
    app.state.worker = worker
    created = int(time.time())

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": created, "owned_by": "agentkd"}]}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(req: ChatRequest) -> JSONResponse | StreamingResponse:
        stu = _for_request(student, req)
        msgs = _messages(req)
        make = lambda: stu.events(msgs, tools=req.tools or None, tool_choice=req.tool_choice)  # noqa: E731
        cid, now = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if req.stream:
            events = worker.events(make)
            try:
                first = await anext(events)  # queue and start before the headers go out: errors become a status
            except Busy as exc:
                return _error(503, f"the model is busy: {exc}; retry shortly", "server_busy")
            except AgentKDError as exc:
                return _error(400, str(exc))
            usage = bool((req.stream_options or {}).get("include_usage"))
            chunks = _sse(_chunks(first, events, cid=cid, created=now, model=name, usage=usage))
            return StreamingResponse(chunks, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        try:
            answer, content = await _collect(worker.events(make))
        except Busy as exc:
            return _error(503, f"the model is busy: {exc}; retry shortly", "server_busy")
        except AgentKDError as exc:
            return _error(400, str(exc))
        message: dict[str, Any] = {"role": "assistant", "content": content or None}
        finish = answer.finish_reason
        if answer.pending_tool_calls:
            message["tool_calls"] = answer.pending_tool_calls
            finish = "tool_calls"
        body = {
            "id": cid, "object": "chat.completion", "created": now, "model": name,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": _usage(answer), "agentkd": _extra(answer),
        }  # fmt: skip
        return JSONResponse(body)

    return app


async def _collect(events: AsyncIterator[Event]) -> tuple[Answer, str]:
    transcript = Transcript()
    answer = None
    async for event in events:
        transcript.add(event)
        if isinstance(event, Done):
            answer = event.answer
    assert answer is not None
    return answer, transcript.text


async def _chunks(
    first: Event, events: AsyncIterator[Event], *, cid: str, created: int, model: str, usage: bool
) -> AsyncIterator[dict[str, Any]]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}  # fmt: skip

    yield chunk({"role": "assistant", "content": ""})
    transcript = Transcript()

    async def all_events() -> AsyncIterator[Event]:
        yield first
        async for e in events:
            yield e

    try:
        async for event in all_events():
            piece = transcript.add(event)
            if piece:
                yield chunk({"content": piece})
            if isinstance(event, Done):
                answer = event.answer
                finish = answer.finish_reason
                if answer.pending_tool_calls:
                    calls = [{"index": i, **c} for i, c in enumerate(answer.pending_tool_calls)]
                    yield chunk({"tool_calls": calls})
                    finish = "tool_calls"
                final = chunk({}, finish)
                final["agentkd"] = _extra(answer)
                yield final
                if usage:
                    yield {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                           "choices": [], "usage": _usage(answer)}  # fmt: skip
    except AgentKDError as exc:
        yield {"error": {"message": str(exc), "type": "invalid_request_error"}}


async def _sse(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    async for c in chunks:
        yield f"data: {json.dumps(c, ensure_ascii=False)}\n\n"
    yield "data: [DONE]\n\n"

