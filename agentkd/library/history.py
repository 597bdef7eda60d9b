"""The library's append-only change log: one JSON object per line, readable with ``tail`` or ``jq``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentkd.errors import LibraryError, LibraryFormatError
from agentkd.schema import now


class History:
    """``history.jsonl`` shared by every collection of a library; each line names its collection."""

    def __init__(self, path: Path, collection: str) -> None:
        self.path = path
        self.collection = collection

    def append(
        self,
        action: str,
        id: str,
        *,
        reason: str = "",
        before: str | None = None,
        after: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Write one line: what happened to entry ``id``, why, and its status before and after."""
        record: dict[str, Any] = {
            "time": now().isoformat(),
            "collection": self.collection,
            "action": action,
            "id": id,
            "reason": reason,
            "before": before,
            "after": after,
            **extra,
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        except OSError as e:
            raise LibraryError(
                f"cannot append to the library history {self.path}: {e}.",
                hint="make the directory writable, or set AGENTKD_HOME to a writable directory.",
            ) from e
        return record

    def read(self, id: str | None = None) -> list[dict[str, Any]]:
        """This collection's lines, oldest first; with ``id``, those about that entry (also as the merged one)."""
        if not self.path.exists():
            return []
        records = []
        with self.path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise LibraryFormatError(
                        f"{self.path}, line {number}, is not valid JSON ({e.msg}).",
                        hint="fix or delete that line; every line must be one JSON object.",
                    ) from e
                if record.get("collection") != self.collection:
                    continue
                if id is None or id in (record.get("id"), record.get("other")):
                    records.append(record)
        return records
