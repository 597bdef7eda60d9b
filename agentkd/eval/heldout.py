"""Held-out evaluation: the same items, the same seed, the student with and without its library.

``run_arm`` is the build's quick before/after; ``agentkd.eval`` is the full harness (more arms,
bootstrap intervals, reports, transcripts). Both attempt and grade items the same way: the task's own
episode when it has one (``run_attempt``) and its own grading (``grade``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from agentkd.distill.grading import judge
from agentkd.schema import Scenario
from agentkd.student.student import Student
from agentkd.tasks import TaskSource, run_attempt


@dataclass
class ArmResult:
    """One arm of an evaluation (e.g. "student" or "student+library")."""

    name: str
    correct: int = 0
    total: int = 0
    seconds: float = 0.0
    completion_tokens: int = 0
    score: float = 0.0  # sum of the verdicts' scores (partial credit, e.g. tau2's action-level score)
    items: list[dict[str, object]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def mean_score(self) -> float:
        return self.score / self.total if self.total else 0.0


grade = judge  # one grading function: the task's grader, else its answer check (``distill.grading.judge``)


def run_arm(
    name: str,
    student: Student,
    task: TaskSource,
    scenarios: Sequence[Scenario],
    *,
    use_library: bool,
    progress: Callable[[], None] | None = None,
    width: int = 1,
) -> ArmResult:
    """Evaluate ``student`` on ``scenarios``; without the library it gets no strategies at all. ``width`` items
    run at once (a batched in-process model, or a server's slots); the result is in scenario order."""

    def one(sc: Scenario) -> dict[str, object]:
        attempt = run_attempt(task, student, sc, strategies=None if use_library else [])
        verdict = grade(task, sc, attempt)
        if progress:
            progress()
        return {"id": sc.id, "correct": verdict.correct, "score": verdict.score, "expected": sc.answer,
                "answer": attempt.answer[-200:], "strategies": attempt.strategy_ids, "seconds": attempt.seconds,
                "completion_tokens": attempt.completion_tokens}

    if width > 1 and len(scenarios) > 1:
        with ThreadPoolExecutor(width, thread_name_prefix="agentkd-heldout") as pool:
            items = list(pool.map(one, scenarios))
    else:
        items = [one(sc) for sc in scenarios]
    arm = ArmResult(name)
    for item in items:
        arm.correct += int(bool(item["correct"]))
        arm.score += float(item["score"])  # type: ignore[arg-type]
        arm.total += 1
        arm.seconds += float(item.pop("seconds"))  # type: ignore[arg-type]
        arm.completion_tokens += int(item.pop("completion_tokens"))  # type: ignore[call-overload]
        arm.items.append(item)
    return arm
