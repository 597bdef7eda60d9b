"""The loop's steps. Each node takes the state and returns only the fields it changes.

The parts (teacher, student, library, task) come in through ``BuildContext``, built by ``agentkd.parts``
(or by a test, with a scripted teacher); ``graph.py`` wires the steps into the diagram.
A round's scenarios go through attempt → judge → write_strategy → admit as parallel branches, up to
``teacher_concurrency`` at once, so teacher waits overlap student work; the student's episodes are
serialized (``student_concurrency`` at a time: 1 for the in-process model, more for a server with slots).
"""

from __future__ import annotations

import operator
import threading
import time
from dataclasses import replace
from itertools import zip_longest
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from agentkd.distill.admission import ablate_failure, admit_candidate
from agentkd.distill.context import BuildContext, StrategyStore
from agentkd.distill.curriculum import Curriculum, allocate
from agentkd.distill.flight import Flight
from agentkd.distill.grading import judge as judge_attempt
from agentkd.distill.harvest import Harvest, example_categories, harvest_example, student_example
from agentkd.distill.writing import (
    MAX_FAILURES,
    Failure,
    describe_attempt,
    harvest_text,
    peers_from,
    solve,
    write_draft,
)
from agentkd.errors import TeacherError
from agentkd.schema import Attempt, Provenance, Scenario, Strategy, Verdict
from agentkd.tasks.base import as_task, run_attempt


class Candidate(BaseModel):
    strategy: Strategy
    scenario_id: str
    solution: str = ""  # the teacher's solution of the failure, kept so a later round's write reuses it
    seen: list[str] = Field(default_factory=list)  # every scenario the teacher wrote it from


class Outcome(BaseModel):
    """One scenario's trip through a round: the attempt, its verdict, and what became of the entry written."""

    iteration: int
    index: int  # its place in the round's batch (branches finish in any order)
    scenario: Scenario
    attempt: Attempt
    verdict: Verdict
    candidate: str = ""  # title of the entry the teacher wrote from it, if any
    solution: str = ""  # the teacher's solution of it, when a write computed one
    admitted: str | None = None
    rejected: dict[str, Any] | None = None
    lift: float = 0.0
    wrote: bool = False  # granted one of the round's writes (the cap counts these when a killed round resumes)


class ScenarioState(BaseModel):
    """A branch of the round: one scenario through attempt → judge → write_strategy → admit."""

    iteration: int
    index: int
    scenario: Scenario
    attempt: Attempt | None = None
    verdict: Verdict | None = None
    write: bool = False  # failed, and within the round's cap on entries written
    peers: list[Failure] = Field(default_factory=list)  # earlier rounds' failures of its category (writing.py)
    spread: int = 1  # categories in the round's batch: each gets an equal share of the round's writes
    candidate: Candidate | None = None
    rejected: dict[str, Any] | None = None
    outcomes: list[Outcome] = Field(default_factory=list)  # the branch's result: one item


class ScenarioOutput(BaseModel):
    """What a branch hands back to the round (collected by ``BuildState.outcomes``'s reducer)."""

    outcomes: list[Outcome] = Field(default_factory=list)


class RoundStats(BaseModel):
    """One round's figures, for the report, the plot and the budget's gain-per-token stop."""

    iteration: int
    passed: int
    total: int
    candidates: int = 0
    admitted: int = 0  # entries new this round
    lift_sum: float = 0.0
    teacher_tokens: int = 0  # spent this round
    cost_usd: float = 0.0  # spent so far
    time: float = 0.0

    def __getitem__(self, name: str) -> Any:  # stats[0]["passed"], as callers of the old dicts wrote it
        return getattr(self, name)


