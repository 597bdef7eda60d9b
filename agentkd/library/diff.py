"""Field-level differences between two sets of entries (two strategy directories, or one and the live library)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from agentkd.schema import Strategy


@dataclass(frozen=True)
class FieldChange:
    """One field that differs; nested fields are dotted (``effect.trials``)."""

    name: str
    before: Any
    after: Any


@dataclass
class EntryDiff:
    """How one entry differs from A to B."""

    id: str
    change: Literal["added", "removed", "changed"]
    fields: list[FieldChange] = field(default_factory=list)


def flatten(s: Strategy) -> dict[str, Any]:
    """The entry as dotted field names and JSON values, in the schema's order."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}{k}.", v)
        else:
            out[prefix[:-1]] = value

    walk("", s.model_dump(mode="json"))
    return out


def diff_entries(a: Mapping[str, Strategy], b: Mapping[str, Strategy]) -> list[EntryDiff]:
    """Entries added in B, removed from A, and changed (with each changed field), sorted by id."""
    out: list[EntryDiff] = []
    for id in sorted(set(a) | set(b)):
        if id not in a:
            out.append(EntryDiff(id, "added"))
        elif id not in b:
            out.append(EntryDiff(id, "removed"))
        elif a[id] != b[id]:
            before, after = flatten(a[id]), flatten(b[id])
            names = list(dict.fromkeys([*before, *after]))
            changes = [FieldChange(n, before.get(n), after.get(n)) for n in names if before.get(n) != after.get(n)]
            out.append(EntryDiff(id, "changed", changes))
    return out
