"""Held-out evaluation: the same items, the same seed, the student with and without its library.

``run_arm`` is the build's quick before/after; ``agentkd.eval`` is the full harness (more arms,
bootstrap intervals, reports, transcripts). Both attempt and grade items the same way: the task's own
episode when it has one (``run_attempt``) and its own grading (``grade``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

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
    seconds: float = 0.0  # the items' own times, summed
    completion_tokens: int = 0
    wall: float = 0.0  # the arm's wall time (items run ``width`` at once)
    reused: int = 0  # items whose prompt was the baseline's (nothing retrieved): its answer stands
    score: float = 0.0  # sum of the verdicts' scores (partial credit, e.g. tau2's action-level score)
    items: list[dict[str, object]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def mean_score(self) -> float:
        return self.score / self.total if self.total else 0.0


grade = judge  # one grading function: the task's grader, else its answer check (``distill.grading.judge``)

T = TypeVar("T")
X = TypeVar("X")


def in_order(run: Callable[[X], T], items: Sequence[X], width: int = 1) -> Generator[T, None, None]:
    """``run(item)`` for every item, ``width`` of them at once (sequences of one batch, or a server's slots),
    yielded in the items' order. Closing the iterator early (an interrupted arm) cancels the items not begun."""
    if width <= 1 or len(items) <= 1:
        yield from (run(x) for x in items)
        return
    pool = ThreadPoolExecutor(width, thread_name_prefix="agentkd-items")
    try:
        futures = [pool.submit(run, x) for x in items]
        yield from (f.result() for f in futures)
    finally:
        pool.shutdown(cancel_futures=True)  # no items left running behind an interrupted arm


def run_arm(
    name: str,
    student: Student,
    task: TaskSource,
    scenarios: Sequence[Scenario],
    *,
    use_library: bool,
    progress: Callable[[], None] | None = None,
    width: int = 1,
    reuse: ArmResult | None = None,
) -> ArmResult:
    """Evaluate ``student`` on ``scenarios``; without the library it gets no strategies at all. ``width`` items
    run at once (a batched in-process model, or a server's slots); the result is in scenario order.

    ``reuse``: the student-alone arm on the same items. An item for which the library retrieves nothing gets
    exactly that arm's prompt, so its answer there stands (the pair differs only where the library does)
    instead of being decoded again; single-turn tasks only (an episode's later turns may retrieve).
    """
    started = time.perf_counter()
    before = {str(i["id"]): i for i in reuse.items} if reuse is not None and not task.has_own("run") else {}

    def one(sc: Scenario) -> dict[str, object]:
        if sc.id in before and use_library and not student.retrieve(sc.question, sc.task):
            if progress:
                progress()
            return {**before[sc.id], "strategies": [], "reused": True, "seconds": 0.0, "completion_tokens": 0}
        attempt = run_attempt(task, student, sc, strategies=None if use_library else [])
        verdict = grade(task, sc, attempt)
        if progress:
            progress()
        return {"id": sc.id, "correct": verdict.correct, "score": verdict.score, "expected": sc.answer,
                "answer": attempt.answer[-200:], "strategies": attempt.strategy_ids, "seconds": attempt.seconds,
                "completion_tokens": attempt.completion_tokens}

    items = list(in_order(one, scenarios, width))
    arm = ArmResult(name, wall=time.perf_counter() - started)
    for item in items:
        arm.reused += int(bool(item.get("reused")))
        arm.correct += int(bool(item["correct"]))
        arm.score += float(item["score"])  # type: ignore[arg-type]
        arm.total += 1
        arm.seconds += float(item.pop("seconds"))  # type: ignore[arg-type]
        arm.completion_tokens += int(item.pop("completion_tokens"))  # type: ignore[call-overload]
        arm.items.append(item)
    return arm
