"""Scripted fakes for what a real part cannot do on demand: a teacher that times out, is rate limited,
drops the connection, or returns malformed output. Shipped in the package so users can test too.

    from agentkd.testing import ScriptedTransport, fake_teacher
    from agentkd.errors import TeacherRateLimited

    teacher = fake_teacher([TeacherRateLimited("429", retry_after=0.01), '{"kind": "strategy", ...}'])
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agentkd.models.runlog import RunLog
from agentkd.teacher.scripted import ScriptedTransport, Step, load_script
from agentkd.teacher.teacher import Teacher

__all__ = ["ScriptedTransport", "Step", "fake_teacher", "load_script"]

def fake_teacher(
    script: Iterable[Step],
    *,
    model: str = "fake/teacher",
    latency: float = 0.0,
    repeat_last: bool = False,
    **kwargs: Any,
) -> Teacher:
    """A ``Teacher`` driven by a ``ScriptedTransport``; backoff sleeps are skipped."""
    kwargs.setdefault("sleep", lambda s: None)
    kwargs.setdefault("log", RunLog())
    kwargs.setdefault("json_mode", False)
    return Teacher(model, transport=ScriptedTransport(script, latency=latency, repeat_last=repeat_last), **kwargs)
