"""What the loop's nodes are given besides the state: the build's knobs and its parts."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentkd.config import Settings
from agentkd.distill.curriculum import Budget
from agentkd.models.runlog import RunLog
from agentkd.schema import Strategy
from agentkd.student.student import Student
from agentkd.tasks import TaskSource
from agentkd.teacher.teacher import Teacher


class StrategyStore(Protocol):
    def add(self, strategy: Strategy) -> tuple[str, str]: ...

    def get(self, strategy_id: str) -> Strategy | None: ...


def _default(name: str) -> Any:
    return Settings.model_fields[name].default


@dataclass
class BuildConfig:
    """Knobs of one build; the defaults are the settings' (``agentkd.config.Settings``), as the CLI's are."""

    iterations: int = _default("iterations")
    batch_size: int = _default("batch_size")
    max_strategies_per_iteration: int = _default("max_strategies")
    siblings: int = 1  # no longer used (admission_items decides); kept so older run specs still resume
    admission_items: int = _default("admission_items")  # paired items each candidate is measured on
    alpha: float = _default("admission_alpha")  # level of the one-sided sign test that admits a candidate
    probe_temperature: float = _default("probe_temperature")  # a sampled run per item finds "sometimes" items
    teacher_concurrency: int = 4
    student_concurrency: int = 1  # episodes at once: a server's slots, or an in-process batch's width
    teacher_solves: bool = True  # the teacher solves the failed scenario first, for contrast
    examples: bool = True  # a failure's verified teacher program becomes an ``example`` candidate
    example_tries: int = _default("example_tries")  # the teacher's tries at it (harvest.py)
    prose: str = _default("prose")  # written entries without a verified example: auto (not for programs), on, off
    seed: int = _default("seed")
    budget: Budget = field(default_factory=Budget)

    @classmethod
    def from_settings(cls, settings: Settings) -> BuildConfig:
        """The build the settings (environment and overrides) describe."""
        return cls(iterations=settings.iterations, batch_size=settings.batch_size,
                   max_strategies_per_iteration=settings.max_strategies, admission_items=settings.admission_items,
                   alpha=settings.admission_alpha, probe_temperature=settings.probe_temperature, seed=settings.seed,
                   prose=settings.prose, example_tries=settings.example_tries)


@dataclass
class BuildContext:
    """Everything the nodes need besides the state."""

    teacher: Teacher
    student: Student
    library: StrategyStore
    task: TaskSource
    config: BuildConfig = field(default_factory=BuildConfig)
    log: RunLog = field(default_factory=RunLog)
    progress: Callable[..., None] = lambda event, **data: None
    student_turns: threading.Semaphore = field(init=False)  # whole episodes, so the KV cache stays warm
    probes: dict[tuple[str, int], Any] = field(default_factory=dict)  # probed items per (category, round)
    reserve: Callable[[], float] = lambda: 0.0  # seconds the build needs after the loop (its with-library arm)
    pending: dict[str, Strategy] = field(default_factory=dict)  # candidates written, not yet decided (the reserve)

    def __post_init__(self) -> None:
        self.student_turns = threading.Semaphore(max(self.config.student_concurrency, 1))

    def seconds_left(self) -> float | None:
        """Wall time the loop still has once the with-library arm's share is kept back; None without a limit."""
        left = self.config.budget.remaining()
        return None if left is None else left - self.reserve()
