"""The judge: ground truth first (the task's own check); a teacher rubric only where none exists."""

from __future__ import annotations

import re
from typing import Protocol

from agentkd.schema import Attempt, Scenario, StrategyDraft, Verdict
from agentkd.tasks import TaskSource, extract_number
from agentkd.tasks.base import AttemptGrader, grade_attempt


class RubricGrader(Protocol):
    def grade(self, scenario: Scenario, attempt: Attempt) -> Verdict: ...


def judge(task: TaskSource, scenario: Scenario, attempt: Attempt, rubric: RubricGrader | None = None) -> Verdict:
    """Grade one attempt: the task's own grader (database end state, AST match...) or exact/numeric match
    when the scenario has an answer; a teacher rubric only where there is no ground truth."""
    if isinstance(task, AttemptGrader) or scenario.answer is not None:
        return grade_attempt(task, scenario, attempt)
    if rubric is None:
        return Verdict(correct=False, score=0.0, reasons="no ground truth and no rubric grader", method="rubric")
    return rubric.grade(scenario, attempt)


_NUM = re.compile(r"\d+(?:\.\d+)?")


def leaks_answer(draft: StrategyDraft, scenario: Scenario) -> str | None:
    """Why ``draft`` leaks this scenario's answer or specifics, or None when it is general."""
    text = f"{draft.title}\n{draft.trigger}\n{draft.body}\n{' '.join(draft.tool_hints)}"
    answer = extract_number(scenario.answer or "")
    small = answer is not None and answer == int(answer) and abs(answer) < 10  # step numbers, "divide by 2"...
    if answer is not None and not small and any(float(n) == answer for n in _NUM.findall(text)):
        return f"it contains the answer {scenario.answer}"
    question_numbers = {n for n in _NUM.findall(scenario.question) if len(n) > 1}
    copied = question_numbers & set(_NUM.findall(text))
    if len(copied) >= 2:
        return f"it copies numbers from the problem ({', '.join(sorted(copied))})"
    return None
