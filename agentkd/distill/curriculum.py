"""The curriculum: per-category pass rates, where to aim the next batch, when to raise difficulty, and
when to stop (budget, wall time, diminishing returns).

Aiming follows domain-gap-driven mixing (DDK): a category's share of the next batch grows with how far
the student is from mastering it, with a floor so no category is forgotten.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from pydantic import BaseModel, Field


class CategoryRecord(BaseModel):
    attempts: int = 0
    passed: int = 0
    difficulty: int = 1
    recent: list[bool] = Field(default_factory=list)  # last outcomes, newest last

    @property
    def pass_rate(self) -> float:
        """Smoothed pass rate of recent attempts (a prior of one pass in two keeps new categories in play)."""
        window = self.recent[-20:]
        return (sum(window) + 1) / (len(window) + 2)


class Curriculum(BaseModel):
    """Checkpointable curriculum state."""

    categories: dict[str, CategoryRecord] = Field(default_factory=dict)
    raise_at: float = 0.8  # pass rate over the recent window that moves a category up one difficulty level
    floor: float = 0.1  # minimum share of any known category
    max_difficulty: int = 5

    def record(self, category: str, passed: bool) -> None:
        stats = self.categories.setdefault(category, CategoryRecord())
        stats.attempts += 1
        stats.passed += int(passed)
        stats.recent = [*stats.recent[-39:], passed]

    def mix(self, known: Sequence[str] = ()) -> dict[str, float]:
        """Share of the next batch per category: proportional to the gap (1 - pass rate), floored; a category of
        ``known`` (the task's) never attempted yet counts as a full gap, so the first rounds spread over the task
        instead of drawing at random from it (a random draw of 6 from 4 categories often misses one)."""
        gaps = {c: 1.0 for c in known}
        gaps |= {c: max(1.0 - s.pass_rate, self.floor) for c, s in self.categories.items()}
        if not gaps:
            return {}
        total = sum(gaps.values())
        return {c: g / total for c, g in sorted(gaps.items())}

    def difficulty(self, category: str) -> int:
        return self.categories[category].difficulty if category in self.categories else 1

    def update_difficulty(self) -> list[str]:
        """Raise difficulty where the student has mastered the current level; return the categories raised."""
        raised = []
        for name, stats in self.categories.items():
            window = stats.recent[-10:]
            if (
                len(window) >= 5
                and sum(window) / len(window) >= self.raise_at
                and stats.difficulty < self.max_difficulty
            ):
                stats.difficulty += 1
                stats.recent = []
                raised.append(name)
        return raised


def allocate(mix: dict[str, float], n: int) -> dict[str, int]:
    """Split ``n`` items by ``mix`` with largest remainders (deterministic, sums to ``n``)."""
    if not mix:
        return {}
    raw = {c: share * n for c, share in mix.items()}
    counts = {c: int(v) for c, v in raw.items()}
    for c in sorted(raw, key=lambda c: (raw[c] - counts[c], c), reverse=True)[: n - sum(counts.values())]:
        counts[c] += 1
    return {c: k for c, k in counts.items() if k}


class Budget(BaseModel):
    """Limits on a build; ``None`` means unlimited."""

    max_teacher_tokens: int | None = None
    max_cost_usd: float | None = None
    max_seconds: float | None = None
    min_gain_per_1k_tokens: float | None = None  # stop when admitted lift per 1k teacher tokens falls below
    started: float = Field(default_factory=time.time)

    def remaining(self) -> float | None:
        """Seconds of wall time left, or None without a time limit."""
        return None if self.max_seconds is None else self.max_seconds - (time.time() - self.started)

    def exceeded(
        self, *, teacher_tokens: int, cost_usd: float, last_gain: float | None, last_tokens: int
    ) -> str | None:
        """Why the build must stop now, or None."""
        if self.max_teacher_tokens is not None and teacher_tokens >= self.max_teacher_tokens:
            return f"teacher token budget reached ({teacher_tokens:,} ≥ {self.max_teacher_tokens:,})"
        if self.max_cost_usd is not None and cost_usd >= self.max_cost_usd:
            return f"cost budget reached (${cost_usd:.4f} ≥ ${self.max_cost_usd:.4f})"
        if self.max_seconds is not None and time.time() - self.started >= self.max_seconds:
            return f"wall-time budget reached ({self.max_seconds:.0f}s)"
        if self.min_gain_per_1k_tokens is not None and last_gain is not None and last_tokens > 0:
            rate = last_gain / (last_tokens / 1000)
            if rate < self.min_gain_per_1k_tokens:
                return f"gain per 1k teacher tokens fell to {rate:.4f} (< {self.min_gain_per_1k_tokens})"
        return None
