"""Domain specs: the shipped example loads, the teacher's scenarios and rubric verdicts parse, a real turn runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentkd.errors import TaskError
from agentkd.schema import Attempt, Scenario, ToolCallRecord
from agentkd.tasks import get_task, grade_attempt, run_attempt
from agentkd.tasks.spec import DomainSpec, SpecTask
from agentkd.testing import fake_teacher

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "support_domain.yaml"


def _drafts(*categories: str) -> str:
    return json.dumps({"scenarios": [
        {"request": f"Hello, I have a question about {c} for next Saturday, 2025-07-12.", "category": c,
         "difficulty": 2, "expected": "Calls check_availability(date=2025-07-12, bike_type=city), then answers."}
        for c in categories]})


VERDICT = json.dumps({"reasons": "Checked availability, but quoted a price without quote_price.", "score": 0.5,
                      "passed": False})


def test_the_shipped_spec_loads_and_its_tools_work() -> None:
    spec = DomainSpec.load(EXAMPLE)
    assert spec.name == "bike_rental" and 3 <= len(spec.tools) <= 5 and spec.rubric and spec.examples
    box = spec.toolbox()
    assert box.run("quote_price", {"bike_type": "e-bike", "hours": 3}).output == "45"
    assert box.run("check_availability", {"date": "2025-08-01", "bike_type": "e-bike"}).output == "0"
    booked = box.run("create_booking", {"name": "Ann Lee", "date": "2025-07-12", "bike_type": "city", "hours": 2})
    assert booked.output.startswith("Booked: BK-2025-07-12-city for Ann Lee")
    assert "50%" in box.run("cancel_booking", {"booking_id": "BK-1", "hours_before_start": 10}).output
    refused = box.run("quote_price", {"bike_type": "tandem", "hours": 1})
    assert refused.error and "must be one of" in refused.output  # the model's mistake comes back as a message


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("name: x\ndescription: d\n", "rubric"),
        ("name: x\ndescription: d\nrubric: r\ntools:\n  - {name: t, description: d, result: a, expression: '1'}\n",
         "exactly one of"),
        ("name: x\ndescription: d\nrubric: r\ntools:\n  - {name: t, description: d, expression: '1 +'}\n",
         "tool cannot be built"),
        ("name: [x\n", "not valid YAML"),
    ],
)
def test_a_broken_spec_names_the_file_and_the_problem(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(TaskError, match=match) as err:
        DomainSpec.load(path)
    assert "broken.yaml" in str(err.value) and err.value.hint


def test_the_teacher_writes_scenarios_from_the_spec() -> None:
    teacher = fake_teacher(["not json at all", _drafts("refunds", "Pricing", "weather")])
    task = get_task(f"spec:{EXAMPLE}", teacher=teacher)
    scenarios = task.scenarios("train", 3, seed=4)
    assert [s.category for s in scenarios] == ["refunds", "pricing", "bookings"]  # unknown -> the first category
    assert all(s.answer is None and s.task == "spec:bike_rental" and s.metadata["expected"] for s in scenarios)
    prompt = teacher.transport.calls[0]["messages"][-1]["content"]  # type: ignore[attr-defined]
    assert "Pedal & Co." in prompt and "cancel_booking" in prompt and "Write 3 new customer requests" in prompt
    assert "refunds, opening_hours" in prompt and '"scenarios"' in prompt  # categories, and the JSON schema
    assert len(teacher.transport.calls) == 2  # type: ignore[attr-defined]  # the invalid reply was re-asked
    assert task.scenarios("train", 3, seed=4) == scenarios and len(teacher.transport.calls) == 2  # type: ignore[attr-defined]


def test_held_out_scenarios_come_from_another_seed_and_siblings_keep_the_category() -> None:
    teacher = fake_teacher([_drafts("pricing"), _drafts("refunds"), _drafts("refunds", "refunds")])
    task = SpecTask(EXAMPLE, teacher=teacher)
    train, held = task.scenarios("train", 1, seed=1), task.scenarios("heldout", 1, seed=1)
    assert train[0].id != held[0].id and held[0].metadata["seed"] != train[0].metadata["seed"]
    siblings = task.siblings(held[0], 2, seed=9)
    assert [s.category for s in siblings] == ["refunds", "refunds"]
    assert 'all in the category "refunds"' in teacher.transport.calls[-1]["messages"][-1]["content"]  # type: ignore[attr-defined]


def test_the_rubric_verdict_parses_and_sees_the_tool_calls() -> None:
    teacher = fake_teacher([VERDICT])
    task = SpecTask(EXAMPLE, teacher=teacher)
    sc = Scenario(id="s1", task=task.name, question="Is an e-bike free on 2025-07-12?", category="bookings",
                  metadata={"expected": "check_availability then answer"})
    attempt = Attempt(scenario_id="s1", answer="Yes, 2 are free.", tool_calls=[ToolCallRecord(
        name="check_availability", arguments={"date": "2025-07-12", "bike_type": "e-bike"}, result="2")])
    verdict = grade_attempt(task, sc, attempt)
    assert verdict.method == "rubric" and verdict.score == 0.5 and not verdict.correct
    assert "quote_price" in verdict.reasons
    prompt = teacher.transport.calls[0]["messages"][-1]["content"]  # type: ignore[attr-defined]
    assert 'check_availability({"date": "2025-07-12", "bike_type": "e-bike"}) -> 2' in prompt
    assert "Yes, 2 are free." in prompt and "Pass only if all of these hold" in prompt


def test_without_a_teacher_the_error_says_how_to_fix_it() -> None:
    with pytest.raises(TaskError, match="needs a teacher") as err:
        SpecTask(EXAMPLE).scenarios("train", 1, seed=0)
    assert "teacher=" in (err.value.hint or "")


@pytest.mark.model
def test_a_real_turn_with_the_spec_tools(smollm_path: Path) -> None:
    from agentkd.student.student import Student

    teacher = fake_teacher([_drafts("pricing"), VERDICT])
    task = SpecTask(EXAMPLE, teacher=teacher, max_steps=2)
    student = Student(smollm_path, n_ctx=2048, max_tokens=24)
    sc = task.scenarios("train", 1, seed=0)[0]
    attempt = run_attempt(task, student, sc)
    assert attempt.transcript[0]["role"] == "system" and "Pedal & Co." in attempt.transcript[0]["content"]
    assert attempt.transcript[1] == {"role": "user", "content": sc.question}
    assert attempt.answer or attempt.tool_calls
    assert all(c.name in task.tools().names for c in attempt.tool_calls)
    verdict = grade_attempt(task, sc, attempt)
    assert verdict.method == "rubric" and verdict.reasons
