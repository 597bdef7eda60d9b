"""Task sources: where scenarios come from, and how an attempt is checked against ground truth.

Names ``get_task`` knows:
- ``gsm_symbolic`` or any reasoning-gym dataset name;
- ``tau2:<domain>`` (``tau2:retail``): tau2-bench, with a simulated customer and tau2's grading;
- ``bfcl:simple``, ``bfcl:multiple`` (and ``bfcl:live_simple``, ``bfcl:live_multiple``): BFCL's AST check;
- ``spec:<path.yaml>``: a one-page domain spec; the teacher writes the scenarios and grades with its rubric;
- ``jsonl:<path.jsonl>``: a plain file of ``{"question": ..., "answer": ...}`` lines.

Every source is a ``Task`` (``agentkd.tasks.base``; ``TaskSource`` is the same class): it implements
``scenarios`` and ``check`` and may override ``tools()``, ``run(student, scenario, ...)`` (its own episode
loop), ``grade(scenario, attempt)`` (grading the whole attempt), ``siblings``, ``scenarios_for`` and
``categories``; the defaults are ``Student.attempt``, ``check`` on the final answer and "cannot". A class
that does not inherit ``Task`` is wrapped by ``as_task`` (``parts.load_task`` does it for
``module.path:Class``), which fills in the same defaults.
"""

from __future__ import annotations

from typing import Any

from agentkd.errors import TaskError
from agentkd.tasks.base import (
    AttemptGrader,
    EpisodeTask,
    Split,
    Task,
    TaskAdapter,
    TaskSource,
    ToolTask,
    as_task,
    extract_number,
    grade_attempt,
    in_train_split,
    numeric_match,
    run_attempt,
)
from agentkd.tasks.reasoning_gym import ReasoningGymTask

__all__ = [
    "AttemptGrader",
    "EpisodeTask",
    "ReasoningGymTask",
    "Split",
    "Task",
    "TaskAdapter",
    "TaskSource",
    "ToolTask",
    "as_task",
    "extract_number",
    "get_task",
    "grade_attempt",
    "in_train_split",
    "numeric_match",
    "run_attempt",
]


def get_task(name: str, *, teacher: Any = None, customer: Any = None) -> Task:
    """A task source by name (see the module docstring).

    ``teacher`` writes and grades a spec's scenarios; ``customer`` plays tau2's customer (the teacher
    when not given). Both can also be set later as ``task.teacher`` / ``task.customer``.
    """
    kind, _, arg = name.partition(":")
    if kind == "tau2" and arg:
        from agentkd.tasks.tau2 import Tau2Task

        return Tau2Task(arg, customer=customer or teacher)
    if kind == "bfcl" and arg:
        from agentkd.tasks.bfcl import BfclTask

        return BfclTask(arg)
    if kind == "jsonl" and arg:
        from agentkd.tasks.jsonl import JsonlTask

        return JsonlTask(arg)
    if kind == "spec" and arg:
        from agentkd.tasks.spec import SpecTask

        return SpecTask(arg, teacher=teacher)
    try:
        return ReasoningGymTask(name)
    except TaskError:
        raise
    except Exception as exc:  # reasoning-gym raises plain errors for unknown names
        raise TaskError(
            f"unknown task {name!r}: {exc}",
            hint="try gsm_symbolic or another reasoning-gym name, tau2:retail, bfcl:simple, bfcl:multiple, "
            "spec:<path.yaml> or jsonl:<path.jsonl>",
        ) from exc
