"""What the loop's nodes are given besides the state: the build's knobs and its parts."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentkd.distill.curriculum import Budget
from agentkd.models.runlog import RunLog
from agentkd.schema import Strategy
from agentkd.student.student import Student
from agentkd.tasks import TaskSource
from agentkd.teacher.teacher import Teacher


class StrategyStore(Protocol):
    def add(self, strategy: Strategy) -> tuple[str, str]: ...

    def get(self, strategy_id: str) -> Strategy | None: ...


@dataclass
class BuildConfig:
    """Knobs of one build."""

    iterations: int = 2
    batch_size: int = 6
    max_strategies_per_iteration: int = 3
    siblings: int = 2  # no longer used (admission_items decides); kept so older run specs still resume
    admission_items: int = 8  # paired items of its category each candidate is measured on (admission.py)
    alpha: float = 0.05  # level of the one-sided sign test that admits a candidate (library/curation.py)
    probe_temperature: float = 0.7  # one sampled run per item finds the items the student solves sometimes
    teacher_concurrency: int = 4
    student_concurrency: int = 1  # >1 only helps a student served with several slots
    teacher_solves: bool = True  # the teacher solves the failed scenario first, for contrast
    examples: bool = True  # a failure's verified teacher program becomes an ``example`` candidate
    seed: int = 1234
    budget: Budget = field(default_factory=Budget)


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

    def __post_init__(self) -> None:
        self.student_turns = threading.Semaphore(max(self.config.student_concurrency, 1))
