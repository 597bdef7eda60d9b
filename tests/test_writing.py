"""Entries written from several failures of one category: the prompt shows them all, the leak check holds
against each, and a later round's write sees the earlier rounds' failures (real student, library and graph)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from agentkd.distill.context import BuildConfig, BuildContext
from agentkd.distill.graph import run
from agentkd.distill.writing import Failure, leak_error, peers_from, write_draft
from agentkd.library import Library
from agentkd.models.runlog import RunLog
from agentkd.schema import Scenario, StrategyDraft
from agentkd.student.student import Student
from agentkd.testing import fake_teacher
from agentkd.tools import ToolBox
from tests.loopkit import STRATEGY, PassPhraseTask

PENS = Scenario(id="q1", task="gsm", question="Ann buys 12 pens at 35 cents each. What does she pay?", answer="420",
                category="unit-price")
APPLES = Scenario(id="q2", task="gsm", question="Bob buys 14 apples at 45 cents each. What does he pay?",
                  answer="630", category="unit-price")
GENERAL = {"kind": "strategy", "title": "Unit price times count", "trigger": "A purchase of n items at a unit price",
           "body": "total = count * unit_price\nprint(total)", "tool_hints": []}


def test_the_leak_check_holds_against_every_problem_the_teacher_saw() -> None:
    copies_the_second = StrategyDraft(**{**GENERAL, "body": "Multiply 14 by 45 to get what is paid."})
    assert leak_error(StrategyDraft(**GENERAL), [PENS, APPLES]) is None
    reason = leak_error(copies_the_second, [PENS, APPLES])
    assert reason is not None and "copies numbers" in reason and "problem 2" in reason
    assert leak_error(copies_the_second, [PENS]) is None  # the same draft is general for the first problem alone


def test_a_draft_is_a_few_short_lines() -> None:
    with pytest.raises(ValidationError, match="at most 6"):
        StrategyDraft(**{**GENERAL, "body": "\n".join(f"step {i}: do the next thing" for i in range(7))})
    with pytest.raises(ValidationError):
        StrategyDraft(**{**GENERAL, "body": "Read the problem carefully. " * 20})  # a paragraph, over 400 chars


def test_peers_are_earlier_rounds_failures_of_the_category_newest_first_and_capped() -> None:
    failures = [(it, Failure(scenario=PENS.model_copy(update={"id": f"r{it}"}), attempt="")) for it in range(5)]
    other = (1, Failure(scenario=APPLES.model_copy(update={"category": "other"}), attempt=""))
    peers = peers_from([*failures, other], "unit-price", iteration=4)
    assert [p.scenario.id for p in peers] == ["r3", "r2", "r1"]  # never this round's, never another category


def test_the_teacher_writes_from_all_failures_and_is_reasked_when_it_copies_any() -> None:
    leaky = json.dumps({**GENERAL, "body": "Multiply 14 by 45 to get what is paid."})
    teacher = fake_teacher([leaky, json.dumps(GENERAL)])
    ctx = BuildContext(teacher=teacher, student=None, library=None, task=PassPhraseTask())  # type: ignore[arg-type]
    failures = [Failure(scenario=PENS, attempt="Final answer: 47", solution="print(12 * 35)"),
                Failure(scenario=APPLES, attempt="Final answer: 59", solution="print(14 * 45)")]
    draft = write_draft(ctx, failures, had=[])
    assert draft.body == GENERAL["body"]
    calls = teacher.transport.calls  # type: ignore[attr-defined]
    prompt = calls[0]["messages"][-1]["content"]
    assert "2 problems of the same kind" in prompt and "what these problems share" in prompt
    for text in (PENS.question, APPLES.question, "print(14 * 45)", "Final answer: 59", "630"):
        assert text in prompt
    assert len(calls) == 2 and "problem 2" in calls[1]["messages"][-1]["content"]  # the re-ask names the problem


@pytest.mark.model
def test_a_later_round_writes_from_the_earlier_rounds_failures(tmp_path: Path, smollm_path: Path) -> None:
    log = RunLog(tmp_path / "run.jsonl")
    library = Library.open(str(tmp_path / "lib"), "passphrase")
    student = Student(smollm_path, tools=ToolBox([]), retriever=library, n_ctx=2048, max_tokens=24, log=log)
    useless = [json.dumps({**STRATEGY, "title": "Be polite 1", "body": "Greet the visitor warmly, then answer."}),
               json.dumps({"kind": "guidance", "title": "Be polite 2", "trigger": "A stranger at the door of a club",
                           "body": "Ask to see a membership card before saying anything else.", "tool_hints": []})]
    # round 0: one write (solve, entry); round 1: its failure's solve, the earlier failure nobody solved, entry
    script = ["Answer: ?", useless[0], "Answer: ?", "Answer: ?", useless[1]]
    teacher = fake_teacher(script, log=log)
    ctx = BuildContext(teacher=teacher, student=student, library=library, task=PassPhraseTask(), log=log,
                       config=BuildConfig(iterations=2, batch_size=2, max_strategies_per_iteration=1, seed=3))
    state = run(ctx)
    assert [s.passed for s in state.stats] == [0, 0] and state.admitted == []
    first = {o.scenario.id for o in state.round(0)}
    [later] = [s for s in library.list(status="rejected") if s.title == "Be polite 2"]
    written_from = later.provenance.source_scenarios[:3]
    assert set(written_from[1:]) == first, "the round-1 entry was written from round 0's two failures too"
    assert not set(later.provenance.source_scenarios[3:]) & first, "never measured on a problem it was written from"
    prompts = [c["messages"][-1]["content"] for c in teacher.transport.calls]  # type: ignore[attr-defined]
    [last] = [p for p in prompts if "## Problem 3" in p]
    assert all(o.scenario.question in last for o in state.outcomes if o.scenario.id in written_from)
    assert teacher.transport.script == []  # type: ignore[attr-defined]  # exactly the calls the design makes
