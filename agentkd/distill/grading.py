"""The judge: ground truth first (the task's own grader or check); a task without ground truth grades itself."""

from __future__ import annotations

from agentkd.distill.leaks import leaks_answer
from agentkd.schema import Attempt, Scenario, Verdict
from agentkd.tasks import TaskSource

__all__ = ["judge", "leaks_answer"]


def judge(task: TaskSource, scenario: Scenario, attempt: Attempt) -> Verdict:
    """Grade one attempt: the task's own grader (database end state, AST match, a spec's teacher rubric) or
    exact/numeric match when the scenario has an answer; without either there is nothing to grade against."""
    if task.has_own("grade") or scenario.answer is not None:
        return task.grade(scenario, attempt)
    return Verdict(correct=False, score=0.0, reasons="no ground truth and no grader", method="rubric")
