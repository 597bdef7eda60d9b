"""A build plans against its wall-time budget, and the with-library arm decodes only where the library acts."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from agentkd.distill.build import _loop_budget, _reserve
from agentkd.distill.context import BuildConfig, BuildContext
from agentkd.distill.curriculum import Budget
from agentkd.distill.flight import FIRST_CANDIDATE_S
from agentkd.distill.nodes import BuildState, Nodes
from agentkd.eval.heldout import ArmResult, run_arm
from agentkd.library import Library
from agentkd.schema import Provenance, Strategy, WorkedExample
from agentkd.student.student import Student
from agentkd.tools import ToolBox
from tests.loopkit import STRATEGY, PassPhraseTask


def _nodes(seconds: float | None) -> Nodes:
    config = BuildConfig(budget=Budget(max_seconds=seconds))
    ctx = BuildContext(teacher=None, student=None, library=None, task=PassPhraseTask(), config=config)  # type: ignore[arg-type]
    ctx.log.totals = lambda role: type("U", (), {"tokens": 0, "cost_usd": 0.0})()  # type: ignore[method-assign,assignment]
    return Nodes(ctx)


def test_no_round_or_candidate_starts_without_the_time_a_candidate_takes() -> None:
    nodes = _nodes(FIRST_CANDIDATE_S / 2)
    stop = nodes.plan(BuildState())["stop_reason"]
    assert "wall-time budget" in stop and f"~{FIRST_CANDIDATE_S:.0f}s" in stop and "--max-minutes" in stop
    assert nodes._grant_write(0) is False, "no candidate is written that could not be decided in time"
    nodes._flight.busy, nodes._flight.decided = 21.0, 3  # 3 decided in 21 s in flight, not the guess
    assert nodes.candidate_seconds() == 7.0 and nodes._no_time_left() is None and nodes._grant_write(0) is True
    assert "plan" in _nodes(None).plan(BuildState()), "without a time limit the loop plans as before"


def test_the_loop_gets_what_the_budget_leaves_and_keeps_back_the_last_arm_s_share() -> None:
    t0 = time.perf_counter() - 60  # a minute already spent on models and the student-alone arm
    budget = _loop_budget(Budget(), 10, t0)
    assert budget.max_seconds is not None and 600 - 60 - 20 < budget.max_seconds < 600 - 60
    assert _loop_budget(Budget(), 0, t0).max_seconds is None, "0: no limit"
    assert _loop_budget(Budget(), 0.5, t0).max_seconds == 0.0, "spent: nothing left"
    assert _loop_budget(Budget(max_seconds=30), 10, t0).max_seconds == 30, "the tighter one wins"
    nodes = _nodes(200.0)
    nodes._flight.busy, nodes._flight.decided = 60.0, 1
    assert nodes._no_time_left() is None
    nodes.ctx.reserve = lambda: 150.0  # the with-library arm will decode most items again
    assert "150s kept for the with-library arm" in (nodes._no_time_left() or "")


@pytest.mark.model
def test_the_library_arm_reuses_the_alone_answer_where_nothing_is_retrieved(tmp_path: Path, smollm_path: Path) -> None:
    task = PassPhraseTask()
    library = Library.open(str(tmp_path / "lib"), "passphrase")
    student = Student(smollm_path, tools=ToolBox([]), retriever=library, n_ctx=2048, max_tokens=16)
    items = task.scenarios("heldout", 2, seed=1)
    alone = run_arm("student alone", student, task, items, use_library=False)
    ctx = BuildContext(teacher=None, student=student, library=library, task=task)  # type: ignore[arg-type]
    reserve = _reserve(ctx, ArmResult("a", wall=80.0), seed=3)
    assert reserve() == 0.0, "an empty library: nothing to decode again"
    fields = {k: STRATEGY[k] for k in ("kind", "title", "trigger", "body")}
    pending = Strategy(id="s-pending", tasks=[task.name], **fields)
    ctx.pending[pending.id] = pending  # written, being measured: if admitted late, its arm must still fit
    assert reserve() == 80.0, "a written entry in flight is retrieved for every question: the whole arm is kept"
    far = Strategy.from_example(WorkedExample(question="Name the capital of a country.", program="print(1)", output="1",
                                              answer="1", solver="teacher", verification="v"), task=task.name,
                                  provenance=Provenance())
    ctx.pending = {far.id: far}
    assert reserve() == 0.0, "a pending worked example counts only where it is close enough to be shown"
    ctx.pending = {}
    empty = run_arm("student + library", student, task, items, use_library=True, reuse=alone)
    assert empty.reused == 2 and empty.completion_tokens == 0 and empty.correct == alone.correct
    assert [i["answer"] for i in empty.items] == [i["answer"] for i in alone.items]

    library.add(Strategy(id="s-passphrase", tasks=[task.name], status="admitted",
                         **{k: STRATEGY[k] for k in ("kind", "title", "trigger", "body")}))
    used = run_arm("student + library", student, task, items, use_library=True, reuse=alone)
    assert used.reused == 0 and used.completion_tokens > 0, "where the library retrieves, the student really answers"
    ctx = BuildContext(teacher=None, student=student, library=library, task=task)  # type: ignore[arg-type]
    assert _reserve(ctx, ArmResult("a", wall=80.0), seed=3)() == 80.0, "every question retrieves: the whole arm"
    assert all(i["strategies"] for i in used.items)
    assert json.dumps(used.items)  # the arm's record is plain data (it is written into the run spec)


@pytest.mark.model
def test_eval_keeps_the_student_answer_where_the_library_retrieves_nothing(tmp_path: Path, smollm_path: Path) -> None:
    from agentkd.config import get_settings
    from agentkd.eval.runner import EvalConfig, run_eval
    from agentkd.models.runlog import RunLog

    task = PassPhraseTask()
    library = Library.open(str(tmp_path / "lib"), "passphrase")
    student = Student(smollm_path, tools=ToolBox([]), retriever=library, n_ctx=2048, max_tokens=16, log=RunLog())
    out = tmp_path / "eval"
    config = EvalConfig(task="passphrase", n=3, seed=2, arms="student,student+library,student+vote:2", out=out,
                        resamples=50)
    result = run_eval(get_settings(student=str(smollm_path)), config, parts={"student": student, "teacher": None},
                      task=task)
    alone, used = ([i for i in result.items if i.arm == arm] for arm in ("student", "student+library"))
    assert [i.reused_from for i in used] == ["student"] * 3 and [i.answer for i in used] == [i.answer for i in alone]
    assert all(not i.reused_from for i in result.items if i.arm != "student+library"), "only a library arm reuses"
    assert "3 of 3 items retrieved nothing" in (out / "report.md").read_text()
    resumed = run_eval(get_settings(student=str(smollm_path)), EvalConfig(**{**config.__dict__, "resume": True}),
                       parts={"student": student, "teacher": None}, task=task)
    assert [i.model_dump() for i in resumed.items] == [i.model_dump() for i in result.items]


@pytest.mark.parametrize("pairs_in_time,admitted", [(1, False), (5, True)])
def test_admission_trials_end_when_the_budget_does(monkeypatch: pytest.MonkeyPatch, pairs_in_time: int,
                                                   admitted: bool) -> None:
    """A candidate granted in time but still measuring at the deadline starts no further item, and is
    decided by the same test on the pairs it ran: the build ends on time instead of running them all."""
    from agentkd.distill import admission
    from agentkd.schema import Scenario

    items = [Scenario(id=f"sc-{i}", task="passphrase", question=f"q{i}", category="c") for i in range(8)]
    runs: list[bool] = []
    monkeypatch.setattr(admission, "category_items", lambda ctx, category, n, seed, source: items)
    monkeypatch.setattr(admission, "_with", lambda ctx, sc, candidate: [candidate])

    def passes(ctx: object, sc: Scenario, with_: list[Strategy] | None) -> bool:
        runs.append(True)
        return with_ is not None  # the candidate always helps

    monkeypatch.setattr(admission, "passes", passes)
    nodes = _nodes(600.0)
    nodes.ctx.config.student_concurrency = 1  # one run at a time: the clock is read between pairs
    nodes.ctx.reserve = lambda: 0.0 if len(runs) < 2 * pairs_in_time else 10_000.0  # then the time is gone
    candidate = Strategy(id="e-x", tasks=["passphrase"], kind="strategy", title="t", trigger="when", body="do")
    m = admission.measure_candidate(nodes.ctx, candidate, "c", 0)
    assert m.cut and len(m.trials) == pairs_in_time and len(runs) == 2 * pairs_in_time
    decision = admission.admit(m)
    assert decision.admitted is admitted
    assert ("wall-time budget ended" in decision.reason) and (f"{pairs_in_time} of 8 items" in decision.reason)
    if not admitted:
        assert decision.reason.startswith("undecided") and "--max-minutes" in decision.reason


def test_no_written_entry_starts_once_the_harvest_has_used_the_time() -> None:
    nodes = _nodes(FIRST_CANDIDATE_S / 2)
    nodes.ctx.config.examples = False
    from agentkd.schema import Attempt, Scenario

    sc = Scenario(id="sc-1", task="passphrase", question="q", category="c")
    nodes.ctx.teacher = type("T", (), {"model": "teacher"})()  # type: ignore[assignment]  # never asked
    nodes.ctx.student = type("S", (), {"model_spec": "student"})()  # type: ignore[assignment]
    result = nodes._write_one(sc, Attempt(scenario_id="sc-1", answer="x"), [])
    assert isinstance(result, dict) and result["reason"].startswith("no time left for a written entry")
    nodes.ctx.config.budget = Budget(max_seconds=FIRST_CANDIDATE_S * 1.5)  # time for one candidate, not two
    nodes._flight.started = {"sc-0": 0.0, "sc-1": 0.0}  # another candidate is measuring while this one would be written
    result = nodes._write_one(sc, Attempt(scenario_id="sc-1", answer="x"), [])
    assert isinstance(result, dict) and "beside 1 in flight" in result["reason"]


def test_a_task_that_says_so_gets_no_written_entry_when_the_harvest_finds_no_example(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from agentkd.distill import nodes as nodes_module
    from agentkd.distill.harvest import Harvest
    from agentkd.schema import Attempt, Scenario

    monkeypatch.setattr(nodes_module, "harvest_example", lambda ctx, sc, **kw: Harvest(None, reason="wrong answer"))
    monkeypatch.setattr(nodes_module, "student_example", lambda ctx, sc: None)

    nodes = _nodes(None)
    nodes.ctx.config.examples = False
    nodes.ctx.task.written_entries = False  # type: ignore[attr-defined]  # e.g. reasoning-gym: programs solve it
    nodes.ctx.teacher = type("T", (), {"model": "teacher"})()  # type: ignore[assignment]  # never asked
    nodes.ctx.student = type("S", (), {"model_spec": "student"})()  # type: ignore[assignment]
    sc = Scenario(id="sc-1", task="passphrase", question="q", category="c")
    assert nodes._writes_prose(), "without worked examples a written entry is all the loop has"
    nodes.ctx.config.examples = True
    result = nodes._write_one(sc, Attempt(scenario_id="sc-1", answer="x"), [])
    assert nodes._writes_prose() is False and isinstance(result, dict) and "prose entries are off" in result["reason"]
    nodes.ctx.config.prose = "on"
    assert nodes._writes_prose(), "the setting overrides the task"


def test_a_candidate_costs_the_time_in_flight_per_decision_not_its_own_overlapping_latency(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Three candidates measured side by side for 30 s each cost ~10 s apiece on the shared student: the
    estimate is the time with candidates in flight per decision, so a long build does not stop early."""
    nodes = _nodes(None)
    clock = [1000.0]
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: clock[0])
        for sid in ("a", "b", "c"):
            nodes._flight.began(sid)
        clock[0] += 30.0
        for sid in ("a", "b", "c"):
            nodes._flight.ended(sid, decided=True)
        assert nodes.candidate_seconds() == 10.0
        nodes._flight.began("d")  # written, no candidate: it leaves without a decision
        clock[0] += 5.0
        nodes._flight.ended("d", decided=False)
        clock[0] += 100.0  # nothing in flight: not counted
        nodes._flight.began("e")
        clock[0] += 9.0
        nodes._flight.ended("e", decided=True)
        assert nodes.candidate_seconds() == (30.0 + 5.0 + 9.0) / 4
    nodes.ctx.config.budget = Budget(max_seconds=20.0)
    assert nodes._no_time_left() is None, "one candidate (~11 s) fits"
    assert "beside 2 in flight" in (nodes._no_time_left(2) or ""), "beside two half-done ones (~22 s) it does not"


