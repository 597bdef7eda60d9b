"""``agentkd serve`` against careless and hostile clients: malformed requests, huge bodies, abandoned
requests, foreign ``Host`` headers and missing API keys. A real server process; raw ``http.client``
where the ``openai`` client would refuse to send the request, the ``openai`` client where a user would.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import openai
import pytest

from tests.test_server import QUESTION, WEATHER, serve

pytestmark = [pytest.mark.server, pytest.mark.model]

BAD: list[tuple[Any, str]] = [  # (body, the field the error must name)
    ({"messages": [{"content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
    ({"messages": "hi"}, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content"),
    ({"messages": [{"role": "user"}]}, "messages[0]"),
    ({"messages": [{"role": "assistant", "content": None, "tool_calls": "x"}]}, "messages[0].tool_calls"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"id": "1", "function": {"name": "f"}}]}]},
     "messages[0].tool_calls[0].function.arguments"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "tool_call_id"),
    ({"messages": QUESTION, "tools": [{}]}, "tools[0]"),
    ({"messages": QUESTION, "tools": [{"type": "function", "function": {"name": "a b"}}]}, "tools[0].function.name"),
    ({"messages": QUESTION, "tools": "weather"}, "tools"),
    ({"messages": QUESTION, "max_tokens": 0}, "max_tokens"),
    ({"messages": QUESTION, "max_tokens": -5, "stream": True}, "max_tokens"),
    ({"messages": QUESTION, "max_completion_tokens": 0}, "max_completion_tokens"),
    ('{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}', "temperature"),
    ('{"messages": [{"role": "user", "content": "hi"}], "temperature": 1e999}', "temperature"),
    ({"messages": QUESTION, "temperature": -1}, "temperature"),
    ({"messages": QUESTION, "tool_choice": "sometimes"}, "tool_choice"),
    ({"messages": QUESTION, "tool_choice": "required"}, "tool_choice"),
    ({"messages": QUESTION, "tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "tool_choice"),
    ({"messages": QUESTION, "seed": "x"}, "seed"),
    ({"messages": QUESTION, "n": 3}, "n"),
    ("{", "JSON"),
    ("[]", "object"),
]


@pytest.fixture(scope="module")
def server(smollm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(smollm_path, tmp_path_factory.mktemp("home")) as base:
        yield base


@pytest.fixture(scope="module")
def keyed(smollm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(smollm_path, tmp_path_factory.mktemp("home"), "--allowed-host", "example.test",
               env={"AGENTKD_API_KEY": "sk-local-secret", "AGENTKD_MAX_REQUEST_MB": "0.5"}) as base:
        yield base


def _conn(base: str) -> http.client.HTTPConnection:
    url = urlparse(base)
    return http.client.HTTPConnection(url.hostname or "", url.port, timeout=60)


def _post(conn: http.client.HTTPConnection, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    conn.request("POST", "/v1/chat/completions", body=data,
                 headers={"Content-Type": "application/json", **(headers or {})})
    res = conn.getresponse()
    return res.status, json.loads(res.read() or b"null")


def test_malformed_requests_get_a_400_naming_the_field_and_keep_the_connection(server: str) -> None:
    conn = _conn(server)
    status, ok = _post(conn, {"messages": QUESTION, "max_tokens": 2})
    assert status == 200 and ok["choices"][0]["message"]["role"] == "assistant"
    sock = conn.sock
    for body, field in BAD:
        status, reply = _post(conn, body)
        assert status == 400, (body, reply)
        error = reply["error"]
        assert error["type"] == "invalid_request_error" and field in error["message"], (body, error)
        assert "Traceback" not in error["message"]
        assert conn.sock is sock, f"the server dropped the connection after {body!r}"
    status, ok = _post(conn, {"messages": QUESTION, "max_tokens": 2})  # the same connection still serves
    assert status == 200 and conn.sock is sock


def test_a_body_over_the_limit_is_refused_with_413(keyed: str) -> None:
    conn = _conn(keyed)
    big = {"messages": [{"role": "user", "content": "x" * 600_000}]}
    status, reply = _post(conn, big, {"Authorization": "Bearer sk-local-secret"})
    assert status == 413 and "--max-request-mb" in reply["error"]["message"]
    conn = _conn(keyed)  # chunked, so no Content-Length gives it away
    conn.putrequest("POST", "/v1/chat/completions")
    for name, value in (("Authorization", "Bearer sk-local-secret"), ("Transfer-Encoding", "chunked"),
                        ("Content-Type", "application/json")):
        conn.putheader(name, value)
    conn.endheaders()
    data = json.dumps(big).encode()
    for i in range(0, len(data), 65536):
        piece = data[i:i + 65536]
        conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
    conn.send(b"0\r\n\r\n")
    assert conn.getresponse().status == 413


def test_an_abandoned_request_stops_its_generation(server: str) -> None:
    long = {"messages": [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}],
            "max_tokens": 200}
    t0 = time.perf_counter()
    status, whole = _post(_conn(server), long)
    full = time.perf_counter() - t0
    if status != 200 or whole["usage"]["completion_tokens"] < 100:
        pytest.skip(f"the model stopped early ({whole}); nothing long to abandon")
    url = urlparse(server)
    data = json.dumps(long).encode()
    for _ in range(3):  # three clients send the long request and hang up before the answer
        with socket.create_connection((url.hostname, url.port)) as s:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      + f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
            time.sleep(0.3)
    t0 = time.perf_counter()
    status, _ = _post(_conn(server), {"messages": QUESTION, "max_tokens": 4})
    waited = time.perf_counter() - t0
    assert status == 200
    # had the abandoned requests run on, this one would wait for about three full generations
    assert waited < full, f"waited {waited:.1f}s behind abandoned requests (one full request takes {full:.1f}s)"


def test_a_foreign_host_header_is_refused_on_localhost(server: str, keyed: str) -> None:
    for base in (server, keyed):
        conn = _conn(base)
        conn.request("GET", "/v1/models", headers={"Host": "attacker.example:8000"})
        res = conn.getresponse()
        error = json.loads(res.read())["error"]
        assert res.status == 403 and "--allowed-host attacker.example" in error["message"]
    for host in ("localhost:1234", "127.0.0.1", "[::1]:80"):
        conn = _conn(server)
        conn.request("GET", "/v1/models", headers={"Host": host})
        assert conn.getresponse().status == 200, host
    conn = _conn(keyed)  # a host named with --allowed-host is accepted
    conn.request("GET", "/v1/models", headers={"Host": "example.test:8000", "Authorization": "Bearer sk-local-secret"})
    assert conn.getresponse().status == 200


def test_an_api_key_is_required_when_set(keyed: str) -> None:
    client = openai.OpenAI(base_url=keyed, api_key="sk-local-secret", max_retries=0, timeout=60)
    assert [m.id for m in client.models.list().data] == ["smollm2-135m"]
    res = client.chat.completions.create(model="m", messages=QUESTION, max_tokens=4)  # type: ignore[arg-type]
    assert res.choices[0].message.content
    wrong = openai.OpenAI(base_url=keyed, api_key="sk-wrong", max_retries=0, timeout=60)
    with pytest.raises(openai.AuthenticationError, match="API key is wrong"):
        wrong.chat.completions.create(model="m", messages=QUESTION, max_tokens=4)  # type: ignore[arg-type]
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    conn = _conn(keyed)
    status, reply = _post(conn, {"messages": QUESTION})
    assert status == 401 and "no API key was sent" in reply["error"]["message"]
    assert reply["error"]["code"] == "invalid_api_key"
