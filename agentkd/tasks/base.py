"""The task-source interface and the ground-truth answer checks shared by numeric tasks."""

from __future__ import annotations

import hashlib
import importlib.util
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from agentkd.errors import TaskError
from agentkd.schema import Attempt, Scenario, Strategy, Verdict

if TYPE_CHECKING:
    from agentkd.tasks.episode import StudentLike
    from agentkd.tools import ToolBox

Split = Literal["train", "validation", "heldout", "heldout-unseen"]

_ANSWER = re.compile(r"answer\s*(?:is|:)?\s*\**\s*\$?\s*(-?[\d,]*\.?\d+)", re.I)
_TEXT_ANSWER = re.compile(r"answer\s*(?:is|:)\s*(.+)", re.I)
_NUMBER = re.compile(r"-?\d[\d,]*\.?\d*|-?\.\d+")


class TaskSource(Protocol):
    """Where scenarios with ground truth come from."""

    name: str
    instructions: str  # how the student should present its final answer

    def scenarios(self, split: Split, n: int, seed: int) -> list[Scenario]: ...

    def check(self, scenario: Scenario, answer: str) -> Verdict: ...


# Optional capabilities. A source has them or not; callers use ``run_attempt`` and ``grade_attempt``,
# which fall back to the plain protocol (``Student.attempt`` and ``check``) when a source lacks them.


@runtime_checkable
class ToolTask(Protocol):
    """A source whose scenarios are solved with domain tools (a fresh toolbox per call)."""

    def tools(self) -> ToolBox: ...


@runtime_checkable
class EpisodeTask(Protocol):
    """A source that runs its own episode (multi-turn, per-scenario tools) instead of ``Student.attempt``."""

    def run(
        self,
        student: StudentLike,
        scenario: Scenario,
        *,
        instructions: str = "",
        strategies: Sequence[Strategy] | None = None,
    ) -> Attempt: ...


@runtime_checkable
class AttemptGrader(Protocol):
    """A source that grades the whole attempt (tool calls, database state, transcript), not just the answer."""

    def grade(self, scenario: Scenario, attempt: Attempt) -> Verdict: ...


DEFAULT_STRATEGY_FOCUS = (
    "The student solves the problem in writing and can run Python code. Typical mistakes: a misread quantity, a "
    "wrong operation, a missed step, a wrong unit, a bug in its program."
)


def strategy_focus(task: object) -> str:
    """What the teacher should know about a source when it writes an entry: how the student works on it (its
    tools) and the mistakes to look for. A source may set ``strategy_focus``; the default fits word problems."""
    return str(getattr(task, "strategy_focus", "") or DEFAULT_STRATEGY_FOCUS)


def run_attempt(
    task: TaskSource, student: Any, scenario: Scenario, *, strategies: Sequence[Strategy] | None = None
) -> Attempt:
    """The student's attempt at ``scenario``: the task's own episode when it has one, else ``student.attempt``."""
    if isinstance(task, EpisodeTask):
        return task.run(student, scenario, instructions=task.instructions, strategies=strategies)
    attempt: Attempt = student.attempt(scenario, instructions=task.instructions, strategies=strategies)
    return attempt


def grade_attempt(task: TaskSource, scenario: Scenario, attempt: Attempt) -> Verdict:
    """Ground-truth grade of an attempt: the task's ``grade`` when it has one, else ``check`` on the answer."""
    if isinstance(task, AttemptGrader):
        return task.grade(scenario, attempt)
    return task.check(scenario, attempt.answer)


def require_validation(task: object) -> None:
    """Refuse a source without a ``validation`` split: the pack gate needs items neither builds nor held-out use."""
    if not getattr(task, "validation_split", False):
        name = getattr(task, "name", type(task).__name__)
        raise TaskError(
            f"{name} has no validation split, so the pack gate cannot measure a library on it",
            hint="the gate needs items that builds (train) and evaluation (heldout) never use; a task source offers "
            "them by setting validation_split = True and serving scenarios('validation', ...). gsm_symbolic and "
            "the other reasoning-gym tasks have one.",
        )


def in_train_split(item_id: str, *, train_fraction: float = 0.7, salt: str = "agentkd-split-v1") -> bool:
    """A fixed, seed-independent split: a hash of the id decides, so builds never see held-out items."""
    digest = hashlib.sha256(f"{salt}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < train_fraction


def package_dir(package: str, install: str) -> Path:
    """Where an installed package's files are, without importing it (its runtime may lack dependencies)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise TaskError(f"the {package!r} package is not installed",
                        hint=f"install it: pip install --no-deps {install}")
    return Path(next(iter(spec.submodule_search_locations)))


def extract_number(text: str) -> float | None:
    """The final numeric answer in a reply: after 'Answer:' if present, else the last number."""
    text = text.replace("**", "")
    found = _ANSWER.findall(text) or _NUMBER.findall(text)
    for raw in reversed(found):
        try:
            return float(raw.replace(",", "").rstrip("."))
        except ValueError:
            continue
    return None


def _final_text(text: str) -> str:
    """A text answer for comparison: what follows the last 'Answer:' if present, trimmed and lower-cased."""
    text = text.replace("**", "")
    found = _TEXT_ANSWER.findall(text)
    return (found[-1] if found else text).strip().strip(".").strip().lower()


def numeric_match(expected: str, answer: str, rel_tol: float = 1e-6) -> Verdict:
    """Ground-truth check for numeric answers."""
    got = extract_number(answer)
    want = extract_number(expected)
    if want is None:
        ok = _final_text(expected) == _final_text(answer)
        return Verdict(correct=ok, score=float(ok), reasons=f"expected {expected!r}")
    if got is None:
        return Verdict(correct=False, score=0.0, reasons=f"no number in the answer; expected {expected}")
    ok = math.isclose(got, want, rel_tol=rel_tol, abs_tol=1e-6)
    return Verdict(correct=ok, score=float(ok), reasons=f"expected {expected}, got {got:g}")
