"""The student's own verified runs as worked-example candidates (issue #14, harvesting)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentkd.chat import ChatResult
from agentkd.distill.context import BuildConfig, BuildContext
from agentkd.distill.harvest import student_example
from agentkd.schema import Scenario, Verdict
from agentkd.student.student import Student
from agentkd.tasks import Task
from agentkd.tasks.base import numeric_match

pytestmark = pytest.mark.model


class Product(Task):
    name = "product"
    instructions = "End with 'Answer: <number>'."

    def scenarios(self, split: str, n: int, seed: int) -> list[Scenario]:
        return [Scenario(id=f"p-{i}", task=self.name, question="What is six times seven?", answer=str(self.expected),
                         category="product") for i in range(n)]

    expected = 42

    def check(self, scenario: Scenario, answer: str) -> Verdict:
        assert scenario.answer is not None
        return numeric_match(scenario.answer, answer)


class Writes:
    """A student model that writes ``program``, then states ``answer`` (the part a test cannot get from a
    real small model on demand); tokens are counted by the real model it wraps."""

    def __init__(self, real: Any, program: str, answer: str) -> None:
        self.real, self.program, self.answer = real, program, answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def chat_stream(self, messages: list[dict[str, Any]], **_: Any) -> Iterator[str | ChatResult]:
        text = f"Answer: {self.answer}" if any(m["role"] == "assistant" for m in messages) else \
            f"```python\n{self.program}\n"
        yield text
        yield ChatResult(message={"role": "assistant", "content": text}, finish_reason="stop", prompt_tokens=10,
                         completion_tokens=5, seconds=0.0)


def _ctx(smollm_path: Path, program: str, answer: str) -> BuildContext:
    student = Student(smollm_path, n_ctx=2048, max_tokens=32, max_steps=2)
    student.llm = Writes(student.llm, program, answer)  # type: ignore[assignment]
    return BuildContext(teacher=None, student=student, library=None, task=Product(),  # type: ignore[arg-type]
                        config=BuildConfig(student_concurrency=4))


def test_a_verified_run_of_the_student_becomes_an_example_in_its_own_words(smollm_path: Path) -> None:
    ctx = _ctx(smollm_path, "print(6 * 7)", "42")
    example = student_example(ctx, Product().scenarios("train", 1, 0)[0])
    assert example is not None and example.program == "print(6 * 7)" and example.output == "42"
    assert example.answer == "42" and example.solver == str(smollm_path) and "ground truth 42" in example.verification


@pytest.mark.parametrize("program, answer, why", [
    ("print(6 * 6)", "36", "a wrong answer is no example"),
    ("print(6 * 6)", "42", "a right answer the program did not print is no example"),
    ("raise SystemExit(1)", "42", "a failed program is no example"),
])
def test_no_example_without_a_program_that_printed_the_verified_answer(smollm_path: Path, program: str,
                                                                         answer: str, why: str) -> None:
    assert student_example(_ctx(smollm_path, program, answer), Product().scenarios("train", 1, 0)[0]) is None, why
