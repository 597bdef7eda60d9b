"""An OpenAI-compatible server for the student: ``/v1/chat/completions`` (streaming or not) and ``/v1/models``.

- Requests *with* ``tools`` are relayed: the model sees the client's tools (and the strategies the
  library retrieves), and a call comes back as ``tool_calls`` for the client to run and send back.
- Requests *without* tools get the whole student: its own tools run here, the strategies are applied,
  and ``content`` is the worked transcript (the model's text, each tool's output, the final answer).
  The final answer alone, the strategies and the tool calls are in the extra ``agentkd`` field.
- Every request is validated whole (``request.ChatRequest``): a malformed one is a 400 naming the field,
  and the connection stays open. ``access`` checks the API key and the ``Host`` header first.
- By default there is one model and one KV cache, so turns run one at a time on a single worker thread
  (``width`` > 1: that many at once, as sequences of one batch); requests wait in FIFO order
  (``queue_limit`` waiting at most, then 503). The event loop never blocks: events cross from the worker
  to the request through an asyncio queue. A client that disconnects, streaming or not, stops its
  generation at the next token.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from agentkd.errors import AgentKDError
from agentkd.server.access import AccessGuard
from agentkd.server.request import ChatRequest, problems
from agentkd.student.agent_loop import Answer, Done, Event
from agentkd.student.student import Student
from agentkd.student.transcript import Transcript

log = logging.getLogger("agentkd.server")
MAX_REQUEST_BYTES = 4 << 20  # a long conversation with tools is well under this; the model's context is smaller


class Busy(Exception):
    """More requests are waiting than the queue allows."""


class ModelWorker:
    """Runs ``width`` turns at a time (1: one at a time) on dedicated threads; callers iterate its events
    asynchronously."""

    def __init__(self, queue_limit: int = 64, width: int = 1) -> None:
        self._pool = ThreadPoolExecutor(max_workers=width, thread_name_prefix="agentkd-model")
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


def _for_request(student: Student, req: ChatRequest) -> Student:
    """A shallow copy with the request's sampling settings (same model and library; turns run one at a time)."""
    s = copy.copy(student)
    s.temperature = student.temperature if req.temperature is None else req.temperature
    s.max_tokens = req.max_completion_tokens or req.max_tokens or student.max_tokens
    s.seed = student.seed if req.seed is None else req.seed
    return s


class _OneAtATime:
    """The library searched by one batched request at a time (its client is not ours to prove thread-safe)."""

    def __init__(self, inner: Any, lock: threading.Lock) -> None:
        self.inner, self.lock = inner, lock

    def search(self, query: str, *, k: int = 3, task: str | None = None) -> Any:
        with self.lock:
            return self.inner.search(query, k=k, task=task)


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


def _error(status: int, message: str, kind: str = "invalid_request_error", param: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": status}},
                        status_code=status)


async def _read_request(request: Request, limit: int) -> ChatRequest | JSONResponse:
    """The body, read whole (so the connection stays usable) up to ``limit`` bytes, as a validated request."""
    too_big = _error(413, f"the request body is over the server's limit of {limit} bytes: send a shorter "
                     "conversation, or start agentkd serve with a larger --max-request-mb", "request_too_large")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return too_big
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return too_big
    try:
        return ChatRequest.model_validate_json(bytes(body))
    except ValidationError as exc:
        message, param = problems(exc)
        return _error(400, f"invalid request: {message}", param=param or None)


async def _until_disconnect(request: Request) -> None:
    """Return when the client goes away (the body is read already, so only the disconnect can arrive)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def create_app(student: Student, *, model_name: str | None = None, queue_limit: int = 64,
               api_key: str | None = None, allowed_hosts: set[str] | None = None,
               max_request_bytes: int = MAX_REQUEST_BYTES, width: int = 1) -> FastAPI:
    """The FastAPI app serving ``student``.

    ``width`` > 1 with an in-process model: up to ``width`` requests decode at once as sequences of one
    llama.cpp batch (continuous batching: a request joins at the next step and leaves when done, #16);
    more wait in the queue.

    ``api_key``: clients must send it as a bearer token. ``allowed_hosts``: the ``Host`` names it answers
    to (None: any; see ``access.allowed_hosts``). ``max_request_bytes``: the largest body accepted.
    """
    name = model_name or Path(student.model_spec).name.removesuffix(".gguf")
    worker = ModelWorker(queue_limit, width)
    batched = student.llm.batched(width) if width > 1 and hasattr(student.llm, "batched") else None
    searching = threading.Lock()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        worker.close()

    app = FastAPI(title="agentkd student", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.worker = worker
    app.add_middleware(AccessGuard, api_key=api_key, hosts=allowed_hosts)  # type: ignore[arg-type]
    created = int(time.time())

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": created, "owned_by": "agentkd"}]}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> Response:
        req = await _read_request(request, max_request_bytes)
        if isinstance(req, JSONResponse):
            return req
        try:
            return await _complete(request, req)
        except Busy as exc:
            return _error(503, f"the model is busy: {exc}; retry shortly", "server_busy")
        except AgentKDError as exc:
            return _error(400, str(exc))
        except Exception as exc:  # our bug, not the client's: a clean 500 that keeps the connection, no traceback
            log.error("chat completion failed: %s: %s", type(exc).__name__, exc)
            return _error(500, f"the server failed on this request ({type(exc).__name__}: {exc}); please report "
                          "it with the request", "server_error")

    async def _complete(request: Request, req: ChatRequest) -> Response:
        stu = _for_request(student, req)
        if batched is not None:
            stu.llm = batched
            stu.retriever = _OneAtATime(stu.retriever, searching) if stu.retriever is not None else None
        msgs, tools, choice = req.message_dicts(), req.tool_dicts(), req.choice()
        make = lambda: stu.events(msgs, tools=tools, tool_choice=choice)  # noqa: E731
        cid, now = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if req.stream:
            events = worker.events(make)
            first = await anext(events)  # queue and start before the headers go out: errors become a status
            usage = bool(req.stream_options and req.stream_options.include_usage)
            chunks = _sse(_chunks(first, events, cid=cid, created=now, model=name, usage=usage))
            # Starlette stops iterating (and so the model) when the client disconnects
            return StreamingResponse(chunks, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        collect = asyncio.ensure_future(_collect(worker.events(make)))
        gone = asyncio.ensure_future(_until_disconnect(request))
        await asyncio.wait({collect, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not collect.done():  # the client left: cancelling ends the event stream, which stops the model
            collect.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await collect
            return Response(status_code=499)  # nobody reads it; closes the request cleanly
        gone.cancel()
        answer, content = collect.result()
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
    except Exception as exc:  # the headers are out: the error goes in the stream, no traceback
        log.error("streamed chat completion failed: %s: %s", type(exc).__name__, exc)
        yield {"error": {"message": f"the server failed on this request ({type(exc).__name__}: {exc})",
                         "type": "server_error"}}


async def _sse(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    async for c in chunks:
        yield f"data: {json.dumps(c, ensure_ascii=False)}\n\n"
    yield "data: [DONE]\n\n"