def test_trial_runs_start_as_the_student_frees_a_slot_and_are_decided_in_order(monkeypatch: pytest.MonkeyPatch
                                                                                ) -> None:
    """A long run holds one slot, not a chunk: the next item's runs start beside it, and the trials still come
    out in item order; once the rule cannot admit, nothing more starts."""
    from agentkd.distill import admission
    from agentkd.schema import Scenario

    items = [Scenario(id=f"sc-{i}", task="passphrase", question=f"q{i}", category="c") for i in range(8)]
    log: list[tuple[str, str]] = []
    monkeypatch.setattr(admission, "category_items", lambda ctx, category, n, seed, source: items)
    monkeypatch.setattr(admission, "_with", lambda ctx, sc, candidate: [candidate])

    def passes(ctx: object, sc: Scenario, with_: list[Strategy] | None) -> bool:
        log.append(("start", sc.id))
        time.sleep(0.6 if (sc.id, with_) == ("sc-0", None) else 0.02)  # item 0's run without is long
        log.append(("end", sc.id))
        return with_ is None  # the candidate always hurts: futility stops it

    monkeypatch.setattr(admission, "passes", passes)
    nodes = _nodes(None)
    nodes.ctx.config.student_concurrency = 2
    candidate = Strategy(id="e-x", tasks=["passphrase"], kind="strategy", title="t", trigger="when", body="do")
    m = admission.measure_candidate(nodes.ctx, candidate, "c", 0)
    first_end = log.index(("end", "sc-0"), log.index(("end", "sc-0")) + 1)  # item 0's second run ends
    assert ("start", "sc-1") in log[:first_end], "item 1 started beside item 0's long run"
    assert m.stopped and [t.scenario for t in m.trials] == [f"sc-{i}" for i in range(len(m.trials))]
    assert all(not t.passed_with and t.passed_without for t in m.trials)
    started = {sc for what, sc in log if what == "start"}
    assert len(started) <= len(m.trials) + 2, "at most width // 2 + 1 items go beyond the first undecided one"


