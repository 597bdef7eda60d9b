"""Admission by measured effect, with a stated rule: a candidate enters the library only if paired trials say it helps.

``measure_candidate`` runs the student on up to ``admission_items`` (default 8) fresh items of the
candidate's category, each with its usual retrieval and with the candidate added; items it solves
*sometimes* come first (``items.py``), and each trial records which kind of item it was. The candidate's own
failure is not one of them: the teacher wrote the entry from it, so it would favour the entry. With probing,
a candidate whose items hold fewer failures than the helps the test needs (5 at 0.05: a category the
student mostly passes, even after the pool grew) runs no trial: it is rejected as "not testable here".

``admit`` applies the rule of ``agentkd.library.curation``: the one-sided exact sign test on the discordant
pairs (helped: passed only with it; hurt: passed only without it) at level ``alpha`` (default 0.05), on at
least ``admission_items`` pairs, fewer only when the category has fewer items. A candidate that does not
help is admitted with probability at most ``alpha``, so ``alpha`` times the candidates tested bounds the
admissions expected by chance. Both functions work for any entry kind (strategy, guidance, example).

Every measured candidate is stored with its effect: admitted ones as "admitted", the others as "rejected"
(kept out of retrieval, listed by ``agentkd library list --status rejected``); the same text written again
is not measured again (testing until it passes would break that bound). Entries already in the
library keep being tested (``ablate_failure``) and retire by the same test the other way round.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from agentkd.distill.items import ItemKind, Probe, category_items, choose, passes, probe_items
from agentkd.library.curation import ALPHA, admissible, describe, net_bounds, p_helps
from agentkd.schema import Attempt, Effect, Scenario, Strategy

if TYPE_CHECKING:
    from agentkd.distill.context import BuildContext


class Trial(BaseModel):
    """One paired trial: the student on one item with and without the candidate."""

    scenario: str
    item: ItemKind  # what probing showed: solved "sometimes", "never" or "always" without the candidate
    passed_with: bool
    passed_without: bool


class Measurement(BaseModel):
    """A candidate's paired trials on items of its category."""

    candidate: str
    category: str
    iteration: int
    trials: list[Trial] = Field(default_factory=list)
    wanted: int = 8  # items asked for
    available: int = 0  # items the category offered (the rule asks for fewer only when it has fewer)
    stopped: bool = False  # measuring stopped once the rule could no longer admit (futility)
    cut: bool = False  # the build's wall-time budget ended measuring before every item ran
    failable: int | None = None  # probed items the student failed without it, when fewer than a win needs

    @property
    def effect(self) -> Effect:
        t = self.trials
        return Effect(trials=len(t), wins_with=sum(x.passed_with for x in t),
                      wins_without=sum(x.passed_without for x in t),
                      helped=sum(x.passed_with and not x.passed_without for x in t),
                      hurt=sum(x.passed_without and not x.passed_with for x in t))

    def kinds(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.trials:
            out[t.item] = out.get(t.item, 0) + 1
        return out


class Decision(BaseModel):
    """What the rule made of a measurement, and why."""

    admitted: bool
    reason: str
    p_value: float
    lower_bound: float  # net share of discordant pairs won, exact one-sided 1 - alpha bound
    alpha: float


class AdmissionOutcome(BaseModel):
    strategy: Strategy
    admitted_id: str | None
    reason: str
    measurement: Measurement | None = None
    decision: Decision | None = None


def _with(ctx: BuildContext, sc: Scenario, candidate: Strategy) -> list[Strategy]:
    """What the student retrieves for ``sc`` today, plus the candidate."""
    current = [s for s, _ in ctx.student.retrieve(sc.question, sc.task) if s.id != candidate.id]
    return [candidate, *current][: max(ctx.student.k, 1)]


def measure_candidate(ctx: BuildContext, candidate: Strategy, category: str, iteration: int,
                      source: Scenario | None = None, seen: Sequence[str] = ()) -> Measurement:
    """Paired trials of ``candidate`` on up to ``admission_items`` items of ``category``, never ``source``
    nor another problem the teacher wrote it from (``seen``).

    Measuring stops as soon as the rule can no longer admit the candidate, even if every remaining item
    went its way (futility stopping): that only ever rejects earlier, so the chance-admission rate is
    unchanged, and most candidates cost a few pairs instead of ``admission_items``. When the build's wall
    time runs out (``BuildContext.seconds_left``), no further item starts (``cut``); the items begun finish.
    The clock, not the outcomes, picks that point, so the sign test on the pairs run keeps its level. The
    runs go to the student as it frees a slot (``_measure``), so a stopped candidate costs at most the runs
    in flight beyond the pairs it needed.
    """
    n = ctx.config.admission_items
    unseen = {*seen, *([source.id] if source is not None else [])}
    if ctx.config.probe_temperature > 0:
        need = helps_needed(ctx.config.alpha)
        pool = [p for p in probe_items(ctx, category, n, iteration, source, failing=need)
                if p.scenario.id not in unseen]
        picked = choose(pool, n)
        chosen: list[Probe] | None = picked
        items: list[Scenario] = [p.scenario for p in picked]
        if (failable := sum(not p.passed for p in picked)) < need:  # no outcome could admit it: run nothing
            return Measurement(candidate=candidate.id, category=category, iteration=iteration, wanted=n,
                               available=len(pool), failable=failable)
    else:
        chosen = None
        items = [sc for sc in category_items(ctx, category, n, _seed(ctx, category, iteration), source)
                 if sc.id not in unseen]
    m = Measurement(candidate=candidate.id, category=category, iteration=iteration, wanted=n, available=len(items))
    _measure(ctx, candidate, items, chosen, m)
    return m


def _measure(ctx: BuildContext, candidate: Strategy, items: list[Scenario], chosen: list[Probe] | None,
             m: Measurement) -> None:
    """Run the trials into ``m``: the runs (each item's with-candidate run, then its run without unless a probe
    already gave it) go to the student ``student_concurrency`` at a time, the next one starting as soon as
    one ends, so a long episode holds one slot, not a whole chunk; at most ``ahead`` items run beyond the first
    undecided one (what a stop can waste). Items are decided in order: futility is checked as each item
    completes; the clock is read before each item's first run (never the first item's), and an item begun
    before the deadline is finished, so which items count depends on the clock alone."""
    per_item = 1 if chosen is not None else 2
    jobs = [(i, with_) for i in range(len(items)) for with_ in ((True,) if per_item == 1 else (True, False))]
    results: dict[tuple[int, bool], bool] = {}
    width, nxt, decided = max(1, ctx.config.student_concurrency), 0, 0
    ahead = width // per_item + 1
    running: dict[Future[bool], tuple[int, bool]] = {}
    pool = ThreadPoolExecutor(width, thread_name_prefix="agentkd-trials")
    try:
        while True:
            while not (m.cut or m.stopped) and nxt < len(jobs) and len(running) < width:
                i, with_ = jobs[nxt]
                if i > decided + ahead:
                    break
                first = with_ and i > 0
                if first and (left := ctx.seconds_left()) is not None and left <= 0:
                    m.cut = True
                    break
                strategies = _with(ctx, items[i], candidate) if with_ else None
                running[pool.submit(passes, ctx, items[i], strategies)] = (i, with_)
                nxt += 1
            if not running:
                return
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in done:
                results[running.pop(f)] = f.result()
            while not m.stopped and decided < len(items) and all(j in results for j in jobs if j[0] == decided):
                i, won = decided, results[(decided, True)]
                probe = chosen[i] if chosen is not None else Probe(items[i], results[(i, False)])
                m.trials.append(Trial(scenario=items[i].id, item=probe.kind, passed_with=won,
                                      passed_without=probe.passed))
                decided += 1
                rest = chosen[i + 1:] if chosen is not None else None
                can_help = sum(not p.passed for p in rest) if rest is not None else len(items) - i - 1
                if not _reachable(m.effect, can_help, ctx.config.alpha):
                    m.stopped = True  # the runs in flight finish (they hold the student), nothing more starts
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _seed(ctx: BuildContext, category: str, iteration: int) -> int:
    return ctx.config.seed + 104_729 * (iteration + 1) + zlib.crc32(category.encode()) % 10_000


def helps_needed(alpha: float) -> int:
    """The fewest helped items (none hurt) with which the sign test admits at level ``alpha``."""
    return next(k for k in range(1, 64) if admissible(Effect(trials=k, wins_with=k, helped=k), alpha))


def _reachable(effect: Effect, can_help: int, alpha: float) -> bool:
    """Whether the rule could still admit, if every remaining item the candidate could help went its way."""
    best = effect.model_copy(update={"trials": effect.trials + can_help, "wins_with": effect.wins_with + can_help,
                                     "helped": effect.helped + can_help})
    return admissible(best, alpha)


def admit(measurement: Measurement, alpha: float = ALPHA) -> Decision:
    """The admission rule: enough paired items, and the one-sided sign test says it helps at level ``alpha``."""
    effect = measurement.effect
    p, (lower, _) = p_helps(effect), net_bounds(effect, alpha)
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(measurement.kinds().items())) or "none"
    detail = f"{describe(effect, alpha)}; items: {kinds}"
    need = min(measurement.wanted, measurement.available)
    if measurement.failable is not None:
        return Decision(admitted=False, reason=f"not testable here: only {measurement.failable} of the "
                        f"{measurement.available} probed items of {measurement.category} fail without it, and "
                        f"the sign test needs {helps_needed(alpha)} it helps on to reach alpha={alpha}; no trial "
                        "was run", p_value=p, lower_bound=lower, alpha=alpha)
    if measurement.stopped:
        return Decision(admitted=False, reason=f"did not help: stopped after {effect.trials} items, when even "
                        f"winning every remaining one could not reach alpha={alpha}; {detail}", p_value=p,
                        lower_bound=lower, alpha=alpha)
    if measurement.cut:
        if effect.trials and admissible(effect, alpha):
            return Decision(admitted=True, reason=f"admitted: p={p:.3f} <= alpha={alpha} on the {effect.trials} of "
                            f"{need} items run before the wall-time budget ended; {detail}", p_value=p,
                            lower_bound=lower, alpha=alpha)
        return Decision(admitted=False, reason=f"undecided: the wall-time budget ended after {effect.trials} of "
                        f"{need} items (a longer --max-minutes measures it fully); {detail}", p_value=p,
                        lower_bound=lower, alpha=alpha)
    if need == 0 or effect.trials < need:
        return Decision(admitted=False, reason=f"did not help: too few items ({effect.trials} of {need}); {detail}",
                        p_value=p, lower_bound=lower, alpha=alpha)
    if not admissible(effect, alpha):
        return Decision(admitted=False, reason=f"did not help: p={p:.3f} > alpha={alpha}; {detail}", p_value=p,
                        lower_bound=lower, alpha=alpha)
    return Decision(admitted=True, reason=f"admitted: p={p:.3f} <= alpha={alpha}; {detail}", p_value=p,
                    lower_bound=lower, alpha=alpha)


