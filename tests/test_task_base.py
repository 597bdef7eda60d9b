"""The task base class: its defaults, the shipped sources inherit it, and a source that does not still loads
and works through the adapter (``as_task``), with the defaults filled in and its own members used."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from agentkd.distill.items import category_items
from agentkd.errors import TaskError
from agentkd.parts import attach_teacher, load_task, student_tools
from agentkd.schema import Attempt, Scenario, Strategy, Verdict
from agentkd.tasks import (
    AttemptGrader,
    EpisodeTask,
    ReasoningGymTask,
    Task,
    TaskAdapter,
    TaskSource,
    ToolTask,
    as_task,
    grade_attempt,
    run_attempt,
)
from agentkd.tasks.base import DEFAULT_STRATEGY_FOCUS, require_validation, strategy_focus
from agentkd.tasks.bfcl import BfclTask
from agentkd.tasks.jsonl import JsonlTask
from agentkd.tasks.spec import SpecTask
from agentkd.tasks.tau2 import Tau2Task
from agentkd.tools import ToolBox, code_tools


def scenario(i: int, category: str = "a") -> Scenario:
    return Scenario(id=f"q{i}", task="plain", question=f"{i} + 1?", answer=str(i + 1), category=category)


class RecordingStudent:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []

    def attempt(self, sc: Scenario, *, instructions: str = "", strategies: Sequence[Strategy] | None = None
                ) -> Attempt:
        self.calls.append((sc.id, instructions, strategies))
        return Attempt(scenario_id=sc.id, answer=f"Answer: {sc.answer}")


class Minimal(Task):
    """Only what a subclass must write."""

    def scenarios(self, split: str, n: int, seed: int) -> list[Scenario]:  # type: ignore[override]
        return [scenario(i, "a" if i % 2 else "b") for i in range(seed, seed + n)]

    def check(self, sc: Scenario, answer: str) -> Verdict:
        ok = answer.endswith(sc.answer or "?")
        return Verdict(correct=ok, score=float(ok), reasons="checked")


class PlainSource:
    """A user's adapter written against the old protocol: it does not inherit ``Task``."""

    name = "plain"
    instructions = "End with 'Answer: <number>'."
    extra = "read through"

    def scenarios(self, split: str, n: int, seed: int) -> list[Scenario]:
        return [scenario(i) for i in range(n)]

    def check(self, sc: Scenario, answer: str) -> Verdict:
        ok = answer.endswith(sc.answer or "?")
        return Verdict(correct=ok, score=float(ok), reasons="plain check")


class RichSource(PlainSource):
    """Also not a ``Task``, with every optional member of its own."""

    strategy_focus = "The student calls one tool."
    n_ctx = 8192
    validation_split = True
    teacher: Any = None
    customer_view = "roles"

    def tools(self) -> ToolBox:
        return ToolBox([])

    def run(self, student: Any, sc: Scenario, *, instructions: str = "",
            strategies: Sequence[Strategy] | None = None) -> Attempt:
        return Attempt(scenario_id=sc.id, answer=f"ran with {instructions!r}")

    def grade(self, sc: Scenario, attempt: Attempt) -> Verdict:
        return Verdict(correct=True, score=0.5, reasons=attempt.answer)

    def siblings(self, sc: Scenario, k: int, seed: int) -> list[Scenario]:
        return [scenario(100 + i, sc.category) for i in range(k)]

    def scenarios_for(self, category: str, n: int, seed: int, difficulty: int = 1) -> list[Scenario]:
        return [scenario(200 + i, category) for i in range(n)]

    def categories(self, split: str = "train") -> list[str]:
        return ["a", "b"]


def test_every_shipped_source_inherits_the_base_class() -> None:
    assert TaskSource is Task
    for cls in (ReasoningGymTask, JsonlTask, BfclTask, Tau2Task, SpecTask):
        assert issubclass(cls, Task), cls
    gsm = ReasoningGymTask("gsm_symbolic")
    assert as_task(gsm) is gsm and load_task("gsm_symbolic").__class__ is ReasoningGymTask
    assert Tau2Task.model_roles == ("customer",) and SpecTask.model_roles == ("teacher",) and Tau2Task.n_ctx == 16384


def test_the_base_class_defaults_fit_a_single_turn_source() -> None:
    with pytest.raises(TypeError):
        Task()  # type: ignore[abstract]  # scenarios and check are required
    task = Minimal()
    assert task.name == "Minimal" and task.instructions == "" and task.strategy_focus == DEFAULT_STRATEGY_FOCUS
    assert task.n_ctx is None and task.validation_split is False and task.model_roles == ()
    assert task.teacher is None and task.customer is None and task.customer_view is None
    sc = task.scenarios("train", 1, seed=3)[0]
    assert task.tools() is None and student_tools(task).names == code_tools().names
    assert task.siblings(sc, 2, seed=0) is None and task.scenarios_for("a", 2, seed=0) is None
    assert task.categories() == [] and task.categories("heldout") == []
    assert not any(task.has_own(m) for m in ("tools", "run", "grade", "siblings", "scenarios_for", "categories"))
    assert not isinstance(task, EpisodeTask | AttemptGrader | ToolTask)
    student = RecordingStudent()
    attempt = task.run(student, sc, instructions="be brief", strategies=[])  # type: ignore[arg-type]
    assert student.calls == [(sc.id, "be brief", [])]
    assert task.grade(sc, attempt).reasons == "checked" and task.grade(sc, attempt).correct
    assert run_attempt(task, student, sc).answer == attempt.answer and student.calls[-1] == (sc.id, "", None)
    assert grade_attempt(task, sc, attempt).correct
    with pytest.raises(TaskError, match="Minimal has no validation split"):
        require_validation(task)