class BuildState(BaseModel):
    """The loop's state; every field is checkpointable."""

    iteration: int = 0
    scenarios: list[Scenario] = Field(default_factory=list)  # this round's
    outcomes: Annotated[list[Outcome], operator.add] = Field(default_factory=list)  # every round's, appended
    stats: list[RoundStats] = Field(default_factory=list)
    curriculum: Curriculum = Field(default_factory=Curriculum)
    plan: dict[str, int] = Field(default_factory=dict)
    stop_reason: str = ""

    def round(self, iteration: int | None = None) -> list[Outcome]:
        """One round's outcomes in batch order (the current round's by default)."""
        it = self.iteration if iteration is None else iteration
        return sorted((o for o in self.outcomes if o.iteration == it), key=lambda o: o.index)

    @property
    def admitted(self) -> list[str]:
        return list(dict.fromkeys(o.admitted for o in self.outcomes if o.admitted))

    @property
    def rejected(self) -> list[dict[str, Any]]:
        return [o.rejected for o in self.outcomes if o.rejected]


class _SerializedWrites:
    """The library with its writes serialized: a round's scenarios run in parallel threads."""

    WRITES = frozenset({"add", "record_use", "record_trial", "note_measurement"})

    def __init__(self, store: StrategyStore) -> None:
        self._store, self._lock = store, threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if name not in self.WRITES:
            return attr

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return locked