def admit_candidate(ctx: BuildContext, candidate: Strategy, failed: Scenario, iteration: int,
                    seen: Sequence[str] = ()) -> AdmissionOutcome:
    """Measure ``candidate`` on items of ``failed``'s category, decide by the rule, and store it either way;
    ``seen``: the other problems it was written from, never measured on either."""
    strategy = candidate.model_copy(deep=True)
    existing = ctx.library.get(strategy.id)
    if existing is not None and existing.status == "admitted":  # a resumed run re-entering this step
        return AdmissionOutcome(strategy=existing, admitted_id=existing.id, reason="already admitted")
    if existing is not None and existing.status in ("rejected", "retired"):
        # the same text, written again from another failure: measuring it again would test it until it passes,
        # and the rule's rate of chance admissions (alpha per candidate) would no longer hold
        reason = f"not measured again: this text was {existing.status} before ({existing.status_reason})"
        ctx.log.event("skipped", id=existing.id, title=existing.title, entry_kind=existing.kind, reason=reason)
        ctx.progress("rejected", title=existing.title, reason=f"not measured again: already {existing.status}")
        return AdmissionOutcome(strategy=existing, admitted_id=None, reason=reason)
    m = measure_candidate(ctx, strategy, failed.category, iteration, source=failed, seen=seen)
    decision = admit(m, ctx.config.alpha)
    strategy.effect = m.effect
    strategy.provenance.source_scenarios += [t.scenario for t in m.trials]
    strategy.status = "admitted" if decision.admitted else "rejected"
    strategy.status_reason = decision.reason
    sid, action = ctx.library.add(strategy)
    trials = [t.model_dump() for t in m.trials]
    event = "admitted" if decision.admitted else "rejected"
    ctx.log.event(event, id=sid, action=action, title=strategy.title, entry_kind=strategy.kind, category=m.category,
                  effect=strategy.effect.model_dump(), p_value=decision.p_value, alpha=decision.alpha, trials=trials)
    note = getattr(ctx.library, "note_measurement", None)
    if note is not None:
        note(sid, decision.reason, trials=trials)
    if not decision.admitted:
        ctx.progress("rejected", title=strategy.title, reason=decision.reason)
        return AdmissionOutcome(strategy=strategy, admitted_id=None, reason=decision.reason, measurement=m,
                                decision=decision)
    ctx.progress("admitted", title=strategy.title, action=action, lift=strategy.effect.lift)
    return AdmissionOutcome(strategy=strategy, admitted_id=sid, reason=decision.reason, measurement=m,
                            decision=decision)


def ablate_failure(ctx: BuildContext, scenario: Scenario, attempt: Attempt) -> dict[str, Any] | None:
    """Re-run a failure without the entries it used; a pass counts against them."""
    record = getattr(ctx.library, "record_trial", None)
    if record is None or not attempt.strategy_ids:
        return None
    passed_without = passes(ctx, scenario, [])
    for sid in attempt.strategy_ids:
        record(sid, won_with=False, won_without=passed_without)
    if passed_without:
        ctx.progress("harmful", ids=attempt.strategy_ids, scenario=scenario.id)
    return {"scenario": scenario.id, "passed_without": passed_without}
