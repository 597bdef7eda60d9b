"""Benchmarks plug in through the TaskSource protocol: a JSONL file and a class of our own, no harness change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentkd.cli.main import app
from agentkd.config import get_settings
from agentkd.errors import ConfigError
from agentkd.eval import EvalConfig, run_eval
from agentkd.parts import load_task
from agentkd.schema import Scenario, Verdict
from agentkd.student.student import Student
from agentkd.tasks.jsonl import JsonlTask
from agentkd.testing import fake_teacher

runner = CliRunner()


def sums(path: Path) -> Path:
    """30 questions with answers (a salted hash of each id puts about 30% in the held-out split)."""
    rows = [{"question": f"What is {a} plus {a + 7}?", "answer": str(2 * a + 7),
             "category": "small" if a < 15 else "big"} for a in range(30)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_jsonl_file_runs_through_the_cli(smollm_path: Path, tmp_path: Path) -> None:
    path = sums(tmp_path / "sums.jsonl")
    assert isinstance(load_task(f"jsonl:{path}"), JsonlTask)  # load_task reaches the jsonl: source
    task = JsonlTask(path)
    held = task.scenarios("heldout", 3, seed=1)
    truth = {sc.question: sc.answer for sc in held}

    def answer(messages: list[dict[str, str]]) -> str:  # the teacher gets every sum right but the first
        question = next(m["content"] for m in messages if m["role"] == "user").split("\n")[0]
        return "Answer: -1" if question == held[0].question else f"Answer: {truth[question]}"

    out = tmp_path / "out"
    settings = get_settings(student=str(smollm_path), n_ctx=2048)
    parts = {"student": Student(smollm_path, n_ctx=2048), "teacher": fake_teacher([answer], repeat_last=True)}
    res = run_eval(settings, EvalConfig(task=f"jsonl:{path}", n=3, seed=1, arms="teacher,teacher+cot", out=out,
                                        baseline="teacher+cot", resamples=100),
                   parts=parts)  # fmt: skip
    assert res.task == "jsonl:sums" and res.scenario_ids == [sc.id for sc in held]
    assert res.summary("teacher").correct == 2 and res.summary("teacher").accuracy.value == pytest.approx(2 / 3)
    assert set(res.summary("teacher").categories) == {sc.category for sc in held}
    cot = json.loads((out / "transcripts" / "teacher_cot.jsonl").read_text().splitlines()[0])
    assert "step by step" in cot["transcript"][1]["content"]  # the chain-of-thought arm is asked to reason
    assert (out / "report.md").is_file() and (out / "report.html").is_file()

    bad = runner.invoke(app, ["eval", "--task", f"jsonl:{tmp_path / 'missing.jsonl'}", "--arms", "teacher",
                              "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "no JSONL file" in str(bad.exception)


class Parity:
    """A task of our own: is the number even? Graded with a partial score for answering at all."""

    name = "parity"
    instructions = "Reply with 'Answer: even' or 'Answer: odd'."

    def scenarios(self, split: str, n: int, seed: int) -> list[Scenario]:
        start = 1000 if split == "heldout" else 0
        return [Scenario(id=f"p{i}", task=self.name, question=f"Is {i} even or odd?", answer=["even", "odd"][i % 2],
                         category="small" if i < start + 3 else "large") for i in range(start + seed, start + seed + n)]

    def check(self, scenario: Scenario, answer: str) -> Verdict:
        said = answer.lower().rsplit("answer:", 1)[-1].strip()
        ok = said == scenario.answer
        return Verdict(correct=ok, score=1.0 if ok else 0.5 if said in ("even", "odd") else 0.0)


def test_any_task_source_class_runs_unchanged(smollm_path: Path, tmp_path: Path) -> None:
    teacher = fake_teacher(["Answer: even", "Answer: even", "Answer: nothing", "Answer: odd"])
    parts = {"student": Student(smollm_path, n_ctx=2048), "teacher": teacher}
    res = run_eval(get_settings(student=str(smollm_path)), EvalConfig(n=4, seed=0, arms="teacher+cot",
                                                                       out=tmp_path / "o", resamples=100),
                   parts=parts, task=Parity())  # type: ignore[arg-type]  # fmt: skip
    s = res.summary("teacher+cot")
    assert [r.correct for r in res.items] == [True, False, False, True]
    assert s.accuracy.value == 0.5 and s.score.value == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert s.categories["small"].n == 3 and s.categories["large"].n == 1
    assert "mean score" in (tmp_path / "o" / "report.md").read_text()
    with pytest.raises(ConfigError, match="baseline"):
        run_eval(get_settings(), EvalConfig(arms="teacher", baseline="student", out=tmp_path / "b"), parts=parts,
                 task=Parity())  # type: ignore[arg-type]
