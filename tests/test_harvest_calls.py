"""Worked examples where the answer is the solution (BFCL): the teacher plays the task's own episode, and only
a call BFCL's checker accepts becomes an example, kept as the request, its functions and the call (a scripted
teacher, the real BFCL data and checker; no model)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from agentkd.distill.context import BuildConfig, BuildContext
from agentkd.distill.harvest import harvest_example
from agentkd.distill.nodes import BuildState, Nodes
from agentkd.schema import Provenance, Strategy
from agentkd.tasks.bfcl import BfclTask
from agentkd.testing import fake_teacher
from agentkd.tools import ToolBox, python_tool

pytest.importorskip("bfcl_eval", reason="bfcl-eval is not installed (pip install --no-deps bfcl-eval==2026.3.23)")


def _ctx(replies: list[str], task: BfclTask) -> BuildContext:
    student = SimpleNamespace(tools=ToolBox([python_tool()]), model_spec="student")  # BFCL never runs its sandbox
    return BuildContext(teacher=fake_teacher(replies), student=student, library=None, task=task,  # type: ignore[arg-type]
                        config=BuildConfig(seed=1))


def test_a_verified_call_becomes_an_answer_form_example_and_a_wrong_one_never_does() -> None:
    task = BfclTask("simple")
    sc = task.scenarios("train", 1, seed=0)[0]
    right = sc.answer
    assert right is not None
    name = right.split("(")[0]
    harvest = harvest_example(_ctx([f"{name}()", right], task), sc, siblings=False)
    assert harvest.example is not None and harvest.tries == 2, "the greedy try was wrong, the sampled one right"
    ex = harvest.example
    assert ex.form == "answer" and ex.program == ex.answer and task.check(sc, ex.answer).correct
    assert ex.question == sc.question and "Functions:" in ex.question, "the request with its functions"
    entry = Strategy.from_example(ex, task=task.name, provenance=Provenance())
    shown = entry.render()
    assert f"Correct answer: {ex.answer}" in shown and "Program:" not in shown

    failed = harvest_example(_ctx([f"{name}()", f"{name}()"], task), sc, siblings=False)
    assert failed.example is None and failed.program == f"{name}()" and "failed the check" in failed.reason


def test_bfcl_categories_are_argument_shapes_so_an_example_does_not_close_one() -> None:
    nodes = Nodes(_ctx([], BfclTask("multiple")))
    assert nodes._covered(BuildState()) == set()
