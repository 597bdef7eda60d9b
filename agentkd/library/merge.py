"""How two near-duplicate library entries become one: keep the better-evidenced text, pool the rest."""

from __future__ import annotations

from agentkd.schema import Strategy, now

_STATUS_RANK = {"rejected": 0, "retired": 0, "candidate": 1, "admitted": 2}


def evidence(s: Strategy) -> tuple[bool, bool, float, int, int, int, int]:
    """Sort key, higher is better: not a rejected candidate, measured at all, then lift lower bound, trials,
    status, successes, uses.

    Measured beats unmeasured even when the measured lift is negative: a retired entry that re-appears
    from the teacher is folded into the record that says it did not help, rather than starting afresh.
    A rejected candidate (kept only as the record of its measurement) never absorbs another entry: an
    admitted near-duplicate must not vanish into the record of one that failed the admission rule.
    """
    e = s.effect
    return (s.status != "rejected", e.trials > 0, e.lift_lower_bound, e.trials, _STATUS_RANK[s.status],
            s.successes, s.uses)


def _union(first: list[str], second: list[str]) -> list[str]:
    return list(dict.fromkeys([*first, *second]))


def merge(existing: Strategy, new: Strategy) -> tuple[Strategy, Strategy]:
    """Merge two near-duplicates; returns (kept, dropped).

    The kept entry is the one with more evidence (the existing one on a tie) and keeps its text, effect,
    status and review. It gains the other's source scenarios, tasks and domains, their uses and successes
    are added up, and its version becomes one more than the higher of the two.
    """
    keep, drop = (new, existing) if evidence(new) > evidence(existing) else (existing, new)
    provenance = keep.provenance.model_copy(
        update={
            "source_scenarios": _union(keep.provenance.source_scenarios, drop.provenance.source_scenarios),
            "version": max(keep.provenance.version, drop.provenance.version) + 1,
            "updated": now(),
        }
    )
    kept = keep.model_copy(
        update={
            "provenance": provenance,
            "tasks": _union(keep.tasks, drop.tasks),
            "domains": _union(keep.domains, drop.domains),
            "uses": keep.uses + drop.uses,
            "successes": keep.successes + drop.successes,
        }
    )
    return kept, drop
