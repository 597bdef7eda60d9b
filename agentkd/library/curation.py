"""Curation by measured effect and by people: paired trials that retire harmful entries, and review decisions.

The retirement rule (``harmful``): an entry is retired automatically once it has at least ``MIN_TRIALS``
paired trials and the upper end of its one-sided ~90% confidence interval on the lift is below zero,
i.e. even the optimistic reading of the evidence says the student does worse with it than without it.
Six trials is the fewest at which an entry that lost every trial (lift -1, upper bound -0.48) is retired,
while one that lost 3-1 (lift -0.33, upper bound +0.09) is kept measuring.
"""

from __future__ import annotations

import getpass
from typing import Any, Literal

from agentkd.errors import LibraryError
from agentkd.library.history import History
from agentkd.schema import Effect, Strategy

MIN_TRIALS = 6
EDITABLE = ("kind", "title", "trigger", "body", "tool_hints", "tasks", "domains")
Decision = Literal["approve", "edit", "retire"]
Status = Literal["candidate", "admitted", "retired"]


def harmful(effect: Effect) -> bool:
    """The retirement rule: enough paired trials, and even the lift's upper bound is negative."""
    return effect.trials >= MIN_TRIALS and effect.lift_upper_bound < 0


def describe(effect: Effect) -> str:
    """The effect in words, for reasons and tables."""
    return (
        f"lift {effect.lift:+.2f} (90% bounds {effect.lift_lower_bound:+.2f}..{effect.lift_upper_bound:+.2f}) "
        f"over {effect.trials} paired trials: {effect.wins_with} wins with it, {effect.wins_without} without"
    )


def reviewer() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


class Curation:
    """Methods of ``Library`` that change entries for a reason; the storage primitives come from ``Library``."""

    _history: History

    def get(self, id: str) -> Strategy | None:
        raise NotImplementedError

    def _put(self, new: Strategy, old: Strategy, *, reason: str, action: str = "updated", **extra: Any) -> Strategy:
        raise NotImplementedError

    def _require(self, id: str) -> Strategy:
        old = self.get(id)
        if old is None:
            raise LibraryError(
                f"no entry {id!r} in this collection.",
                hint="`agentkd library list` shows the ids; a merged entry lives on under the id it was merged into.",
            )
        return old

    def set_status(self, id: str, status: Status, reason: str) -> Strategy:
        """Admit, retire or demote an entry, saying why; returns the updated entry."""
        old = self._require(id)
        return self._put(old.model_copy(update={"status": status, "status_reason": reason}), old, reason=reason,
                         action="status")

    def record_trial(self, id: str, *, won_with: bool, won_without: bool) -> Strategy | None:
        """Add one paired trial (the student with and without the entry) to its effect; retire it if harmful.

        Returns the updated entry, or None when there is no entry ``id`` (it may have been merged away).
        """
        old = self.get(id)
        if old is None:
            return None
        e = old.effect
        effect = Effect(
            trials=e.trials + 1, wins_with=e.wins_with + int(won_with), wins_without=e.wins_without + int(won_without)
        )
        new = old.model_copy(update={"effect": effect})
        trial = {"won_with": won_with, "won_without": won_without}
        if new.status != "retired" and harmful(effect):
            reason = f"auto-retired: {describe(effect)}; upper bound below 0 after >= {MIN_TRIALS} trials"
            new = new.model_copy(update={"status": "retired", "status_reason": reason})
            return self._put(new, old, reason=reason, action="retired", trial=trial)
        return self._put(new, old, reason=describe(effect), action="trial", trial=trial)

    def review(
        self, id: str, decision: Decision, *, reason: str = "", changes: dict[str, Any] | None = None, by: str = ""
    ) -> Strategy:
        """A person's decision on an entry: approve it, edit its text and tags, or retire it (with a reason)."""
        old = self._require(id)
        by = by or reviewer()
        if decision == "approve":
            new = old.model_copy(update={"review": "approved"})
        elif decision == "retire":
            if not reason.strip():
                raise LibraryError(f"retiring {id!r} needs a reason.", hint='pass --reason "why it should go".')
            new = old.model_copy(update={"status": "retired", "status_reason": f"retired by {by}: {reason.strip()}"})
        elif decision == "edit":
            new = self._edited(old, changes or {})
        else:
            raise LibraryError(f"unknown review decision {decision!r}.", hint="use approve, edit or retire.")
        return self._put(new, old, reason=reason or f"{decision} by {by}", action="review", decision=decision, by=by)

    @staticmethod
    def _edited(old: Strategy, changes: dict[str, Any]) -> Strategy:
        fixed = sorted(k for k in changes if k not in EDITABLE)
        if fixed:
            raise LibraryError(
                f"a review may not change {', '.join(fixed)} of {old.id!r}.",
                hint=f"edit only {', '.join(EDITABLE)}; status changes through retire or measurement, and "
                "effect and provenance are recorded by agentkd.",
            )
        real = {k: v for k, v in changes.items() if getattr(old, k) != v}
        if not real:
            raise LibraryError(f"the edit leaves {old.id!r} unchanged.", hint="change its title, trigger or body.")
        return Strategy.model_validate({**old.model_dump(), **real, "review": "edited"})
