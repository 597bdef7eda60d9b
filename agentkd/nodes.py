"""The distillation loop's steps. Each node takes the state and returns the fields it changes.

The parts (teacher, student, library, task) are passed in through ``BuildContext``; nothing here
imports an SDK, so the steps can be read and tested on their own. ``graph.py`` wires them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, Field

from agentkd.errors import TeacherError
from agentkd.judge import judge as judge_attempt
from agentkd.judge import leaks_answer
from agentkd.prompts import render
from agentkd.runlog import RunLog
from agentkd.schema import Attempt, Provenance, Scenario, Strategy, StrategyDraft, Verdict
from agentkd.student import Student
from agentkd.tasks import TaskSource
from agentkd.teacher import Teacher


class StrategyStore(Protocol):
    def add(self, strategy: Strategy) -> tuple[str, str]: ...

    def get(self, strategy_id: str) -> Strategy | None: ...


@dataclass
class BuildConfig:
    iterations: int = 2
    batch_size: int = 6
    max_strategies_per_iteration: int = 3
    seed: int = 1234


@dataclass
class BuildContext:
    """Everything the nodes need besides the state."""

    teacher: Teacher
    student: Student
    library: StrategyStore
    task: TaskSource
    config: BuildConfig = field(default_factory=BuildConfig)
    log: RunLog = field(default_factory=RunLog)
    progress: Callable[..., None] = lambda event, **data: None


class Candidate(BaseModel):
    strategy: Strategy
    scenario_id: str


class BuildState(BaseModel):
    """The loop's state; every field is checkpointable."""

    iteration: int = 0
    scenarios: list[Scenario] = Field(default_factory=list)
    attempts: list[Attempt] = Field(default_factory=list)
    verdicts: list[Verdict] = Field(default_factory=list)
    candidates: list[Candidate] = Field(default_factory=list)
    admitted: list[str] = Field(default_factory=list)
    rejected: list[dict[str, Any]] = Field(default_factory=list)
    stats: list[dict[str, Any]] = Field(default_factory=list)


def describe_attempt(attempt: Attempt) -> str:
    """The student's attempt as the teacher sees it: its programs, their output, its answer."""
    lines = []
    for call in attempt.tool_calls:
        args = call.arguments.get("code") or json.dumps(call.arguments)
        lines.append(f"Called {call.name}:\n{args}\nResult{' (error)' if call.error else ''}: {call.result[:400]}")
    lines.append(f"Final answer: {attempt.answer[:400] or '(none)'}")
    return "\n\n".join(lines)


class Nodes:
    """The steps of the loop, bound to a context."""

    def __init__(self, ctx: BuildContext) -> None:
        self.ctx = ctx

    def generate_scenarios(self, state: BuildState) -> dict[str, Any]:
        cfg = self.ctx.config
        scenarios = self.ctx.task.scenarios("train", cfg.batch_size, seed=cfg.seed + state.iteration * 7919)
        self.ctx.progress("scenarios", iteration=state.iteration, n=len(scenarios))
        return {"scenarios": scenarios, "attempts": [], "verdicts": [], "candidates": []}

    def attempt(self, state: BuildState) -> dict[str, Any]:
        attempts = []
        for sc in state.scenarios:
            attempts.append(self.ctx.student.attempt(sc, instructions=self.ctx.task.instructions))
            self.ctx.progress("attempt", scenario=sc.id)
        return {"attempts": attempts}

    def judge(self, state: BuildState) -> dict[str, Any]:
        verdicts = [
            judge_attempt(self.ctx.task, sc, at) for sc, at in zip(state.scenarios, state.attempts, strict=True)
        ]
        passed = sum(v.correct for v in verdicts)
        self.ctx.progress("judged", passed=passed, total=len(verdicts))
        return {"verdicts": verdicts}

    def write_strategy(self, state: BuildState) -> dict[str, Any]:
        failures = [
            (sc, at) for sc, at, v in zip(state.scenarios, state.attempts, state.verdicts, strict=True) if not v.correct
        ][: self.ctx.config.max_strategies_per_iteration]
        candidates, rejected = [], list(state.rejected)
        for sc, at in failures:
            had = [s.render() for sid in at.strategy_ids if (s := self.ctx.library.get(sid))]
            prompt = render(
                "strategy.md", question=sc.question, answer=sc.answer, attempt=describe_attempt(at), had=had
            )
            try:
                draft = self.ctx.teacher.structured(
                    [{"role": "user", "content": prompt}], StrategyDraft, purpose="write_strategy"
                )
            except TeacherError as exc:  # gave up after retries: skip this scenario, keep going
                rejected.append({"scenario": sc.id, "reason": f"teacher failed: {exc}"})
                self.ctx.progress("skipped", scenario=sc.id, reason=str(exc))
                continue
            if reason := leaks_answer(draft, sc):
                rejected.append({"scenario": sc.id, "reason": f"leaks the answer: {reason}", "title": draft.title})
                self.ctx.progress("rejected", title=draft.title, reason=reason)
                continue
            provenance = Provenance(
                teacher=self.ctx.teacher.model, student=self.ctx.student.model_spec, source_scenarios=[sc.id]
            )
            strategy = Strategy.from_draft(draft, task=sc.task, provenance=provenance)
            candidates.append(Candidate(strategy=strategy, scenario_id=sc.id))
            self.ctx.progress("candidate", title=draft.title)
        return {"candidates": candidates, "rejected": rejected}

    def admit(self, state: BuildState) -> dict[str, Any]:
        """Re-run the student on the failed scenario with the candidate; admit only if it now passes."""
        by_id = {sc.id: sc for sc in state.scenarios}
        admitted, rejected = list(state.admitted), list(state.rejected)
        for cand in state.candidates:
            sc = by_id[cand.scenario_id]
            retry = self.ctx.student.attempt(sc, instructions=self.ctx.task.instructions, strategies=[cand.strategy])
            verdict = judge_attempt(self.ctx.task, sc, retry)
            strategy = cand.strategy.model_copy(deep=True)
            strategy.effect.trials += 1
            strategy.effect.wins_with += int(verdict.correct)
            if verdict.correct:
                strategy.status, strategy.status_reason = "admitted", "fixed the failure it was written from"
                sid, action = self.ctx.library.add(strategy)
                admitted.append(sid)
                self.ctx.log.event("admitted", id=sid, action=action, title=strategy.title)
                self.ctx.progress("admitted", title=strategy.title, action=action)
            else:
                rejected.append({"scenario": sc.id, "reason": "did not fix the failure", "title": strategy.title})
                self.ctx.progress("rejected", title=strategy.title, reason="did not help on re-run")
        passed = sum(v.correct for v in state.verdicts)
        stats = [
            *state.stats,
            {
                "iteration": state.iteration,
                "passed": passed,
                "total": len(state.verdicts),
                "candidates": len(state.candidates),
                "admitted": len(admitted) - len(state.admitted),
            },
        ]
        return {"admitted": admitted, "rejected": rejected, "stats": stats, "iteration": state.iteration + 1}


def route_after_judge(state: BuildState) -> str:
    return "write_strategy" if any(not v.correct for v in state.verdicts) else "admit"


def should_continue(state: BuildState, iterations: int) -> bool:
    return state.iteration < iterations
