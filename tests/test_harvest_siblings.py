"""Harvesting a worked example of the failure's kind: when the teacher's programs for the failure are wrong, a
sibling (same category, other numbers) it solves gives the example (no model: a scripted teacher, the real
sandbox)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from agentkd.config import get_settings
from agentkd.distill.context import BuildConfig, BuildContext
from agentkd.distill.harvest import _try, harvest_example
from agentkd.errors import ConfigError
from agentkd.schema import Scenario, Verdict, WorkedExample
from agentkd.tasks import Task
from agentkd.tasks.base import numeric_match
from agentkd.testing import fake_teacher
from agentkd.tools import ToolBox, python_tool


class Doubling(Task):
    """'Double N' problems of one template; siblings are other numbers."""

    name = "doubling"

    @staticmethod
    def problem(n: int) -> Scenario:
        return Scenario(id=f"d-{n}", task="doubling", question=f"Double {n}.", answer=str(2 * n), category="double")

    def scenarios(self, split: str, n: int, seed: int) -> list[Scenario]:
        return [self.problem(i) for i in range(1, n + 1)]

    def siblings(self, scenario: Scenario, k: int, seed: int) -> list[Scenario]:
        return [self.problem(100 + i) for i in range(k)]

    def check(self, scenario: Scenario, answer: str) -> Verdict:
        assert scenario.answer is not None
        return numeric_match(scenario.answer, answer)


def _ctx(replies: list[str], task: Task) -> BuildContext:
    teacher = fake_teacher(replies)
    student = SimpleNamespace(tools=ToolBox([python_tool()]))
    return BuildContext(teacher=teacher, student=student, library=None, task=task,  # type: ignore[arg-type]
                        config=BuildConfig(seed=1))


def test_a_sibling_the_teacher_solves_gives_the_example_and_the_failure_is_reported_as_its_own() -> None:
    wrong, sibling = "```python\nprint(3)\n```", "```python\nprint(2 * 100)\n```"
    harvest = harvest_example(_ctx([wrong, wrong, sibling], Doubling()), Doubling.problem(7), tries=4)
    assert harvest.example is not None and harvest.solved is not None and harvest.solved.id == "d-100"
    assert harvest.example.question == "Double 100." and harvest.example.answer == "200" and harvest.tries == 3
    assert harvest.example.category == "double"


def test_without_a_verified_program_the_failure_s_own_last_try_is_what_is_reported() -> None:
    mine, theirs = "```python\nprint(3)\n```", "```python\nprint(5)\n```"
    harvest = harvest_example(_ctx([mine, mine, theirs, theirs], Doubling()), Doubling.problem(7), tries=4)
    assert harvest.example is None and harvest.tries == 4
    assert "print(3)" in harvest.program and "not the expected answer" in harvest.reason, "never a sibling's program"
    alone = harvest_example(_ctx([mine, mine, "```python\nprint(14)\n```"], Doubling()), Doubling.problem(7),
                            tries=3, siblings=False)
    assert alone.example is not None and alone.solved is not None and alone.solved.id == "d-7", "sampled retries"


def test_the_number_of_tries_is_a_setting_the_build_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    assert BuildConfig.from_settings(get_settings(example_tries=4)).example_tries == 4
    monkeypatch.setenv("AGENTKD_EXAMPLE_TRIES", "6")
    assert BuildConfig.from_settings(get_settings()).example_tries == 6
    with pytest.raises(ConfigError, match="AGENTKD_EXAMPLE_TRIES"):
        get_settings(example_tries=0)


def test_a_demonstration_reaches_the_teacher_as_a_prior_exchange() -> None:
    demo = WorkedExample(question="Triple 5.", program="n = 5\nprint(3 * n)", output="15", answer="15",
                         category="triple")
    ctx = _ctx(["```python\nprint(14)\n```"], Doubling())
    found = _try(ctx, Doubling.problem(7), "python", 0.0, 1, demo=demo)
    assert isinstance(found, WorkedExample) and found.answer == "14" and found.question == "Double 7."
    sent = ctx.teacher.transport.calls[0]["messages"]  # type: ignore[union-attr]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert "Triple 5." in sent[0]["content"] and "print(3 * n)" in sent[1]["content"]
    assert "Double 7." in sent[2]["content"]
