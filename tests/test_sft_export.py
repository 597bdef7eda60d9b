"""SFT export with real parts: gsm_symbolic scenarios, the sandboxed python tool, the judge, SmolLM2's own chat
template and tokenizer, LangGraph checkpoints. Only the teacher is scripted, so its tool calls are exact."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentkd.config import get_settings
from agentkd.errors import TeacherTimeout
from agentkd.schema import Scenario, Strategy
from agentkd.sft import CHECKS, FORMATS, ExportConfig, TrajectoryCollector, write_dataset
from agentkd.sft.card import CardInfo
from agentkd.sft.sources import REDRAW_STRIDE, run_scenarios
from agentkd.sft.trajectories import Dropped, Trajectory
from agentkd.student.student import Student
from agentkd.tasks import get_task
from agentkd.testing import fake_teacher
from agentkd.tools import ToolBox, calculator, python_tool
from tests.test_sft_formats import fixed_trajectory

pytestmark = pytest.mark.model

STRATEGY = Strategy(id="s-0001", title="Compute word problems in code", trigger="several quantities combined",
                    body="1. Name each quantity as a variable. 2. Print the final value.", tasks=["gsm_symbolic"],
                    status="admitted")


@dataclass
class _Hit:
    strategy: Strategy
    score: float


class OneStrategy:
    """A library stand-in that always finds the same entry (the Chroma library is tested on its own)."""

    def search(self, query: str, *, k: int = 3, task: str | None = None) -> list[_Hit]:
        return [_Hit(STRATEGY, 0.8)]


def call(name: str, **arguments: Any) -> dict[str, Any]:
    """A full teacher response that calls one tool."""
    fn = {"name": name, "arguments": json.dumps(arguments)}
    message = {"role": "assistant", "content": None, "tool_calls": [{"id": "x", "type": "function", "function": fn}]}
    return {"choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}], "usage": {}}


@pytest.fixture(scope="module")
def task() -> Any:
    return get_task("gsm_symbolic")


@pytest.fixture(scope="module")
def scenarios(task: Any) -> list[Scenario]:
    return task.scenarios("train", 3, seed=11)


@pytest.fixture(scope="module")
def student(smollm_path: Path) -> Student:
    return Student(smollm_path, tools=ToolBox([python_tool(), calculator]), retriever=OneStrategy(), n_ctx=2048)


def test_the_teacher_acts_with_the_real_tools_and_only_verified_trajectories_are_kept(
    task: Any, scenarios: list[Scenario], student: Student
) -> None:
    a, b, c = (sc.answer for sc in scenarios)
    teacher = fake_teacher([
        call("python", code=f"print({a})"), f"The program printed {a}.\nAnswer: {a}",
        call("python", code=f"print({b})"), "Answer: 1",  # the teacher gets it wrong: dropped
        call("calculator", expression="2 +* 2"), call("python", code=f"print({c})"), f"Answer: {c}",
    ])
    results = TrajectoryCollector(teacher, student, task).collect_all(scenarios)
    first, wrong, recovered = results
    assert isinstance(first, Trajectory) and isinstance(recovered, Trajectory)
    assert isinstance(wrong, Dropped) and wrong.stage == "judge" and wrong.reason == "wrong answer"
    assert wrong.detail == f"expected {b}, got 1"
    # what the student would see: its head with the retrieved strategy, and its first thought
    assert [m["role"] for m in first.head] == ["system", "system"] and "[s-0001]" in first.head[1]["content"]
    assert first.strategy_ids == ["s-0001"] and first.thought == "Plan: Name each quantity as a variable.\n"
    assert [m["role"] for m in first.free_head] == ["system"]
    # tool results come from the real tools, under the ids the record uses
    tool_turns = [m for m in recovered.messages if m["role"] == "tool"]
    assert tool_turns[0]["tool_call_id"] == "call_1" and tool_turns[0]["content"].startswith("Error:")
    assert tool_turns[1]["content"] == str(c) and recovered.tool_errors == 1 and recovered.steps == 3
    sent = teacher.transport.calls[0]  # type: ignore[attr-defined]
    assert [t["function"]["name"] for t in sent["tools"]] == ["python", "calculator"]
    assert sent["tool_choice"] == "required"  # the first turn acts


def test_a_repeated_call_is_not_run_again_and_the_teacher_must_answer(
    task: Any, scenarios: list[Scenario], student: Student
) -> None:
    answer = scenarios[0].answer
    teacher = fake_teacher([call("python", code=f"print({answer})"), call("python", code=f"print({answer})"),
                            f"Answer: {answer}"])
    traj = TrajectoryCollector(teacher, student, task).collect(scenarios[0])
    assert isinstance(traj, Trajectory) and len(traj.tool_calls) == 1 and traj.steps == 2 and traj.nudged
    asked = teacher.transport.calls[2]  # type: ignore[attr-defined]
    assert asked["tool_choice"] == "none" and "give your final answer now" in asked["messages"][-1]["content"]
    assert [m["role"] for m in traj.turns] == ["user", "assistant", "tool", "assistant"]  # the request is not kept


def test_step_limit_and_teacher_failures_are_dropped_with_their_reason(
    task: Any, scenarios: list[Scenario], student: Student
) -> None:
    looping = fake_teacher([call("python", code="print(1)")], repeat_last=True)
    dropped = TrajectoryCollector(looping, student, task, max_steps=2).collect(scenarios[0])
    assert isinstance(dropped, Dropped) and dropped.stage == "steps"
    assert looping.transport.calls[-1]["tool_choice"] == "none"  # type: ignore[attr-defined]
    down = fake_teacher([TeacherTimeout("slow")], repeat_last=True, retries=1)
    failed = TrajectoryCollector(down, student, task).collect(scenarios[0])
    assert isinstance(failed, Dropped) and failed.stage == "teacher" and "failed 2 times" in failed.detail


def _info() -> CardInfo:
    return CardInfo(task="gsm_symbolic", teacher="local/qwen2.5-coder-1.5b", student="smollm2-135m",
                    source="3 test scenarios")


def _broken_arguments() -> Trajectory:
    traj = fixed_trajectory()
    traj.scenario = traj.scenario.model_copy(update={"id": "gsm_symbolic-train-0002", "category": "template-009"})
    traj.messages[3]["tool_calls"][0]["function"]["arguments"] = "print(17 * 23)"  # not JSON
    return traj


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_only_checked_records_are_written_and_every_drop_says_why(fmt: str, tmp_path: Path, student: Student) -> None:
    trajectories = [fixed_trajectory(), _broken_arguments(), fixed_trajectory(with_strategies=False)]
    config = ExportConfig(format=fmt)
    report = write_dataset(tmp_path, trajectories, [], config, student.llm, _info(), collected=3)
    assert len(report.written) == 1
    assert {(d.stage, d.scenario_id) for d in report.dropped} == {
        ("format", "gsm_symbolic-train-0002"), ("dedupe", "gsm_symbolic-train-0001")}
    lines = [json.loads(x) for s in ("train", "validation") for x in (tmp_path / f"{s}.jsonl").read_text().splitlines()]
    assert len(lines) == 1 and CHECKS[fmt](lines[0]) == []
    assert "[s-1] Price totals" in json.dumps(lines[0])  # strategy-conditioned by default
    meta = [json.loads(x) for x in (tmp_path / "metadata.jsonl").read_text().splitlines()]
    assert meta[0]["scenario_id"] == "gsm_symbolic-train-0001" and meta[0]["strategy_ids"] == ["s-1"]
    assert 100 < meta[0]["tokens"] == report.written[0].tokens < 2048
    assert not list(tmp_path.glob(".*.tmp"))
    card = (tmp_path / "README.md").read_text()
    reason = "breaks a openai rule" if fmt == "openai" else f"cannot be written as {fmt}"
    assert "license: mit" in card and "GSM8K" in card and f"| format | {reason} | 1 |" in card
    assert "| dedupe | near-duplicate of a kept record | 1 |" in card


class ForgetfulTemplate:
    """A chat template that silently loses tool results: a real GGUF cannot be made to do this on demand."""

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
        return "\n".join(str(m.get("content") or "") for m in messages if m["role"] != "tool")

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def test_too_long_or_mangled_records_are_never_written(tmp_path: Path, student: Student) -> None:
    (tmp_path / "train.jsonl").write_text('{"stale": "record from an earlier export"}\n')
    report = write_dataset(tmp_path, [fixed_trajectory()], [], ExportConfig(max_tokens=60), student.llm, _info(),
                           collected=1)
    assert [(d.stage, d.detail.endswith("tokens > limit 60")) for d in report.dropped] == [("length", True)]
    assert (tmp_path / "train.jsonl").read_text() == ""  # replaced whole, with nothing half-written
    report = write_dataset(tmp_path, [fixed_trajectory()], [], ExportConfig(), ForgetfulTemplate(), _info(),
                           collected=1)
    assert [(d.stage, d.detail) for d in report.dropped] == [
        ("template", "the chat template dropped the result of python")]


def test_a_runs_scenarios_come_from_its_checkpoints_else_are_redrawn(task: Any) -> None:
    from langgraph.graph import START, StateGraph

    from agentkd.distill.graph import sqlite_checkpointer
    from agentkd.distill.nodes import BuildState

    settings = get_settings()
    run_id, config = "20260101-000000-001", {"iterations": 2, "batch_size": 2, "seed": 5}
    drawn = [task.scenarios("train", 2, seed=5 + i * REDRAW_STRIDE) for i in range(2)]
    graph = StateGraph(BuildState)
    graph.add_node("first", lambda state: {"scenarios": drawn[0]})
    graph.add_node("second", lambda state: {"scenarios": drawn[1][:1]})  # a state-dependent draw
    graph.add_edge(START, "first")
    graph.add_edge("first", "second")
    with sqlite_checkpointer(settings.runs_dir / f"{run_id}.sqlite") as saver:
        graph.compile(checkpointer=saver).invoke(BuildState(), {"configurable": {"thread_id": run_id}})
    spec = {"task": "gsm_symbolic", "config": config}
    source = run_scenarios(settings, run_id, spec, task)
    assert source.origin == "checkpoint"
    assert [sc.id for sc in source.scenarios] == [sc.id for sc in [*drawn[0], drawn[1][0]]]
    (settings.runs_dir / f"{run_id}.sqlite").unlink()
    redrawn = run_scenarios(settings, run_id, spec, task)
    assert redrawn.origin == "re-drawn" and "checkpoint database is missing" in redrawn.description
    assert [sc.id for sc in redrawn.scenarios] == [sc.id for sc in [*drawn[0], *drawn[1]]]
