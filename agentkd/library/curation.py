"""Curation by measured effect and by people: the paired rule that admits and retires entries, and review decisions.

The rule (one for admission and retirement): an entry's paired trials run the student on the same item with
and without it. Only *discordant* pairs carry evidence: ``helped`` (passed with it, failed without) and
``hurt`` (the reverse). If the entry made no difference, each discordant pair would go either way with
probability 1/2, so ``helped`` ~ Binomial(helped + hurt, 1/2): the one-sided exact sign test (McNemar's
exact test). ``p_helps`` is the chance of at least that many ``helped`` under no effect.

- **admit** (``admissible``): ``p_helps <= alpha`` (default ``ALPHA = 0.05``). Equivalently the exact
  (Clopper-Pearson) lower ``1 - alpha`` bound on the net share of discordant pairs it wins is above zero.
  A useless or harmful candidate is admitted with probability at most ``alpha``, so a build that tests
  ``n`` candidates lets through at most ``alpha * n`` by chance in expectation. With no losses it takes 5
  helped pairs (1/32 = 0.031); with one loss, 7 (9/256 = 0.035).
- **retire** (``harmful``): the same test the other way, ``p_hurts <= alpha``, i.e. the upper bound falls
  below zero, after at least ``MIN_TRIALS`` trials: an entry that lost all of 6 trials is retired
  (1/64), one that lost 3 and won 1 is kept measuring (5/16).
"""

from __future__ import annotations

import getpass
from math import comb
from typing import Any, Literal

from agentkd.errors import LibraryError
from agentkd.library.history import History
from agentkd.schema import Effect, Strategy

ALPHA = 0.05
MIN_TRIALS = 6
EDITABLE = ("kind", "title", "trigger", "body", "tool_hints", "tasks", "domains")
Decision = Literal["approve", "edit", "retire"]
Status = Literal["candidate", "admitted", "retired", "rejected"]


def tail(k: int, n: int, p: float = 0.5) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    return sum(comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(max(k, 0), n + 1)) if k <= n else 0.0


def sign_test(wins: int, losses: int) -> float:
    """One-sided exact sign test: the chance of ``wins`` or more of ``wins + losses`` discordant pairs by luck."""
    return tail(wins, wins + losses)


def discordant(effect: Effect) -> tuple[int, int]:
    """(helped, hurt); for entries measured before those were counted, the fewest the wins allow."""
    d = effect.wins_with - effect.wins_without
    if effect.helped - effect.hurt == d:
        return effect.helped, effect.hurt
    return max(d, 0), max(-d, 0)


def net_bounds(effect: Effect, alpha: float = ALPHA) -> tuple[float, float]:
    """Exact one-sided ``1 - alpha`` bounds on the net share of discordant pairs the entry wins (-1..+1)."""
    b, c = discordant(effect)
    n = b + c

    def solve(f: Any, target: float) -> float:  # theta where f(theta) = target; f increases with theta
        lo, hi = 0.0, 1.0
        for _ in range(50):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if f(mid) < target else (lo, mid)
        return (lo + hi) / 2

    lower = 0.0 if b == 0 else solve(lambda t: tail(b, n, t), alpha)  # P(X >= b | lower) = alpha
    upper = 1.0 if b == n else solve(lambda t: tail(b + 1, n, t), 1 - alpha)  # P(X <= b | upper) = alpha
    return 2 * lower - 1, 2 * upper - 1


def p_helps(effect: Effect) -> float:
    b, c = discordant(effect)
    return sign_test(b, c)


def p_hurts(effect: Effect) -> float:
    b, c = discordant(effect)
    return sign_test(c, b)


def admissible(effect: Effect, alpha: float = ALPHA) -> bool:
    """The admission rule: the one-sided sign test on discordant pairs says it helps at level ``alpha``."""
    return p_helps(effect) <= alpha


def harmful(effect: Effect, alpha: float = ALPHA) -> bool:
    """The retirement rule: enough paired trials, and the same test says it hurts at level ``alpha``."""
    return effect.trials >= MIN_TRIALS and p_hurts(effect) <= alpha


def describe(effect: Effect, alpha: float = ALPHA) -> str:
    """The effect in words, for reasons and tables."""
    b, c = discordant(effect)
    lo, hi = net_bounds(effect, alpha)
    return (
        f"lift {effect.lift:+.2f} over {effect.trials} paired trials: helped {b}, hurt {c} "
        f"(sign test p={p_helps(effect):.3f} that it helps, p={p_hurts(effect):.3f} that it hurts; "
        f"net {1 - alpha:.0%} bounds {lo:+.2f}..{hi:+.2f})"
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
        helped, hurt = discordant(e)
        effect = Effect(
            trials=e.trials + 1, wins_with=e.wins_with + int(won_with), wins_without=e.wins_without + int(won_without),
            helped=helped + int(won_with and not won_without), hurt=hurt + int(won_without and not won_with),
        )
        new = old.model_copy(update={"effect": effect})
        trial = {"won_with": won_with, "won_without": won_without}
        if new.status != "retired" and harmful(effect):
            reason = f"auto-retired: {describe(effect)}; upper bound below 0 after >= {MIN_TRIALS} trials"
            new = new.model_copy(update={"status": "retired", "status_reason": reason})
            return self._put(new, old, reason=reason, action="retired", trial=trial)
        return self._put(new, old, reason=describe(effect), action="trial", trial=trial)

    def note_measurement(self, id: str, reason: str, *, trials: list[dict[str, Any]]) -> None:
        """Log a candidate's paired trials in its history (``agentkd library show`` lists them)."""
        entry = self.get(id)
        status = entry.status if entry is not None else None
        self._history.append("measured", id, reason=reason, before=status, after=status, trials=trials)

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
