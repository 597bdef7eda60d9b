"""A teacher transport that answers from a script: ``--teacher script:<file.json>`` for offline pipeline runs,
and the base of ``agentkd.testing``'s fakes (timeouts, rate limits, dropped connections, malformed output)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from agentkd.errors import TeacherConnectionError, TeacherRateLimited, TeacherTimeout

Step = str | dict[str, Any] | BaseException | Callable[[list[dict[str, Any]]], Any]


def _response(content: str, prompt_tokens: int = 10, completion_tokens: int = 10) -> dict[str, Any]:
    return {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
        "_cost": 0.0,
    }


class ScriptedTransport:
    """Answers teacher calls from a script, one step per call.

    A step is a string (the reply's content), a full response dict, an exception to raise, or a
    callable that receives the messages and returns one of those. When the script runs out, the last
    step repeats (``repeat_last=True``) or an AssertionError is raised.
    """

    def __init__(self, script: Iterable[Step], *, latency: float = 0.0, repeat_last: bool = False) -> None:
        self.script = list(script)
        self.latency, self.repeat_last = latency, repeat_last
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, *, model: str, messages: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
        with self._lock:
            self.calls.append({"model": model, "messages": messages, **params})
            if not self.script:
                raise AssertionError(f"ScriptedTransport: no step left for call {len(self.calls)}")
            step = self.script[0] if (self.repeat_last and len(self.script) == 1) else self.script.pop(0)
        if self.latency:
            time.sleep(self.latency)
        if callable(step) and not isinstance(step, BaseException):
            step = step(messages)
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, str):
            return _response(step)
        return dict(step)


_FAULTS = {"timeout": TeacherTimeout, "rate_limit": TeacherRateLimited, "connection": TeacherConnectionError}


def load_script(path: str | Path) -> ScriptedTransport:
    """A ``ScriptedTransport`` from a JSON file, for ``--teacher script:<file>``.

    ``{"latency": 0.5, "repeat_last": false, "steps": ["reply", {"raise": "rate_limit", "retry_after": 1}]}``;
    ``raise`` is one of timeout, rate_limit, connection.
    """
    data = json.loads(Path(path).read_text())
    steps: list[Step] = []
    for step in data["steps"]:
        if isinstance(step, dict) and "raise" in step:
            kind = _FAULTS[step["raise"]]
            steps.append(kind(f"scripted {step['raise']}", retry_after=step.get("retry_after")))
        else:
            steps.append(step)
    return ScriptedTransport(steps, latency=float(data.get("latency", 0.0)), repeat_last=bool(data.get("repeat_last")))
