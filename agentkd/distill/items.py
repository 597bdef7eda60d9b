"""Where a candidate can make a difference: items of its category that the student solves *sometimes*.

An item the student always passes can only show harm, and one it never passes shows help only when the
entry fixes it outright; an item it solves sometimes is where an entry tips the balance. ``probe_items``
draws a pool of fresh items of the category and runs the student on each twice without the candidate: as
configured (that run is the "without" arm of the item's pair) and once sampled at ``probe_temperature``.
Each item is labelled by what the two runs show: "sometimes" (they disagree), "never" (both failed) or
"always" (both passed). ``choose`` measures the "sometimes" items first, then "never", then "always", and
every trial records which kind its item was. The pool is probed once per category and round and shared by
that round's candidates of the category.
"""

from __future__ import annotations

import copy
import threading
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from agentkd.distill.grading import judge
from agentkd.schema import Scenario, Strategy
from agentkd.tasks.base import run_attempt

if TYPE_CHECKING:
    from agentkd.distill.context import BuildContext

ItemKind = Literal["sometimes", "never", "always"]
POOL_FACTOR = 1.5  # items probed per item measured: room to prefer the discriminating ones
MAX_POOL_FACTOR = 4.0  # while too few of them fail, the pool grows up to this many items per item measured
_ORDER: dict[str, int] = {"sometimes": 0, "never": 1, "always": 2}
_LOCK = threading.Lock()  # guards the per-key locks below (a round's branches probe in parallel)
_KEY_LOCKS: dict[tuple[int, str, int], threading.Lock] = {}


@dataclass(frozen=True)
class Probe:
    """One item of the pool and what the student did on it without the candidate."""

    scenario: Scenario
    passed: bool  # as configured (the pair's "without" arm)
    sampled: bool | None = None  # one run at probe_temperature; None when probing is off

    @property
    def kind(self) -> ItemKind:
        if self.sampled is not None and self.sampled != self.passed:
            return "sometimes"
        return "always" if self.passed else "never"


def passes(ctx: BuildContext, sc: Scenario, strategies: list[Strategy] | None, student: object = None) -> bool:
    """One episode of the student (its usual retrieval when ``strategies`` is None), graded."""
    with ctx.student_turns:
        attempt = run_attempt(ctx.task, student or ctx.student, sc, strategies=strategies)
    return judge(ctx.task, sc, attempt).correct


def category_items(ctx: BuildContext, category: str, n: int, seed: int, source: Scenario | None = None
                   ) -> list[Scenario]:
    """Up to ``n`` fresh items of ``category`` (never ``source`` itself): the source's sibling generator,
    its draw by category, or its train split filtered to the category (the first the task can do)."""
    task = ctx.task
    items = task.siblings(source, n + 1, seed) if source is not None else None
    if items is None:
        items = task.scenarios_for(category, n + 1, seed, source.difficulty if source else 1)
    if items is None:
        items = task.scenarios("train", 3 * (n + 1), seed=seed)
    out = {s.id: s for s in items if s.category == category and (source is None or s.id != source.id)}
    return list(out.values())[:n]


def _sampler(ctx: BuildContext, sc: Scenario) -> object:
    """The student sampling at probe_temperature with a seed of its own per item (same llm, other knobs)."""
    student = copy.copy(ctx.student)
    student.temperature = ctx.config.probe_temperature
    student.seed = ctx.config.seed + zlib.crc32(sc.id.encode()) % 100_000
    return student


def probe_items(ctx: BuildContext, category: str, n: int, iteration: int, source: Scenario | None = None,
                failing: int = 0) -> list[Probe]:
    """The round's probed pool for ``category`` (probed once, shared by the round's candidates).

    ``failing``: how many items the pool should hold that the student fails as configured (the only items
    a candidate can be seen to help on). While it holds fewer, as in a category the student mostly passes,
    the pool grows by ``n`` items at a time, up to ``MAX_POOL_FACTOR`` x ``n`` or what the category has.
    """
    key = (category, iteration)
    with _LOCK:
        lock = _KEY_LOCKS.setdefault((id(ctx.probes), category, iteration), threading.Lock())
    with lock:
        if key not in ctx.probes:
            seed = ctx.config.seed + 104_729 * (iteration + 1) + zlib.crc32(category.encode()) % 10_000
            size, cap = max(n, round(n * POOL_FACTOR)), max(n, round(n * MAX_POOL_FACTOR))
            probes: list[Probe] = []
            while True:
                seen = {p.scenario.id for p in probes}
                drawn = category_items(ctx, category, size, seed, source)
                fresh = [sc for sc in drawn if sc.id not in seen][: size - len(probes)]
                for sc in fresh:
                    passed = passes(ctx, sc, None)
                    sampled = passes(ctx, sc, None, _sampler(ctx, sc)) if ctx.config.probe_temperature > 0 else None
                    probes.append(Probe(sc, passed, sampled))
                if not fresh or size >= cap or sum(not p.passed for p in probes) >= failing:
                    break
                size = min(size + n, cap)
            ctx.probes[key] = probes
        return list(ctx.probes[key])


def choose(probes: list[Probe], n: int) -> list[Probe]:
    """The ``n`` items to measure on: "sometimes" first, then "never", then "always" (pool order within each)."""
    return sorted(probes, key=lambda p: _ORDER[p.kind])[:n]
