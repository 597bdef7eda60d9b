"""The loop's steps. Each node takes the state and returns only the fields it changes.

The parts (teacher, student, library, task) come in through ``BuildContext``; nothing here imports an
SDK, so the steps can be read and tested on their own. ``graph.py`` wires them into the diagram.
Teacher calls within a step run concurrently (up to ``teacher_concurrency``); calls to an in-process
student are serialized by its model lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, Field

from agentkd.admission import ablate_failure, admit_candidate
from agentkd.curriculum import Budget, Curriculum, allocate
from agentkd.errors import TeacherError
from agentkd.judge import judge as judge_attempt
from agentkd.judge import leaks_answer
from agentkd.prompts import render
from agentkd.runlog import RunLog
from agentkd.schema import Attempt, Provenance, Scenario, Strategy, StrategyDraft, Verdict
from agentkd.student import Student
from agentkd.tasks import TaskSource
from agentkd.tasks.base import run_attempt
from agentkd.teacher import Teacher

T = TypeVar("T")
R = TypeVar("R")


class StrategyStore(Protocol):
    def add(self, strategy: Strategy) -> tuple[str, str]: ...

    def get(self, strategy_id: str) -> Strategy | None: ...


@dataclass
class BuildConfig:
    """Knobs of one build."""

    iterations: int = 2
    batch_size: int = 6
    max_strategies_per_iteration: int = 3
    siblings: int = 2  # fresh scenarios of the same kind used to measure a candidate
    teacher_concurrency: int = 4
    student_concurrency: int = 1  # >1 only helps a student served with several slots
    teacher_solves: bool = True  # the teacher solves the failed scenario first, for contrast
    seed: int = 1234
    budget: Budget = field(default_factory=Budget)


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
    curriculum: Curriculum = Field(default_factory=Curriculum)
    plan: dict[str, int] = Field(default_factory=dict)
    stop_reason: str = ""


def pmap(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """``map`` over a thread pool, keeping order; sequential when ``workers`` is 1."""
    if workers <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


def describe_attempt(attempt: Attempt) -> str:
    """The student's attempt as the teacher sees it: its programs, their output, its answer."""
    lines = []
    for call in attempt.tool_calls:
        args = call.arguments.get("code") or call.arguments
        lines.append(f"Called {call.name}:\n{args}\nResult{' (error)' if call.error else ''}: {call.result[:400]}")
    lines.append(f"Final answer: {attempt.answer[:400] or '(none)'}")
    return "\n\n".join(lines)