@pytest.mark.parametrize("fail_every,testable", [(3, True), (40, False)])
def test_probing_grows_the_pool_until_enough_items_fail_or_calls_the_candidate_untestable(
        monkeypatch: pytest.MonkeyPatch, fail_every: int, testable: bool) -> None:
    """A category the student mostly passes: probing draws more items until it holds as many failing ones as
    the sign test needs helps; where the category has too few, nothing is run and the reason says so."""
    from agentkd.distill import admission
    from agentkd.distill import items as items_mod
    from agentkd.schema import Scenario

    pool = [Scenario(id=f"sc-{i}", task="passphrase", question=f"q{i}", category="c") for i in range(40)]
    fails = {sc.id for i, sc in enumerate(pool) if i % fail_every == fail_every - 1}
    draws: list[int] = []
    with_runs: list[str] = []

    def category_items(ctx: object, category: str, n: int, seed: int, source: object) -> list[Scenario]:
        draws.append(n)
        return pool[:n]

    def passes(ctx: object, sc: Scenario, with_: list[Strategy] | None, student: object = None) -> bool:
        if with_ is not None:
            with_runs.append(sc.id)
            return True  # the candidate always helps
        return sc.id not in fails

    monkeypatch.setattr(items_mod, "category_items", category_items)
    monkeypatch.setattr(items_mod, "passes", passes)
    monkeypatch.setattr(admission, "passes", passes)
    monkeypatch.setattr(admission, "_with", lambda ctx, sc, candidate: [candidate])
    nodes = _nodes(None)
    nodes.ctx.config.probe_temperature, nodes.ctx.config.admission_items = 0.7, 8
    nodes.ctx.student = type("S", (), {})()  # the sampler copies it; the scripted ``passes`` ignores it
    candidate = Strategy(id="e-x", tasks=["passphrase"], kind="strategy", title="t", trigger="when", body="do")
    m = admission.measure_candidate(nodes.ctx, candidate, "c", 0)
    decision = admission.admit(m)
    assert admission.helps_needed(0.05) == 5
    if testable:  # 1 in 3 fail: 12 probed give 4, the next 8 give the 5th and more
        assert draws == [12, 20] and decision.admitted and m.failable is None
    else:  # 1 in 40 fail: the pool stops at 4 x 8 = 32 items, holding none that fails
        assert draws == [12, 20, 28, 32] and not decision.admitted and not with_runs and m.failable == 0
        assert decision.reason.startswith("not testable here: only 0 of the 32 probed items of c fail")
