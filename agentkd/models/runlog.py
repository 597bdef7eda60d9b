"""An append-only JSONL log of every model call (tokens, cost, latency, outcome) and the usage totals."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class CallRecord:
    """One call to a model: who, what it cost and how it ended."""

    role: str  # "teacher" or "student"
    model: str
    purpose: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    seconds: float = 0.0
    outcome: str = "ok"  # ok | retry | reask | error
    detail: str = ""
    time: float = field(default_factory=time.time)


@dataclass
class Usage:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0
    failures: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, rec: CallRecord) -> None:
        self.calls += 1
        self.prompt_tokens += rec.prompt_tokens
        self.completion_tokens += rec.completion_tokens
        self.cost_usd += rec.cost_usd or 0.0
        self.seconds += rec.seconds
        self.failures += rec.outcome == "error"


class RunLog:
    """Thread-safe JSONL sink; ``path=None`` keeps the totals only."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.usage: dict[str, Usage] = {}
        self._lock = threading.Lock()

    def record(self, rec: CallRecord) -> None:
        with self._lock:
            self.usage.setdefault(rec.role, Usage()).add(rec)
            if self.path:
                with self.path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(asdict(rec), ensure_ascii=False) + "\n")

    def event(self, kind: str, **data: Any) -> None:
        """Log a non-call event (a strategy admitted, a scenario skipped...)."""
        if self.path:
            with self._lock, self.path.open("a", encoding="utf-8") as f:
                f.write(
                    json.dumps({"event": kind, "time": time.time(), **data}, ensure_ascii=False, default=str) + "\n"
                )

    def totals(self, role: str) -> Usage:
        return self.usage.get(role, Usage())
