"""Retrieval for a small context: top-k over a score threshold, MMR for diversity, packed into a token budget.

``retrieve`` returns a ``Retrieval`` that lists the chosen entries with their scores *and* every candidate
it dropped with the reason, so the CLI can show it and a run log can keep it. Pure Python and numpy:
the library it is given supplies the query embedding and the candidates with their vectors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from agentkd.library.embedder import TextEmbedder
from agentkd.library.filters import Filter
from agentkd.schema import Strategy

DEFAULT_BUDGET = 600  # tokens: room for 2-4 entries and still most of a 2k context for the question and work
DEFAULT_MIN_SCORE = 0.2  # MiniLM cosine under ~0.2 is unrelated text
POOL = 4  # candidates fetched per wanted entry, for MMR to choose among
Reason = Literal["below_threshold", "redundant", "over_budget", "outranked"]


class ScoredEntry(Protocol):
    @property
    def strategy(self) -> Strategy: ...

    @property
    def score(self) -> float: ...

    @property
    def vector(self) -> np.ndarray | None: ...


class Searchable(Protocol):
    """What ``retrieve`` needs from a library (``agentkd.library.Library`` is one)."""

    embedder: TextEmbedder

    def neighbours(
        self, vector: np.ndarray, n: int, *, min_score: float = -1.0, where: Filter | None = None, vectors: bool = False
    ) -> Sequence[ScoredEntry]: ...


def approx_tokens(text: str) -> int:
    """A rough count (4 characters a token) for when the student's tokenizer is not at hand."""
    return math.ceil(len(text) / 4)


@dataclass(frozen=True)
class Chosen:
    strategy: Strategy
    score: float
    tokens: int


@dataclass(frozen=True)
class DroppedEntry:
    """A candidate left out: ``below_threshold``, ``redundant`` (MMR preferred a more diverse entry),
    ``over_budget`` (it did not fit the tokens left) or ``outranked`` (others scored higher)."""

    strategy: Strategy
    score: float
    reason: Reason
    detail: str = ""


@dataclass
class Retrieval:
    """The outcome of one retrieval; ``chosen`` is sorted by id, so equal choices give an equal prompt prefix."""

    query: str
    chosen: list[Chosen] = field(default_factory=list)
    dropped: list[DroppedEntry] = field(default_factory=list)
    budget_tokens: int = DEFAULT_BUDGET

    @property
    def strategies(self) -> list[Strategy]:
        return [c.strategy for c in self.chosen]

    @property
    def tokens(self) -> int:
        return sum(c.tokens for c in self.chosen)

    def as_log(self) -> dict[str, Any]:
        """A JSON-ready record for run logs."""
        return {
            "query": self.query,
            "tokens": self.tokens,
            "budget_tokens": self.budget_tokens,
            "chosen": [{"id": c.strategy.id, "score": round(c.score, 4), "tokens": c.tokens} for c in self.chosen],
            "dropped": [
                {"id": d.strategy.id, "score": round(d.score, 4), "reason": d.reason, "detail": d.detail}
                for d in self.dropped
            ],
        }


def retrieve(
    library: Searchable,
    query: str,
    *,
    k: int = 3,
    min_score: float = DEFAULT_MIN_SCORE,
    task: str | None = None,
    domain: str | None = None,
    kind: str | None = None,
    status: str | Sequence[str] | None = ("admitted",),
    mmr_lambda: float = 0.7,
    budget_tokens: int = DEFAULT_BUDGET,
    count_tokens: Callable[[str], int] | None = None,
) -> Retrieval:
    """Choose up to ``k`` entries for ``query``: relevant (score ≥ ``min_score``), diverse, within the budget.

    MMR picks, one at a time, the candidate maximising ``mmr_lambda * score - (1 - mmr_lambda) * (its
    highest cosine to an entry already chosen)``; 1.0 is plain top-k. Each pick costs
    ``count_tokens(entry.render()) + 1`` tokens; a pick that does not fit is dropped and the next is tried.
    """
    count = count_tokens or approx_tokens
    out = Retrieval(query, budget_tokens=budget_tokens)
    if k <= 0:
        return out
    vector = library.embedder.embed([query])[0]
    where = Filter.of(status, kind, task, domain)
    pool = library.neighbours(vector, max(k * POOL, 12), where=where, vectors=True)
    relevant = [c for c in pool if c.score >= min_score]
    out.dropped += [
        DroppedEntry(c.strategy, c.score, "below_threshold", f"score {c.score:.3f} < {min_score}")
        for c in pool
        if c.score < min_score
    ]
    picked: list[tuple[ScoredEntry, np.ndarray]] = []
    left = [(c, _unit(c.vector)) for c in relevant]
    used = 0
    while left and len(picked) < k:
        best = max(range(len(left)), key=lambda i: _mmr(left[i], picked, mmr_lambda))
        c, v = left.pop(best)
        tokens = count(c.strategy.render()) + 1
        if used + tokens > budget_tokens:
            detail = f"{tokens} tokens, {budget_tokens - used} left"
            out.dropped.append(DroppedEntry(c.strategy, c.score, "over_budget", detail))
            continue
        used += tokens
        picked.append((c, v))
        out.chosen.append(Chosen(c.strategy, c.score, tokens))
    floor = min((c.score for c, _ in picked), default=math.inf)
    for c, v in left:
        if c.score > floor:
            sim, twin = max((float(v @ pv), pc.strategy.id) for pc, pv in picked)
            out.dropped.append(DroppedEntry(c.strategy, c.score, "redundant", f"cosine {sim:.3f} to {twin}"))
        else:
            out.dropped.append(DroppedEntry(c.strategy, c.score, "outranked"))
    out.chosen.sort(key=lambda ch: ch.strategy.id)
    out.dropped.sort(key=lambda d: -d.score)
    return out


def _unit(vector: np.ndarray | None) -> np.ndarray:
    if vector is None:
        raise ValueError("retrieve needs candidate vectors: the library's neighbours() ignored vectors=True")
    v = np.asarray(vector, dtype=np.float32)
    return v / max(float(np.linalg.norm(v)), 1e-12)


def _mmr(item: tuple[ScoredEntry, np.ndarray], picked: list[tuple[ScoredEntry, np.ndarray]], lam: float) -> float:
    c, v = item
    redundancy = max((float(v @ pv) for _, pv in picked), default=0.0)
    return lam * c.score - (1 - lam) * redundancy


@dataclass(frozen=True)
class Scored:
    """A chosen entry in the shape ``Student`` expects from a retriever's ``search``."""

    strategy: Strategy
    score: float


class MMRRetriever:
    """``retrieve`` behind the ``search(query, k=, task=)`` interface of ``agentkd.student.student.Retriever``.

    ``last`` keeps the latest ``Retrieval`` so a caller can show or log what was dropped.
    """

    def __init__(self, library: Searchable, *, count_tokens: Callable[[str], int] | None = None, **options: Any):
        self.library, self.count_tokens, self.options = library, count_tokens, options
        self.last: Retrieval | None = None

    def search(self, query: str, *, k: int = 3, task: str | None = None) -> list[Scored]:
        self.last = retrieve(self.library, query, k=k, task=task, count_tokens=self.count_tokens, **self.options)
        return [Scored(c.strategy, c.score) for c in self.last.chosen]
