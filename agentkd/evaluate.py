"""Held-out evaluation: the same items, the same seed, the student with and without its library."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agentkd.judge import judge
from agentkd.schema import Scenario
from agentkd.student import Student
from agentkd.tasks import TaskSource
from agentkd.tasks.base import run_attempt


@dataclass
class ArmResult:
    """One arm of an evaluation (e.g. "student" or "student+library")."""

    name: str
    correct: int = 0
    total: int = 0
    seconds: float = 0.0
    completion_tokens: int = 0
    items: list[dict[str, object]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


def run_arm(
    name: str,
    student: Student,
    task: TaskSource,
    scenarios: Sequence[Scenario],
    *,
    use_library: bool,
    progress: Callable[[], None] | None = None,
) -> ArmResult:
    """Evaluate ``student`` on ``scenarios``; without the library it gets no strategies at all."""
    arm = ArmResult(name)
    for sc in scenarios:
        attempt = run_attempt(task, student, sc, strategies=None if use_library else [])
        verdict = judge(task, sc, attempt)
        arm.correct += int(verdict.correct)
        arm.total += 1
        arm.seconds += attempt.seconds
        arm.completion_tokens += attempt.completion_tokens
        arm.items.append(
            {
                "id": sc.id,
                "correct": verdict.correct,
                "expected": sc.answer,
                "answer": attempt.answer[-200:],
                "strategies": attempt.strategy_ids,
            }
        )
        if progress:
            progress()
    return arm
