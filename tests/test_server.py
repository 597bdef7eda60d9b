"""``agentkd serve`` as a user meets it: a real server process, the official ``openai`` client, clients at once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from agentkd.schema import Strategy

pytestmark = [pytest.mark.server, pytest.mark.model]

ENTRY = Strategy(id="s-legs", status="admitted", title="Count legs by animal", tasks=["demo"],
                 trigger="questions about how many legs or wheels a group of animals or vehicles has",
                 body="1. Multiply each kind's count by its legs. 2. Add the products.")  # fmt: skip
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
QUESTION = [{"role": "user", "content": "How many legs do 3 dogs and 2 chickens have?"}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(smollm_path: Path, home: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """A real ``agentkd serve`` process on a free port; yields its base URL once it answers."""
    from agentkd.library import Library

    Library.open(str(home / "library")).add(ENTRY)
    port = _free_port()
    # one thread: the test process and other jobs share the cores, and llama.cpp's spinning threads suffer most
    env = {**os.environ, "AGENTKD_HOME": str(home), "AGENTKD_STUDENT": str(smollm_path), "AGENTKD_N_CTX": "2048",
           "AGENTKD_N_THREADS": "1", **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "agentkd.cli", "serve", "--port", str(port), "--max-steps", "2",
                             *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                urllib.request.urlopen(f"{base}/models", timeout=1)
                break
            except urllib.error.HTTPError:  # it answers (a key is asked for)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start:\n{proc.stdout.read() if proc.stdout else ''}") from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server(smollm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(smollm_path, tmp_path_factory.mktemp("home")) as base:
        yield base


def _client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base, api_key="unused", max_retries=0, timeout=120)


def test_models_and_a_non_streamed_answer_with_the_library_applied(server: str) -> None:
    client = _client(server)
    assert [m.id for m in client.models.list().data] == ["smollm2-135m"]
    res = client.chat.completions.create(model="smollm2-135m", messages=QUESTION, max_tokens=24)  # type: ignore[arg-type]
    choice = res.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    extra = res.model_extra["agentkd"]  # type: ignore[index]
    assert [s["id"] for s in extra["strategies"]] == ["s-legs"] and extra["answer"]
    assert res.usage is not None and res.usage.prompt_tokens > 0 and res.usage.completion_tokens > 0


def test_streaming_gives_the_same_text_as_non_streaming(server: str) -> None:
    client = _client(server)
    whole = client.chat.completions.create(model="m", messages=QUESTION, max_tokens=24, seed=3)  # type: ignore[arg-type]
    stream = client.chat.completions.create(model="m", messages=QUESTION, max_tokens=24, seed=3, stream=True,  # type: ignore[arg-type]
                                            stream_options={"include_usage": True})  # fmt: skip
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # really streamed
    assert text.strip() == whole.choices[0].message.content
    assert any(c.choices and c.choices[0].finish_reason for c in chunks) and chunks[-1].usage is not None


def test_client_tools_are_passed_through_and_their_results_sent_back(server: str) -> None:
    client = _client(server)
    msgs: list[dict[str, object]] = [{"role": "user", "content": "What is the weather in Paris?"}]
    res = client.chat.completions.create(model="m", messages=msgs, tools=[WEATHER], tool_choice="required",  # type: ignore[arg-type, list-item]
                                         max_tokens=24)  # fmt: skip
    choice = res.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)  # type: ignore[union-attr]
    msgs += [choice.message.model_dump(exclude_none=True),
             {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 24 °C"}]  # fmt: skip
    final = client.chat.completions.create(model="m", messages=msgs, tools=[WEATHER], max_tokens=30)  # type: ignore[arg-type, list-item]
    assert final.choices[0].message.content and not final.choices[0].message.tool_calls
    stream = client.chat.completions.create(model="m", messages=msgs[:1], tools=[WEATHER], tool_choice="required",  # type: ignore[arg-type, list-item]
                                            max_tokens=24, stream=True)  # fmt: skip
    deltas = [c.choices[0].delta for c in stream if c.choices]
    streamed = [tc for d in deltas for tc in (d.tool_calls or [])]
    assert streamed and streamed[0].function.name == "get_weather"  # type: ignore[union-attr]


def test_concurrent_clients_all_succeed(server: str) -> None:
    async def one(client: openai.AsyncOpenAI, i: int) -> str:
        msgs = [{"role": "user", "content": f"How many legs do {i + 2} cats have?"}]
        if i % 2:
            parts = [c.choices[0].delta.content or "" async for c in await client.chat.completions.create(
                model="m", messages=msgs, max_tokens=24, stream=True) if c.choices]  # type: ignore[arg-type]
            return "".join(parts)
        res = await client.chat.completions.create(model="m", messages=msgs, max_tokens=24)  # type: ignore[arg-type]
        return res.choices[0].message.content or ""

    async def main() -> list[str]:
        client = openai.AsyncOpenAI(base_url=server, api_key="unused", max_retries=0, timeout=120)
        return await asyncio.gather(*(one(client, i) for i in range(4)))

    answers = asyncio.run(main())
    assert len(answers) == 4 and all(a.strip() for a in answers)


def test_a_bad_request_is_an_openai_error_not_a_crash(server: str) -> None:
    client = _client(server)
    with pytest.raises(openai.BadRequestError, match="context window"):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "word " * 3000}])
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model="m", messages=[])
    assert client.chat.completions.create(model="m", messages=QUESTION, max_tokens=4).choices[0].message.content