def test_a_subclass_overrides_what_it_has() -> None:
    class Own(Minimal):
        name, strategy_focus, validation_split = "own", "It calls tools.", True

        def tools(self) -> ToolBox:
            return ToolBox([])

        def siblings(self, sc: Scenario, k: int, seed: int) -> list[Scenario]:
            return [scenario(50, sc.category)]

    task = Own()
    assert task.has_own("tools") and task.has_own("siblings") and not task.has_own("run")
    assert isinstance(task, ToolTask) and not isinstance(task, EpisodeTask)
    assert student_tools(task).names == [] and strategy_focus(task) == "It calls tools."
    require_validation(task)
    ctx: Any = SimpleNamespace(task=task)
    assert [s.id for s in category_items(ctx, "a", 3, seed=0, source=scenario(1))] == ["q50"]  # its siblings
    assert [s.category for s in category_items(ctx, "b", 3, seed=0)] == ["b", "b", "b"]  # its train split


def test_a_source_that_does_not_inherit_loads_through_the_adapter() -> None:
    task = load_task("tests.test_task_base:PlainSource")
    assert isinstance(task, Task) and isinstance(task, TaskAdapter) and type(task.source).__name__ == "PlainSource"
    assert as_task(task) is task and task.name == "plain" and task.instructions.startswith("End with")
    assert task.extra == "read through"  # its other attributes read through
    # the defaults of the base class, for what the source lacks
    assert task.strategy_focus == DEFAULT_STRATEGY_FOCUS and task.n_ctx is None and not task.validation_split
    assert task.model_roles == () and task.teacher is None and task.customer_view is None
    assert task.tools() is None and student_tools(task).names == code_tools().names
    sc = task.scenarios("train", 2, seed=0)[0]
    assert task.siblings(sc, 2, seed=0) is None and task.scenarios_for("a", 2, seed=0) is None
    assert task.categories() == [] and not any(task.has_own(m) for m in ("run", "grade", "tools", "siblings"))
    student = RecordingStudent()
    attempt = task.run(student, sc, instructions=task.instructions)  # type: ignore[arg-type]
    assert student.calls == [(sc.id, task.instructions, None)]
    assert task.grade(sc, attempt).reasons == "plain check" and grade_attempt(PlainSource(), sc, attempt).correct
    with pytest.raises(TaskError, match="plain has no validation split"):
        require_validation(PlainSource())
    assert strategy_focus(PlainSource()) == DEFAULT_STRATEGY_FOCUS
    ctx: Any = SimpleNamespace(task=task)
    assert [s.id for s in category_items(ctx, "a", 2, seed=0, source=sc)] == ["q1", "q2"]  # its train split
    # a name the source lacks is its class's
    anonymous = as_task(type("Anon", (), {"scenarios": PlainSource.scenarios, "check": PlainSource.check})())
    assert anonymous.name == "Anon" and anonymous.instructions == ""


def test_the_adapter_uses_the_sources_own_members_and_writes_through() -> None:
    source = RichSource()
    task = as_task(source)
    assert isinstance(task, TaskAdapter) and task.strategy_focus == "The student calls one tool."
    assert task.n_ctx == 8192 and task.validation_split and task.categories() == ["a", "b"]
    assert isinstance(source, EpisodeTask | AttemptGrader | ToolTask)  # the old checks answer for raw sources too
    assert task.tools() is not None and student_tools(task).names == []
    sc = task.scenarios("train", 1, seed=0)[0]
    assert [s.id for s in task.siblings(sc, 2, seed=0) or []] == ["q100", "q101"]
    assert [s.id for s in task.scenarios_for("b", 1, seed=0) or []] == ["q200"]
    attempt = run_attempt(task, RecordingStudent(), sc)
    assert attempt.answer == "ran with \"End with 'Answer: <number>'.\""
    assert task.grade(sc, attempt).score == 0.5  # its own grade, not check
    # a model role is an attribute the source has; attaching the teacher sets it on the source
    assert task.model_roles == ("teacher",)
    teacher = object()
    attach_teacher(task, teacher, "local/qwen")
    assert source.teacher is teacher and task.teacher is teacher and source.customer_view == "transcript"
    task.name = "renamed"
    assert source.name == "renamed"
    ctx: Any = SimpleNamespace(task=task)
    assert [s.id for s in category_items(ctx, "a", 2, seed=0, source=sc)] == ["q100", "q101"]  # siblings first
    assert [s.id for s in category_items(ctx, "b", 1, seed=0)] == ["q200"]  # then the draw by category


def test_attach_teacher_fills_only_the_roles_a_task_has() -> None:
    teacher = object()
    plain = Minimal()
    attach_teacher(plain, teacher, "local/qwen")
    assert plain.teacher is None and plain.customer is None and plain.customer_view is None

    class WithCustomer(Minimal):
        model_roles = ("customer",)
        customer_view = "roles"

    task = WithCustomer()
    attach_teacher(task, teacher, "openai/gpt")
    assert task.customer is teacher and task.teacher is None and task.customer_view == "roles"
    other = object()
    attach_teacher(task, other, "local/qwen")  # a customer already set stays
    assert task.customer is teacher and task.customer_view == "transcript"
