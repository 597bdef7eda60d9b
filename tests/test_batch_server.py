"""Serving on the batched engine: concurrent requests decode as sequences of one batch, more than the width queue.

Not asserted: the same text as one by one. One by one, each request starts from the KV cache the previous one
left (arrival order decides which), and on this model that already changes a greedy reply now and then.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import uvicorn

from agentkd.server.app import create_app
from agentkd.student import Student
from agentkd.tools import ToolBox, calculator

pytestmark = [pytest.mark.server, pytest.mark.model]


@contextlib.contextmanager
def _served(app: Any) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _ask_all(base: str, n: int) -> list[str]:
    async def one(client: openai.AsyncOpenAI, i: int) -> str:
        msgs = [{"role": "user", "content": f"How many legs do {i + 2} cats have?"}]
        if i % 2:  # streamed and not, side by side
            parts = [c.choices[0].delta.content or "" async for c in await client.chat.completions.create(
                model="m", messages=msgs, max_tokens=24, stream=True) if c.choices]  # type: ignore[arg-type]
            return "".join(parts)
        res = await client.chat.completions.create(model="m", messages=msgs, max_tokens=24)  # type: ignore[arg-type]
        return res.choices[0].message.content or ""

    async def main() -> list[str]:
        client = openai.AsyncOpenAI(base_url=base, api_key="unused", max_retries=0, timeout=300)
        return await asyncio.gather(*(one(client, i) for i in range(n)))

    return asyncio.run(main())


def test_concurrent_requests_share_one_batch_and_the_rest_queue(smollm_path: Path) -> None:
    student = Student(smollm_path, n_ctx=2048, n_threads=1, max_steps=2, max_tokens=24, tools=ToolBox([calculator]))
    with _served(create_app(student, width=3)) as base:  # 5 clients, 3 at once, 2 queued
        batched = _ask_all(base, 5)
    assert len(batched) == 5 and all(a.strip() for a in batched)
    engine = student.llm.batched(3).engine
    assert engine.stats.mean_width > 1.3 and engine.busy == 0
