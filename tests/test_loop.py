"""The distillation loop: topology, a real run (real student, library and graph; scripted teacher),
admission by measured effect, budgets, teacher faults, and kill -9 / resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentkd.distill.context import BuildConfig, BuildContext
from agentkd.distill.curriculum import Budget, Curriculum, allocate
from agentkd.distill.graph import build_graph, mermaid, run
from agentkd.distill.nodes import Nodes
from agentkd.errors import TeacherRateLimited, TeacherTimeout
from agentkd.library import Library
from agentkd.models.runlog import RunLog
from agentkd.student.student import Student
from agentkd.testing import fake_teacher
from agentkd.tools import ToolBox
from tests.loopkit import PHRASE, STRATEGY, PassPhraseTask, strategy_script, write_script

SNAPSHOT = Path(__file__).parent / "snapshots" / "graph.mmd"
ROOT = Path(__file__).parent.parent


def test_graph_topology_matches_the_snapshot() -> None:
    ctx = BuildContext(teacher=None, student=None, library=None, task=None)  # type: ignore[arg-type]
    assert mermaid(ctx) == SNAPSHOT.read_text(), "graph changed: update tests/snapshots/graph.mmd if intended"
    edges = {(e.source, e.target) for e in build_graph(ctx).get_graph(xray=True).edges}
    assert edges >= {("__start__", "plan"), ("generate_scenarios", "scenario:attempt"),
                     ("scenario:judge", "scenario:write_strategy"), ("scenario:write_strategy", "scenario:admit"),
                     ("scenario:admit", "update_curriculum"), ("update_curriculum", "plan")}


def test_curriculum_aims_at_the_weakest_category_and_raises_difficulty() -> None:
    cur = Curriculum()
    for _ in range(8):
        cur.record("easy", True)
        cur.record("hard", False)
    mix = cur.mix()
    assert mix["hard"] > 0.8 and abs(sum(mix.values()) - 1) < 1e-9
    assert allocate(mix, 6) == {"easy": 1, "hard": 5}
    assert cur.update_difficulty() == ["easy"] and cur.difficulty("easy") == 2 and cur.difficulty("hard") == 1


def test_first_rounds_spread_over_the_task_s_categories() -> None:
    cur = Curriculum()
    assert allocate(cur.mix(["a", "b", "c", "d"]), 6) == {"a": 1, "b": 1, "c": 2, "d": 2}, "none left out"
    cur.record("a", True)
    mix = cur.mix(["a", "b", "c", "d"])
    assert mix["a"] < mix["b"] == mix["c"] == mix["d"], "a category never tried counts as a full gap"
    assert cur.mix() == {"a": 1.0}, "without the task's categories: the ones attempted"


def test_a_round_s_writes_are_shared_across_its_categories() -> None:
    ctx = BuildContext(teacher=None, student=None, library=None, task=None,  # type: ignore[arg-type]
                       config=BuildConfig(max_strategies_per_iteration=3))
    nodes = Nodes(ctx)
    grants = [nodes._grant_write(0, c, spread=3) for c in ["x", "x", "y", "x", "z", "y"]]
    assert grants == [True, False, True, False, True, False], "one write each for 3 categories, not two for one"
    assert [nodes._grant_write(1, "x", spread=1) for _ in range(4)] == [True, True, True, False], "one category: all"


def test_budget_stops_on_tokens_cost_time_and_diminishing_returns() -> None:
    assert "token budget" in (Budget(max_teacher_tokens=10).exceeded(teacher_tokens=11, cost_usd=0, last_gain=None,
                                                                      last_tokens=0) or "")
    assert "cost" in (Budget(max_cost_usd=0.5).exceeded(teacher_tokens=0, cost_usd=0.6, last_gain=None,
                                                          last_tokens=0) or "")
    assert "wall-time" in (Budget(max_seconds=0, started=time.time() - 1).exceeded(
        teacher_tokens=0, cost_usd=0, last_gain=None, last_tokens=0) or "")
    assert "gain per 1k" in (Budget(min_gain_per_1k_tokens=0.1).exceeded(teacher_tokens=0, cost_usd=0, last_gain=0.0,
                                                                         last_tokens=5000) or "")
    assert Budget().exceeded(teacher_tokens=10**9, cost_usd=10**6, last_gain=0, last_tokens=1) is None


def _ctx(tmp_path: Path, smollm_path: Path, script: list, **config: object) -> BuildContext:
    log = RunLog(tmp_path / "run.jsonl")
    library = Library.open(str(tmp_path / "lib"), "passphrase")
    student = Student(smollm_path, tools=ToolBox([]), retriever=library, n_ctx=2048, max_tokens=24, log=log)
    teacher = fake_teacher(script, log=log)
    return BuildContext(teacher=teacher, student=student, library=library, task=PassPhraseTask(),
                        config=BuildConfig(**{"iterations": 2, "batch_size": 2, "siblings": 1, "seed": 3, **config}),
                        log=log)


@pytest.mark.model
def test_loop_admits_a_strategy_that_measurably_helps(tmp_path: Path, smollm_path: Path) -> None:
    ctx = _ctx(tmp_path, smollm_path, strategy_script(4), max_strategies_per_iteration=1)
    state = run(ctx)
    assert state.stats[0]["passed"] == 0, "without the strategy the student cannot know the phrase"
    assert len(state.admitted) == 1
    entry = ctx.library.get(state.admitted[0])  # type: ignore[attr-defined]
    assert entry is not None and entry.status == "admitted" and entry.title == STRATEGY["title"]
    assert entry.effect.trials == 8 and entry.effect.helped == 8 and entry.effect.hurt == 0
    assert "p=0.004 <= alpha=0.05" in entry.status_reason
    assert entry.provenance.teacher == "fake/teacher" and entry.provenance.source_scenarios
    assert state.stats[1]["passed"] == 2, "with the admitted strategy the student answers"
    events = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert any(e.get("event") == "admitted" for e in events)
    assert {e["role"] for e in events if "role" in e} == {"teacher", "student"}


@pytest.mark.model
def test_a_candidate_that_does_not_help_is_kept_out(tmp_path: Path, smollm_path: Path) -> None:
    useless = json.dumps({**STRATEGY, "title": "Be polite", "body": "Greet the visitor warmly and thank them."})
    ctx = _ctx(tmp_path, smollm_path, ["Answer: ?", useless], iterations=1, max_strategies_per_iteration=1)
    state = run(ctx)
    assert state.admitted == []
    assert any("did not help" in r["reason"] for r in state.rejected)
    assert ctx.library.list(status="admitted") == []  # type: ignore[attr-defined]
    [kept] = ctx.library.list(status="rejected")  # type: ignore[attr-defined]
    # measuring stops once even winning every remaining item could not admit it (futility, admission.py)
    assert kept.title == "Be polite" and 0 < kept.effect.trials < 8 and kept.effect.helped == 0
    assert "stopped after" in kept.status_reason
    assert ctx.library.search(PassPhraseTask().scenarios("train", 1, 0)[0].question) == []  # type: ignore[attr-defined]
    [measured] = [h for h in ctx.library.history(kept.id) if h["action"] == "measured"]  # type: ignore[attr-defined]
    assert [t["item"] for t in measured["trials"]] == ["never"] * kept.effect.trials  # it never knows the phrase
    prompts = [c["messages"][-1]["content"] for c in ctx.teacher.transport.calls]  # type: ignore[attr-defined]
    assert any(PassPhraseTask.strategy_focus in p for p in prompts), "the teacher learns how the student works"


@pytest.mark.model
def test_a_rejected_candidate_written_again_is_not_measured_again(tmp_path: Path, smollm_path: Path) -> None:
    useless = json.dumps({**STRATEGY, "title": "Be polite", "body": "Greet the visitor warmly and thank them."})
    ctx = _ctx(tmp_path, smollm_path, ["Answer: ?", useless] * 4, iterations=2, max_strategies_per_iteration=1)
    state = run(ctx)
    [kept] = ctx.library.list(status="rejected")  # type: ignore[attr-defined]
    measured = [h for h in ctx.library.history(kept.id) if h["action"] == "measured"]  # type: ignore[attr-defined]
    assert len(measured) == 1, "a second measurement would test it until it passes"
    assert [r["title"] for r in state.rejected].count("Be polite") >= 2
    assert any("not measured again" in r["reason"] for r in state.rejected)


@pytest.mark.model
def test_teacher_faults_are_retried_and_a_lost_cause_is_skipped(tmp_path: Path, smollm_path: Path) -> None:
    # one branch at a time: the first failure meets a teacher that stays down (4 tries), the second one
    # meets a 429 and a timeout that are retried
    script = [*[TeacherTimeout("down")] * 4, TeacherRateLimited("429", retry_after=0.0), TeacherTimeout("slow"),
              f"Answer: {PHRASE}", json.dumps(STRATEGY)]
    ctx = _ctx(tmp_path, smollm_path, script, iterations=1, batch_size=2, max_strategies_per_iteration=2,
               teacher_concurrency=1)
    state = run(ctx)
    assert any("teacher failed" in r["reason"] for r in state.rejected), "the lost cause was skipped"
    assert len(state.admitted) == 1, "the faults before the second strategy were retried"
    assert ctx.log.totals("teacher").failures >= 1


@pytest.mark.model
def test_budget_stops_the_loop_and_says_why(tmp_path: Path, smollm_path: Path) -> None:
    ctx = _ctx(tmp_path, smollm_path, strategy_script(4), iterations=5, budget=Budget(max_teacher_tokens=1))
    state = run(ctx)
    assert state.iteration == 1 and "token budget" in state.stop_reason


@pytest.mark.model
def test_build_survives_kill_9_and_resumes_without_loss_or_duplicates(tmp_path: Path, smollm_path: Path) -> None:
    home, lib = tmp_path / "home", tmp_path / "lib"
    script = write_script(tmp_path / "teacher.json", failures=20, latency=1.5)
    env = {**os.environ, "AGENTKD_HOME": str(home), "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "agentkd.cli", "build", "--task", "tests.loopkit:PassPhraseTask", "--teacher",
            f"script:{script}", "--student", str(smollm_path), "--library", str(lib), "--collection", "passphrase",
            "--iterations", "3", "--batch-size", "2", "--siblings", "1", "--heldout", "2", "--seed", "5"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT,
                            start_new_session=True)
    runs = home / "runs"
    deadline = time.time() + 240
    while time.time() < deadline:  # kill once the first strategy has been admitted
        logs = list(runs.glob("*.jsonl")) if runs.exists() else []
        if logs and '"event": "admitted"' in logs[0].read_text():
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"no admission before the deadline: {proc.stdout.read().decode()[-2000:]}")  # type: ignore[union-attr]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    spec = json.loads(next(runs.glob("*.json")).read_text())
    assert spec["finished"] is False
    admitted_before = Library.open(str(lib), "passphrase").list(status="admitted")
    assert len(admitted_before) == 1

    done = subprocess.run([sys.executable, "-m", "agentkd.cli", "build", "--resume", "last"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Held-out accuracy" in done.stdout
    final = Library.open(str(lib), "passphrase").list(status="admitted")
    assert [s.id for s in final] == [s.id for s in admitted_before], "nothing lost, nothing duplicated"
    spec = json.loads(next(runs.glob("*.json")).read_text())
    assert spec["finished"] is True
    assert [i["id"] for i in spec["with_library"]["items"]] == [i["id"] for i in spec["baseline"]["items"]]


@pytest.mark.model
def test_a_resumed_round_counts_the_writes_it_granted_before_the_crash(
    tmp_path: Path, smollm_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agentkd.distill.nodes as nodes_module
    from agentkd.distill.graph import sqlite_checkpointer

    useless = json.dumps({**STRATEGY, "title": "Be polite", "body": "Greet the visitor warmly and thank them."})
    ctx = _ctx(tmp_path, smollm_path, ["Answer: ?", useless] * 3, iterations=1, batch_size=3,
               max_strategies_per_iteration=1, teacher_concurrency=1)
    attempt, seen = nodes_module.run_attempt, []

    def crashes_on_the_second(*args: object, **kwargs: object) -> object:
        seen.append(1)
        if len(seen) == 2:
            raise RuntimeError("the process dies here")
        return attempt(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(nodes_module, "run_attempt", crashes_on_the_second)
    with sqlite_checkpointer(tmp_path / "run.sqlite") as saver:
        with pytest.raises(RuntimeError, match="dies here"):
            run(ctx, checkpointer=saver, thread_id="t")
        asked = len(ctx.teacher.transport.calls)  # type: ignore[attr-defined]
        assert asked == 2, "the first failure used the round's one write (a solution, then the entry)"
        monkeypatch.setattr(nodes_module, "run_attempt", attempt)
        state = run(ctx, checkpointer=saver, thread_id="t", resume=True)  # new nodes: their counts start empty
    outcomes = state.round(0)
    assert len(outcomes) == 3 and not any(o.verdict.correct for o in outcomes)
    assert [o.wrote for o in outcomes] == [True, False, False], "the cap of 1 holds across the resume"
    assert len(ctx.teacher.transport.calls) == asked  # type: ignore[attr-defined]
