"""Admission by measured effect: a candidate enters the library only if re-running the student shows it helps.

For a candidate written from a failed scenario we run the student on that scenario and on ``k`` fresh
siblings (same task and category), with its usual retrieval and with the candidate added. The paired
outcomes are the entry's measured ``Effect``. It is admitted when it wins more than it loses overall and
does not hurt the siblings; the effect is stored with the entry either way.

Entries already in the library are checked the other way round: when the student fails while using
some, it is re-run without them; a pass without them is a paired trial against those entries, and the
library retires entries whose measured effect turns negative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentkd.distill.grading import judge
from agentkd.schema import Attempt, Scenario, Strategy
from agentkd.tasks.base import run_attempt

if TYPE_CHECKING:
    from agentkd.distill.context import BuildContext


@dataclass
class AdmissionOutcome:
    strategy: Strategy
    admitted_id: str | None
    reason: str


def siblings(ctx: BuildContext, scenario: Scenario, k: int, iteration: int) -> list[Scenario]:
    """Fresh scenarios like ``scenario``: from the source's own sibling generator if it has one."""
    if k <= 0:
        return []
    seed = ctx.config.seed + 104_729 * (iteration + 1) + int(scenario.id.encode().hex()[-6:], 16) % 10_000
    make = getattr(ctx.task, "siblings", None)
    if make is not None:
        return list(make(scenario, k, seed))[:k]
    return [s for s in ctx.task.scenarios("train", k + 1, seed=seed) if s.id != scenario.id][:k]


def _passes(ctx: BuildContext, sc: Scenario, strategies: list[Strategy] | None) -> bool:
    with ctx.student_turns:
        attempt = run_attempt(ctx.task, ctx.student, sc, strategies=strategies)
    return judge(ctx.task, sc, attempt).correct


def _with(ctx: BuildContext, sc: Scenario, candidate: Strategy) -> list[Strategy]:
    """What the student retrieves for ``sc`` today, plus the candidate."""
    current = [s for s, _ in ctx.student.retrieve(sc.question, sc.task) if s.id != candidate.id]
    return [candidate, *current][: max(ctx.student.k, 1)]


def admit_candidate(ctx: BuildContext, candidate: Strategy, failed: Scenario, iteration: int) -> AdmissionOutcome:
    """Measure ``candidate`` and store it: admitted when it helps, else kept out with the reason logged."""
    strategy = candidate.model_copy(deep=True)
    existing = ctx.library.get(strategy.id)
    if existing is not None and existing.status == "admitted":  # a resumed run re-entering this step
        return AdmissionOutcome(existing, existing.id, "already admitted")
    # the failure itself: the student failed without the candidate (that is why it was written)
    fixed = _passes(ctx, failed, _with(ctx, failed, strategy))
    sib_with = sib_without = 0
    for sib in siblings(ctx, failed, ctx.config.siblings, iteration):
        sib_without += _passes(ctx, sib, None)
        sib_with += _passes(ctx, sib, _with(ctx, sib, strategy))
        strategy.provenance.source_scenarios.append(sib.id)
    trials = 1 + ctx.config.siblings
    strategy.effect.trials += trials
    strategy.effect.wins_with += int(fixed) + sib_with
    strategy.effect.wins_without += sib_without
    helps = strategy.effect.wins_with > strategy.effect.wins_without and sib_with >= sib_without
    detail = f"fixed failure: {fixed}; siblings {sib_with}/{ctx.config.siblings} with vs {sib_without} without"
    if not helps:
        ctx.progress("rejected", title=strategy.title, reason=f"did not help ({detail})")
        ctx.log.event("rejected", title=strategy.title, detail=detail, effect=strategy.effect.model_dump())
        return AdmissionOutcome(strategy, None, f"did not help: {detail}")
    strategy.status, strategy.status_reason = "admitted", f"measured lift {strategy.effect.lift:+.2f} ({detail})"
    sid, action = ctx.library.add(strategy)
    ctx.log.event("admitted", id=sid, action=action, title=strategy.title, effect=strategy.effect.model_dump())
    ctx.progress("admitted", title=strategy.title, action=action, lift=strategy.effect.lift)
    return AdmissionOutcome(strategy, sid, detail)


def ablate_failure(ctx: BuildContext, scenario: Scenario, attempt: Attempt) -> dict[str, Any] | None:
    """Re-run a failure without the entries it used; a pass counts against them."""
    record = getattr(ctx.library, "record_trial", None)
    if record is None or not attempt.strategy_ids:
        return None
    passed_without = _passes(ctx, scenario, [])
    for sid in attempt.strategy_ids:
        record(sid, won_with=False, won_without=passed_without)
    if passed_without:
        ctx.progress("harmful", ids=attempt.strategy_ids, scenario=scenario.id)
    return {"scenario": scenario.id, "passed_without": passed_without}
