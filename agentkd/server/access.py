"""Who may use ``agentkd serve``: an optional API key, and the ``Host`` values it answers to.

A server bound to localhost is still reachable from a web page through DNS rebinding (a name the
page's site controls that resolves to 127.0.0.1), so there the ``Host`` header must name this machine.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(bind: str, extra: Iterable[str]) -> set[str] | None:
    """The Host names to accept when bound to ``bind``: None accepts any (bound beyond loopback, or ``*``)."""
    names = {h.strip().lower().strip("[]") for h in extra if h.strip()}
    if "*" in names or (not names and not is_loopback(bind)):
        return None
    return names | set(LOOPBACK_NAMES) | {bind.lower().strip("[]")}


def host_name(header: str) -> str:
    """``[::1]:8000`` -> ``::1``, ``Example.com:80`` -> ``example.com``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


class AccessGuard:
    """ASGI middleware: refuse a foreign ``Host`` (403) and a missing or wrong bearer key (401), OpenAI-shaped."""

    def __init__(self, app: ASGIApp, *, api_key: str | None = None, hosts: set[str] | None = None) -> None:
        self.app, self.api_key, self.hosts = app, api_key, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = host_name(headers.get("host", ""))
        if self.hosts is not None and host not in self.hosts:
            await _refuse(send, 403, "permission_error", "host_not_allowed",
                          f"this server does not answer to the Host {host or '(none)'!r} (protection against DNS "
                          "rebinding); connect through http://127.0.0.1:<port>, or start agentkd serve with "
                          f"--allowed-host {host or '<name>'}")
            return
        if self.api_key is not None:
            given = headers.get("authorization", "")
            scheme, _, token = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.api_key.encode()):
                what = "no API key was sent" if not given else "the API key is wrong"
                await _refuse(send, 401, "invalid_request_error", "invalid_api_key",
                              f"{what}: send the key agentkd serve was started with (--api-key / AGENTKD_API_KEY) "
                              "as 'Authorization: Bearer <key>' (the openai client's api_key)")
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send, status: int, kind: str, code: str, message: str) -> None:
    body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
