"""The judge: ground truth first (the task's own check); a teacher rubric only where none exists."""

from __future__ import annotations

import re
from typing import Protocol

from agentkd.schema import Attempt, Scenario, StrategyDraft, Verdict
from agentkd.tasks import TaskSource, extract_number


class RubricGrader(Protocol):
    def grade(self, scenario: Scenario, attempt: Attempt) -> Verdict: ...


def judge(task: TaskSource, scenario: Scenario, attempt: Attempt, rubric: RubricGrader | None = None) -> Verdict:
    """Grade one attempt: exact/numeric match when the scenario has an answer, else the rubric."""
    if scenario.answer is not None:
        return task.check(scenario, attempt.answer)
    if rubric is None:
        return Verdict(correct=False, score=0.0, reasons="no ground truth and no rubric grader", method="rubric")
    return rubric.grade(scenario, attempt)


_NUM = re.compile(r"\d+(?:\.\d+)?")


def leaks_answer(draft: StrategyDraft, scenario: Scenario) -> str | None:
    """Why ``draft`` leaks this scenario's answer or specifics, or None when it is general."""
    text = f"{draft.title}\n{draft.trigger}\n{draft.body}\n{' '.join(draft.tool_hints)}"
    answer = extract_number(scenario.answer or "")
    if answer is not None and any(float(n) == answer for n in _NUM.findall(text)):
        return f"it contains the answer {scenario.answer}"
    question_numbers = {n for n in _NUM.findall(scenario.question) if len(n) > 1}
    copied = question_numbers & set(_NUM.findall(text))
    if len(copied) >= 2:
        return f"it copies numbers from the problem ({', '.join(sorted(copied))})"
    return None