class Nodes:
    """The steps of the loop, bound to a context."""

    def __init__(self, ctx: BuildContext) -> None:
        self.ctx = ctx

    def plan(self, state: BuildState) -> dict[str, Any]:
        """Check the budget, then split the next batch across categories by the curriculum's mix."""
        usage = self.ctx.log.totals("teacher")
        last = state.stats[-1] if state.stats else {}
        reason = self.ctx.config.budget.exceeded(
            teacher_tokens=usage.tokens,
            cost_usd=usage.cost_usd,
            last_gain=last.get("lift_sum"),
            last_tokens=last.get("teacher_tokens", 0),
        )
        if reason:
            self.ctx.progress("stop", reason=reason)
            return {"stop_reason": reason}
        plan = allocate(state.curriculum.mix(), self.ctx.config.batch_size)
        self.ctx.progress("plan", iteration=state.iteration, plan=plan, spend=usage.cost_usd, tokens=usage.tokens)
        return {"plan": plan}

    def generate_scenarios(self, state: BuildState) -> dict[str, Any]:
        cfg, task = self.ctx.config, self.ctx.task
        seed = cfg.seed + state.iteration * 7919
        targeted = getattr(task, "scenarios_for", None)
        if targeted is not None and state.plan:
            scenarios = [
                sc
                for cat, n in sorted(state.plan.items())
                for sc in targeted(cat, n, seed, state.curriculum.difficulty(cat))
            ]
        else:
            scenarios = task.scenarios("train", cfg.batch_size, seed=seed)
        self.ctx.progress("scenarios", iteration=state.iteration, n=len(scenarios))
        return {"scenarios": scenarios, "attempts": [], "verdicts": [], "candidates": []}

    def attempt(self, state: BuildState) -> dict[str, Any]:
        def one(sc: Scenario) -> Attempt:
            at = run_attempt(self.ctx.task, self.ctx.student, sc)
            self.ctx.progress("attempt", scenario=sc.id)
            return at

        return {"attempts": pmap(one, state.scenarios, self.ctx.config.student_concurrency)}

    def judge(self, state: BuildState) -> dict[str, Any]:
        verdicts = [
            judge_attempt(self.ctx.task, sc, at) for sc, at in zip(state.scenarios, state.attempts, strict=True)
        ]
        curriculum = state.curriculum.model_copy(deep=True)
        for sc, v in zip(state.scenarios, verdicts, strict=True):
            curriculum.record(sc.category, v.correct)
        record_use = getattr(self.ctx.library, "record_use", None)
        for at, v in zip(state.attempts, verdicts, strict=True):
            if record_use is not None and at.strategy_ids:
                record_use(at.strategy_ids, v.correct)
        self.ctx.progress("judged", passed=sum(v.correct for v in verdicts), total=len(verdicts))
        return {"verdicts": verdicts, "curriculum": curriculum}

    def write_strategy(self, state: BuildState) -> dict[str, Any]:
        failures = [
            (sc, at) for sc, at, v in zip(state.scenarios, state.attempts, state.verdicts, strict=True) if not v.correct
        ][: self.ctx.config.max_strategies_per_iteration]
        results = pmap(lambda f: self._write_one(*f), failures, self.ctx.config.teacher_concurrency)
        candidates = [r for r in results if isinstance(r, Candidate)]
        rejected = [*state.rejected, *(r for r in results if isinstance(r, dict))]
        return {"candidates": candidates, "rejected": rejected}

    def _write_one(self, sc: Scenario, at: Attempt) -> Candidate | dict[str, Any]:
        had = [s.render() for sid in at.strategy_ids if (s := self.ctx.library.get(sid))]
        try:
            solution = self._teacher_solution(sc) if self.ctx.config.teacher_solves else ""
            prompt = render(
                "strategy.md",
                question=sc.question,
                answer=sc.answer,
                attempt=describe_attempt(at),
                had=had,
                solution=solution,
            )
            draft = self.ctx.teacher.structured(
                [{"role": "user", "content": prompt}],
                StrategyDraft,
                purpose="write_strategy",
                check=lambda d: _leak_error(d, sc),
            )
        except TeacherError as exc:  # gave up after retries: skip this scenario, keep going
            self.ctx.progress("skipped", scenario=sc.id, reason=str(exc).splitlines()[0])
            return {"scenario": sc.id, "reason": f"teacher failed: {exc}"}
        if reason := leaks_answer(draft, sc):
            self.ctx.progress("rejected", title=draft.title, reason=reason)
            return {"scenario": sc.id, "reason": f"leaks the answer: {reason}", "title": draft.title}
        provenance = Provenance(
            teacher=self.ctx.teacher.model,
            student=self.ctx.student.model_spec,
            student_quantization=getattr(self.ctx.student, "quantization", ""),
            source_scenarios=[sc.id],
        )
        self.ctx.progress("candidate", title=draft.title)
        return Candidate(strategy=Strategy.from_draft(draft, task=sc.task, provenance=provenance), scenario_id=sc.id)

    def _teacher_solution(self, sc: Scenario) -> str:
        reply = self.ctx.teacher.complete(
            [{"role": "user", "content": render("solve.md", question=sc.question)}], purpose="solve", max_tokens=400
        )
        text = str(reply.get("content") or "")
        ok = judge_attempt(self.ctx.task, sc, Attempt(scenario_id=sc.id, answer=text)).correct
        return f"{text.strip()}\n({'this reaches the correct answer' if ok else 'this reaches a WRONG answer'})"

    def admit(self, state: BuildState) -> dict[str, Any]:
        """Measure each candidate with and without it on the failure and fresh siblings; admit if it helps."""
        by_id = {sc.id: sc for sc in state.scenarios}
        admitted, rejected = list(state.admitted), list(state.rejected)
        lift_sum = 0.0
        for cand in state.candidates:
            outcome = admit_candidate(self.ctx, cand.strategy, by_id[cand.scenario_id], state.iteration)
            if outcome.admitted_id:
                if outcome.admitted_id not in admitted:
                    admitted.append(outcome.admitted_id)
                lift_sum += outcome.strategy.effect.lift
            else:
                rejected.append({"scenario": cand.scenario_id, "reason": outcome.reason, "title": cand.strategy.title})
        for sc, at, v in zip(state.scenarios, state.attempts, state.verdicts, strict=True):
            if not v.correct and at.strategy_ids:
                ablate_failure(self.ctx, sc, at)
        usage = self.ctx.log.totals("teacher")
        spent_before = sum(s.get("teacher_tokens", 0) for s in state.stats)
        stats = [
            *state.stats,
            {
                "iteration": state.iteration,
                "passed": sum(v.correct for v in state.verdicts),
                "total": len(state.verdicts),
                "candidates": len(state.candidates),
                "admitted": len(admitted) - len(state.admitted),
                "lift_sum": lift_sum,
                "teacher_tokens": usage.tokens - spent_before,
                "cost_usd": usage.cost_usd,
                "time": time.time(),
            },
        ]
        return {"admitted": admitted, "rejected": rejected, "stats": stats}

    def update_curriculum(self, state: BuildState) -> dict[str, Any]:
        curriculum = state.curriculum.model_copy(deep=True)
        raised = curriculum.update_difficulty()
        if raised:
            self.ctx.progress("difficulty", raised=raised)
        return {"curriculum": curriculum, "iteration": state.iteration + 1}


def _leak_error(draft: StrategyDraft, sc: Scenario) -> str | None:
    reason = leaks_answer(draft, sc)
    return f"the entry must be general, but {reason}. Rewrite it without numbers from this problem." if reason else None


def route_after_judge(state: BuildState) -> str:
    return "write_strategy" if any(not v.correct for v in state.verdicts) else "admit"


def should_continue(state: BuildState, iterations: int) -> bool:
    return state.iteration < iterations and not state.stop_reason