class Nodes:
    """The steps of the loop, bound to a context.

    ``plan``, ``generate_scenarios`` and ``update_curriculum`` run once per round; ``attempt``, ``judge``,
    ``write_strategy`` and ``admit`` run once per scenario, in branches that overlap: while the teacher
    writes for one failure, the student attempts the next scenario or measures an earlier candidate.
    """

    def __init__(self, ctx: BuildContext) -> None:
        self.ctx = replace(ctx, library=_SerializedWrites(ctx.library))
        self._writes: dict[int, int] = {}  # entries granted per round (the cap applies first come, first served)
        self._category_writes: dict[tuple[int, str], int] = {}  # per (round, category): the share granted
        self._writes_lock = threading.Lock()
        self._solutions: dict[str, str] = {}  # scenario id -> the teacher's solution, computed once per build
        self._flight = Flight()  # the candidates being written or measured, and what one costs here
        self._out_of_time = False

    # --- once per round ---

    def plan(self, state: BuildState) -> dict[str, Any]:
        """Check the budget, then split the next batch across categories by the curriculum's mix."""
        usage = self.ctx.log.totals("teacher")
        last = state.stats[-1] if state.stats else None
        reason = self.ctx.config.budget.exceeded(
            teacher_tokens=usage.tokens,
            cost_usd=usage.cost_usd,
            last_gain=last.lift_sum if last else None,
            last_tokens=last.teacher_tokens if last else 0,
        )
        reason = reason or self._no_time_left()
        if reason:
            self.ctx.progress("stop", reason=reason)
            return {"stop_reason": reason}
        covered = self._covered(state)
        mix = {c: w for c, w in state.curriculum.mix(self.ctx.task.categories("train")).items() if c not in covered}
        plan = allocate(mix, self.ctx.config.batch_size)
        self.ctx.progress("plan", iteration=state.iteration, plan=plan, spend=usage.cost_usd, tokens=usage.tokens)
        return {"plan": plan}

    def generate_scenarios(self, state: BuildState) -> dict[str, Any]:
        cfg, task = self.ctx.config, self.ctx.task
        seed = cfg.seed + state.iteration * 7919
        covered = self._covered(state)
        plan = {c: n for c, n in state.plan.items() if c not in covered}
        # the source's draws aimed at the planned categories (None: it cannot draw by category)
        drawn = [task.scenarios_for(cat, n, seed, state.curriculum.difficulty(cat)) for cat, n in sorted(plan.items())]
        if drawn and all(d is not None for d in drawn):
            # one of each category before a second of any; a task that lists its categories has them all in
            # the plan, else half the batch stays a fresh draw, to find categories the curriculum has not met
            share = cfg.batch_size if task.categories("train") else max(cfg.batch_size // 2, 1)
            aimed = [sc for tier in zip_longest(*(d or [] for d in drawn)) for sc in tier if sc is not None][:share]
            fresh = [sc for sc in task.scenarios("train", cfg.batch_size * 2, seed=seed + 1)
                     if sc.category not in covered and sc.id not in {a.id for a in aimed}]
            scenarios = aimed + fresh[: cfg.batch_size - len(aimed)]
        else:
            scenarios = task.scenarios("train", cfg.batch_size, seed=seed)
        self.ctx.progress("scenarios", iteration=state.iteration, n=len(scenarios))
        return {"scenarios": scenarios}

    def _covered(self, state: BuildState) -> set[str]:
        """Categories that already have an admitted worked example (this build's or the library's): they need
        no more scenarios (none, where a category is a broad kind of item that one example does not cover)."""
        if not as_task(self.ctx.task).example_covers_category:
            return set()
        covered = {o.scenario.category for o in state.outcomes if o.admitted and o.admitted.startswith("e-")}
        return covered | (example_categories(self.ctx.library, self.ctx.task.name) or set())

    def update_curriculum(self, state: BuildState) -> dict[str, Any]:
        """Close the round: pass rates per category, library use counts, difficulty, and the round's figures."""
        outcomes = state.round()
        curriculum = state.curriculum.model_copy(deep=True)
        record_use = getattr(self.ctx.library, "record_use", None)
        for o in outcomes:
            curriculum.record(o.scenario.category, o.verdict.correct)
            if record_use is not None and o.attempt.strategy_ids:
                record_use(o.attempt.strategy_ids, o.verdict.correct)
        raised = curriculum.update_difficulty()
        if raised:
            self.ctx.progress("difficulty", raised=raised)
        usage = self.ctx.log.totals("teacher")
        spent_before = sum(s.teacher_tokens for s in state.stats)
        earlier = [o.admitted for o in state.outcomes if o.admitted and o.iteration < state.iteration]
        row = RoundStats(
            iteration=state.iteration,
            passed=sum(o.verdict.correct for o in outcomes),
            total=len(outcomes),
            candidates=sum(bool(o.candidate) for o in outcomes),
            admitted=len({o.admitted for o in outcomes if o.admitted} - set(earlier)),  # new entries only
            lift_sum=sum(o.lift for o in outcomes),
            teacher_tokens=usage.tokens - spent_before,
            cost_usd=usage.cost_usd,
            time=time.time(),
        )
        return {"curriculum": curriculum, "iteration": state.iteration + 1, "stats": [*state.stats, row]}

    # --- once per scenario ---

    def attempt(self, state: ScenarioState) -> dict[str, Any]:
        with self.ctx.student_turns:
            at = run_attempt(self.ctx.task, self.ctx.student, state.scenario)
        self.ctx.progress("attempt", scenario=state.scenario.id)
        return {"attempt": at}

    def judge(self, state: ScenarioState) -> dict[str, Any]:
        assert state.attempt is not None
        verdict = judge_attempt(self.ctx.task, state.scenario, state.attempt)
        self.ctx.progress("judged", passed=int(verdict.correct), total=1)
        write = not verdict.correct and self._grant_write(state.iteration, state.scenario.category, state.spread)
        return {"verdict": verdict, "write": write}

    def resume_writes(self, iteration: int, granted: int) -> None:
        """A killed round resumes: ``granted`` of its writes were given before the kill (``graph.run`` counts
        them from the checkpoint), so the cap counts on from there instead of starting again."""
        with self._writes_lock:
            self._writes[iteration] = max(self._writes.get(iteration, 0), granted)

    def _grant_write(self, iteration: int, category: str = "", spread: int = 1) -> bool:
        """One of the round's writes, first come first served, at most ``max_strategies`` in all and an equal
        share per category of the round's ``spread`` categories (so 3 writes over 3 categories cover 3, not
        one twice); a resumed round counts its total again (``resume_writes``), not its shares."""
        cap = self.ctx.config.max_strategies_per_iteration
        share = -(-cap // max(spread, 1))
        with self._writes_lock:
            granted = self._writes.get(iteration, 0)
            if granted >= cap or self._category_writes.get((iteration, category), 0) >= share:
                return False
            if (reason := self._no_time_left(len(self._flight))) is not None:
                if not self._out_of_time:
                    self._out_of_time = True
                    self.ctx.progress("stop", reason=f"no new candidates: {reason}")
                return False
            self._writes[iteration] = granted + 1
            self._category_writes[(iteration, category)] = self._category_writes.get((iteration, category), 0) + 1
            return True

    def candidate_seconds(self) -> float:
        """What one candidate costs here: the time candidates were in flight per decision (``flight.py``)."""
        return self._flight.seconds()

    def _no_time_left(self, in_flight: int = 0) -> str | None:
        """Why one more candidate cannot start and be decided within the wall-time budget beside ``in_flight``
        others (counted half done: they share the student with it), or None."""
        left = self.ctx.config.budget.remaining()
        if left is None:
            return None
        each = self.candidate_seconds()
        kept, need = self.ctx.reserve(), each * (1 + in_flight / 2)
        if left - kept >= need:
            return None
        beside = f" beside {in_flight} in flight (~{need:.0f}s)" if in_flight else ""
        return (f"wall-time budget: {max(left - kept, 0):.0f}s left after the {kept:.0f}s kept for the with-library "
                f"arm, a candidate takes ~{each:.0f}s here{beside} (build_minutes, --max-minutes)")

    def write_strategy(self, state: ScenarioState) -> dict[str, Any]:
        assert state.attempt is not None
        self._flight.began(state.scenario.id)
        result = self._write_one(state.scenario, state.attempt, state.peers)
        if not isinstance(result, Candidate):  # nothing to decide: it no longer counts as in flight
            self._flight.ended(state.scenario.id, decided=False)
        else:  # until it is decided, the with-library arm's share counts it as admitted (the reserve)
            self.ctx.pending[result.strategy.id] = result.strategy
        return {"candidate": result} if isinstance(result, Candidate) else {"rejected": result}

    def _writes_prose(self) -> bool:
        """Whether a failure without a verified example gets a written entry (``Settings.prose``)."""
        mode = self.ctx.config.prose
        if mode in ("on", "off"):
            return mode == "on"
        return bool(as_task(self.ctx.task).written_entries) or not self.ctx.config.examples

    def _write_one(self, sc: Scenario, at: Attempt, peers: list[Failure]) -> Candidate | dict[str, Any]:
        """A verified worked example of ``sc`` if the harvest finds one, else an entry written from ``sc``
        and its category's earlier failures (``writing.py``)."""
        had = [s.render() for sid in at.strategy_ids if (s := self.ctx.library.get(sid))]
        provenance = Provenance(
            teacher=self.ctx.teacher.model,
            student=self.ctx.student.model_spec,
            student_quantization=getattr(self.ctx.student, "quantization", ""),
            source_scenarios=[sc.id],
        )
        harvest = None
        if self.ctx.config.examples:  # a verified program is what a small student can use best
            harvest = harvest_example(self.ctx, sc, tries=self.ctx.config.example_tries)
            if harvest.example is None and (own := student_example(self.ctx, sc)) is not None:
                harvest = Harvest(own, own.program, own.output, "verified (the student's own run)")
            if harvest.example is not None:
                self.ctx.progress("candidate", title=f"worked example ({sc.category}, by {harvest.example.solver})")
                seen = list(dict.fromkeys([sc.id, *([harvest.solved.id] if harvest.solved else [])]))
                provenance.source_scenarios = seen  # the failure, and the sibling it solves when not the failure
                return Candidate(strategy=Strategy.from_example(harvest.example, task=sc.task, provenance=provenance),
                                 scenario_id=sc.id, solution=harvest_text(harvest) if seen == [sc.id] else "",
                                 seen=seen)
        if not self._writes_prose():
            off = "no verified worked example, and prose entries are off for this task (the prose setting)"
            self.ctx.progress("skipped", scenario=sc.id, reason=off)
            return {"scenario": sc.id, "reason": off}
        # the harvest took time, and a written entry shares the student with the candidates in flight: it
        # starts only if they all still fit (else it would cut their measurements short at the deadline)
        if (reason := self._no_time_left(max(len(self._flight) - 1, 0))) is not None:
            self.ctx.progress("skipped", scenario=sc.id, reason=f"no written entry: {reason}")
            return {"scenario": sc.id, "reason": f"no time left for a written entry: {reason}"}
        try:
            failures = [Failure(scenario=sc, attempt=describe_attempt(at), solution=solve(self.ctx, sc, harvest))]
            for p in [p for p in peers if p.scenario.id != sc.id][: MAX_FAILURES - 1]:
                # an earlier failure not yet solved is solved once, here
                solution = p.solution or self._solutions.get(p.scenario.id) or solve(self.ctx, p.scenario)
                self._solutions[p.scenario.id] = solution
                failures.append(p.model_copy(update={"solution": solution}))
            draft = write_draft(self.ctx, failures, had)
        except TeacherError as exc:  # gave up after retries: skip this scenario, keep going
            self.ctx.progress("skipped", scenario=sc.id, reason=str(exc).splitlines()[0])
            return {"scenario": sc.id, "reason": f"teacher failed: {exc}"}
        seen = [f.scenario.id for f in failures]
        provenance.source_scenarios = list(seen)
        self.ctx.progress("candidate", title=draft.title, failures=len(failures))
        return Candidate(strategy=Strategy.from_draft(draft, task=sc.task, provenance=provenance), scenario_id=sc.id,
                         solution=failures[0].solution, seen=seen)

    def admit(self, state: ScenarioState) -> dict[str, Any]:
        """Measure the candidate with and without it on the failure and fresh siblings, and admit it if it helps.

        A failure that used library entries is also re-run without them (evidence against those entries).
        Every branch ends here, handing its outcome to the round.
        """
        sc, at, verdict = state.scenario, state.attempt, state.verdict
        assert at is not None and verdict is not None
        outcome = Outcome(iteration=state.iteration, index=state.index, scenario=sc, attempt=at, verdict=verdict,
                          rejected=state.rejected, wrote=state.write)
        if state.candidate is not None:
            cand = state.candidate.strategy
            result = admit_candidate(self.ctx, cand, sc, state.iteration, seen=state.candidate.seen)
            self.ctx.pending.pop(cand.id, None)
            outcome.candidate, outcome.solution = cand.title, state.candidate.solution
            self._flight.ended(sc.id, decided=True)
            if result.admitted_id:
                outcome.admitted, outcome.lift = result.admitted_id, result.strategy.effect.lift
            else:
                outcome.rejected = {"scenario": sc.id, "reason": result.reason, "title": cand.title}
        if not verdict.correct and at.strategy_ids:
            ablate_failure(self.ctx, sc, at)
        return {"outcomes": [outcome]}


def route_after_judge(state: ScenarioState) -> Literal["write_strategy", "admit"]:
    return "write_strategy" if state.write else "admit"


def fan_out(state: BuildState) -> list[ScenarioState]:
    """The round's branches, one per scenario, each with its category's earlier failures to write from."""
    failures = [(o.iteration, Failure(scenario=o.scenario, attempt=describe_attempt(o.attempt), solution=o.solution))
                for o in state.outcomes if not o.verdict.correct]
    spread = len({sc.category for sc in state.scenarios})
    return [ScenarioState(iteration=state.iteration, index=i, scenario=sc, spread=spread,
                          peers=peers_from(failures, sc.category, state.iteration))
            for i, sc in enumerate(state.scenarios)]


def should_continue(state: BuildState, iterations: int) -> bool:
    return state.iteration < iterations and not state.stop_reason
