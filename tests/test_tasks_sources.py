"""Task names, the optional capabilities and their fallbacks, reasoning-gym categories, and JSONL files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from agentkd.errors import TaskError
from agentkd.schema import Attempt, Scenario, Strategy, Verdict
from agentkd.tasks import (
    AttemptGrader,
    EpisodeTask,
    ReasoningGymTask,
    ToolTask,
    as_task,
    get_task,
    grade_attempt,
    in_train_split,
    numeric_match,
    run_attempt,
)


class RecordingStudent:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []

    def attempt(self, scenario: Scenario, *, instructions: str = "",
                strategies: Sequence[Strategy] | None = None) -> Attempt:
        self.calls.append((scenario.id, instructions, strategies))
        return Attempt(scenario_id=scenario.id, answer="Answer: 7")


def test_plain_sources_fall_back_to_the_students_loop_and_check() -> None:
    task = ReasoningGymTask("gsm_symbolic")
    assert not isinstance(task, EpisodeTask | AttemptGrader | ToolTask)
    assert not any(task.has_own(m) for m in ("tools", "run", "grade")) and task.has_own("scenarios_for")
    sc = Scenario(id="s", task=task.name, question="3 + 4?", answer="7")
    student = RecordingStudent()
    attempt = run_attempt(task, student, sc, strategies=[])
    assert student.calls == [("s", task.instructions, [])]
    assert grade_attempt(task, sc, attempt).correct


def test_sources_with_their_own_episode_and_grade_are_used() -> None:
    class Own:
        name, instructions = "own", "be brief"

        def scenarios(self, split: str, n: int, seed: int) -> list[Scenario]:
            return []

        def check(self, scenario: Scenario, answer: str) -> Verdict:
            raise AssertionError("grade() must be preferred")

        def run(self, student: Any, scenario: Scenario, *, instructions: str = "",
                strategies: Sequence[Strategy] | None = None) -> Attempt:
            return Attempt(scenario_id=scenario.id, answer=f"ran with {instructions!r}")

        def grade(self, scenario: Scenario, attempt: Attempt) -> Verdict:
            return Verdict(correct=True, score=0.25, reasons=attempt.answer)

    task, sc = Own(), Scenario(id="s", task="own", question="q")
    assert isinstance(task, EpisodeTask) and isinstance(task, AttemptGrader)  # the old checks still answer
    assert as_task(task).has_own("run") and as_task(task).has_own("grade") and not as_task(task).has_own("tools")
    verdict = grade_attempt(task, sc, run_attempt(task, RecordingStudent(), sc))
    assert verdict.reasons == "ran with 'be brief'" and verdict.score == 0.25


def test_gsm_symbolic_categories_are_its_templates_and_a_quarter_never_reaches_a_build() -> None:
    import reasoning_gym

    task = get_task("gsm_symbolic")
    scenarios = task.scenarios("train", 12, seed=3)
    data = reasoning_gym.create_dataset("gsm_symbolic", size=12 * 8, seed=3)
    template = {data[i]["question"]: f"template-{t:03d}" for i, t in enumerate(data.task_indices)}  # type: ignore[attr-defined]
    assert [s.category for s in scenarios] == [template[s.question] for s in scenarios]
    assert len({s.category for s in scenarios}) > 1  # not the item's position, which every dataset shares
    assert get_task("basic_arithmetic").scenarios("train", 2, seed=0)[0].category == "basic_arithmetic"
    # the template split: builds (train, siblings, targeted draws) never see the held-back templates
    unseen = set(task.categories("heldout-unseen"))
    assert len(unseen) == len(task.templates) // 4 and not unseen & set(task.categories("train"))
    assert not unseen & {s.category for s in task.scenarios("train", 200, seed=5)}
    assert not unseen & {s.category for s in task.scenarios("heldout", 200, seed=5)}
    assert {s.category for s in task.scenarios("heldout-unseen", 60, seed=5)} <= unseen
    assert task.scenarios_for(sorted(unseen)[0], 3, seed=1) == []
    sibling = task.siblings(scenarios[0], 3, seed=9)
    assert len(sibling) == 3 and {s.category for s in sibling} == {scenarios[0].category}
    with pytest.raises(TaskError, match="heldout-unseen"):
        get_task("basic_arithmetic").scenarios("heldout-unseen", 2, seed=0)


def test_every_name_resolves_or_says_what_to_use() -> None:
    assert get_task("tau2:retail").name == "tau2:retail"
    assert get_task("bfcl:multiple").name == "bfcl:multiple"
    assert get_task("spec:examples/support_domain.yaml").name == "spec:bike_rental"
    with pytest.raises(TaskError) as err:
        get_task("no_such_task")
    assert "tau2:retail" in (err.value.hint or "") and "jsonl:" in (err.value.hint or "")


def test_a_jsonl_file_is_a_benchmark(tmp_path: Path) -> None:
    path = tmp_path / "capitals.jsonl"
    rows = [{"question": f"Capital number {i}?", "answer": "Paris" if i % 2 else str(i), "category": "geo"}
            for i in range(40)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    task = get_task(f"jsonl:{path}")
    train, held = task.scenarios("train", 100, seed=0), task.scenarios("heldout", 100, seed=0)
    assert len(train) + len(held) == 40 and not {s.id for s in train} & {s.id for s in held}
    assert all(in_train_split(s.metadata["item_id"]) for s in train) and train[0].category == "geo"
    text = next(s for s in train + held if s.answer == "Paris")
    assert task.check(text, "It is paris.\nAnswer: **Paris**.").correct
    assert not task.check(text, "Answer: Lyon").correct
    path.write_text('{"question": "no answer"}\n')
    with pytest.raises(TaskError, match="line 1"):
        get_task(f"jsonl:{path}").scenarios("train", 1, seed=0)


def test_numeric_answers_still_match_numerically() -> None:
    assert numeric_match("1,200", "so the total is 1200.0").correct
    assert not numeric_match("12", "Answer: 13").correct


def test_each_source_tells_the_teacher_how_its_student_works() -> None:
    """The strategy prompt's 'how the student works' paragraph: word problems by default, the source's own else."""
    from agentkd.tasks.base import DEFAULT_STRATEGY_FOCUS, strategy_focus
    from agentkd.tasks.bfcl import BfclTask
    from agentkd.tasks.spec import SpecTask

    assert strategy_focus(ReasoningGymTask("gsm_symbolic")) == DEFAULT_STRATEGY_FOCUS
    bfcl = strategy_focus(BfclTask("multiple"))
    assert "wrong function" in bfcl and "no Python tool" in bfcl
    spec = SpecTask(Path(__file__).parent.parent / "examples" / "support_domain.yaml")
    focus = strategy_focus(spec)
    assert spec.spec.description.strip()[:40] in focus and spec.spec.tools[0].name in focus
