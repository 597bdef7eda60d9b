"""Voting on the batched engine: the k episodes of a vote run as one batch and give the vote they give one by one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentkd.student import Student
from agentkd.tools import ToolBox, calculator

pytestmark = pytest.mark.model


class _OneByOne:
    """The student's model without ``batched``: the vote's episodes run one after another, as before #16."""

    def __init__(self, llm: Any) -> None:
        self._llm = llm

    def __getattr__(self, name: str) -> Any:
        if name == "batched":
            raise AttributeError(name)
        return getattr(self._llm, name)


def test_a_vote_drawn_as_one_batch_is_the_vote_drawn_one_by_one(smollm_path: Path) -> None:
    student = Student(smollm_path, n_ctx=2048, n_threads=1, samples=4, sample_temperature=0.9, max_steps=2,
                      max_tokens=40, tools=ToolBox([calculator]))  # fmt: skip
    question = "A box holds 12 eggs. How many eggs are in 3 boxes? End with 'Answer: <number>'."
    batched = student.ask(question)
    engine = student.llm.batched(4).engine
    assert engine.stats.mean_width > 1.5  # the episodes really shared steps
    local = student.llm
    student.llm = _OneByOne(local)
    try:
        local.reset()
        one_by_one = student.ask(question)
    finally:
        student.llm = local
    assert batched.votes == one_by_one.votes  # every candidate's answer, the tally and the winner
    assert batched.text == one_by_one.text
    assert batched.completion_tokens == one_by_one.completion_tokens
    assert len(batched.votes[0]["answers"]) == 4
