"""Task sources: where scenarios come from, and how an answer is checked against ground truth."""

from __future__ import annotations

from agentkd.errors import TaskError
from agentkd.tasks.base import TaskSource, extract_number, numeric_match
from agentkd.tasks.reasoning_gym import ReasoningGymTask

__all__ = ["ReasoningGymTask", "TaskSource", "extract_number", "get_task", "numeric_match"]


def get_task(name: str) -> TaskSource:
    """A task source by name: ``gsm_symbolic`` or any reasoning-gym dataset name."""
    try:
        return ReasoningGymTask(name)
    except TaskError:
        raise
    except Exception as exc:  # reasoning-gym raises plain errors for unknown names
        raise TaskError(
            f"unknown task {name!r}: {exc}", hint="try gsm_symbolic, or a reasoning-gym dataset name"
        ) from exc
