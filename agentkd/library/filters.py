"""Which entries a query may return: one filter, checked three ways (Chroma ``where``, flat metadata, Strategy).

The flat metadata check lets a search drop non-matching neighbours without parsing their JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentkd.schema import Strategy


def statuses(status: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """Normalise a status argument: one name, several, or None for any."""
    return (status,) if isinstance(status, str) else (tuple(status) if status is not None else None)


@dataclass(frozen=True)
class Filter:
    """Entries of these statuses, kind, task and domain (None: any)."""

    statuses: tuple[str, ...] | None = None
    kind: str | None = None
    task: str | None = None
    domain: str | None = None

    @classmethod
    def of(
        cls,
        status: str | Sequence[str] | None = None,
        kind: str | None = None,
        task: str | None = None,
        domain: str | None = None,
    ) -> Filter:
        return cls(statuses(status), kind, task, domain)

    @property
    def empty(self) -> bool:
        """True when nothing can match (an empty status list)."""
        return self.statuses == ()

    @property
    def any(self) -> bool:
        """True when every entry matches."""
        return self.statuses is None and self.kind is None and self.task is None and self.domain is None

    def match(self, s: Strategy) -> bool:
        return (
            (self.statuses is None or s.status in self.statuses)
            and (self.kind is None or s.kind == self.kind)
            and (self.task is None or self.task in s.tasks)
            and (self.domain is None or self.domain in s.domains)
        )

    def match_metadata(self, m: Mapping[str, Any]) -> bool:
        """The same test on a record's flat metadata (see ``store.metadata``)."""
        return (
            (self.statuses is None or m.get("status") in self.statuses)
            and (self.kind is None or m.get("kind") == self.kind)
            and (self.task is None or m.get(f"task:{self.task}") is True)
            and (self.domain is None or m.get(f"domain:{self.domain}") is True)
        )

    def where(self) -> dict[str, Any] | None:
        """The Chroma ``where`` clause, or None when every entry matches."""
        clauses: list[dict[str, Any]] = []
        if self.statuses is not None:
            clauses.append({"status": {"$in": list(self.statuses)}})
        if self.kind is not None:
            clauses.append({"kind": self.kind})
        if self.task is not None:
            clauses.append({f"task:{self.task}": True})
        if self.domain is not None:
            clauses.append({f"domain:{self.domain}": True})
        return None if not clauses else clauses[0] if len(clauses) == 1 else {"$and": clauses}


def metadata(s: Strategy, old: Strategy | None = None) -> dict[str, Any]:
    """A Chroma record's metadata: the whole entry as JSON, plus flat copies for filters.

    Flags of tasks and domains that ``old`` had and ``s`` lost are set to None, which deletes them
    (Chroma merges metadata on update).
    """
    meta: dict[str, Any] = {
        "json": s.model_dump_json(),
        "status": s.status,
        "kind": s.kind,
        "tasks": "|" + "|".join(s.tasks) + "|",
        "version": s.provenance.version,
    }
    if old is not None:
        meta.update({f"task:{t}": None for t in set(old.tasks) - set(s.tasks)})
        meta.update({f"domain:{d}": None for d in set(old.domains) - set(s.domains)})
    meta.update({f"task:{t}": True for t in s.tasks})
    meta.update({f"domain:{d}": True for d in s.domains})
    return meta
