"""A run's SQLite checkpoint, checked before LangGraph opens it: a damaged one is named, never silently replaced."""

from __future__ import annotations

import sqlite3
import struct
from pathlib import Path

from agentkd.errors import RunStateError

_SQLITE_MAGIC = b"SQLite format 3\x00"
_WAL_MAGIC = (0x377F0682, 0x377F0683)
RESTART_HINT = "start a new run with `agentkd build` (the entries earlier runs admitted stay in the library)."


def check_checkpoint(path: str | Path, thread_id: str) -> None:
    """Raise ``RunStateError`` naming the file unless ``path`` holds an intact checkpoint of ``thread_id``.

    Runs before SQLite opens the file: opening would fold a damaged write-ahead log into the database (or
    drop it) without a word, and an empty or missing file would just become a new, empty checkpoint store,
    so ``--resume`` would quietly start over.
    """
    path = Path(path)
    if not path.is_file():
        raise RunStateError(f"the checkpoint of run {thread_id} is missing: {path}.", hint=RESTART_HINT)
    with path.open("rb") as f:
        header = f.read(100)
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        what = "empty" if not header.strip(b"\x00") else "not a SQLite database"
        raise RunStateError(f"the checkpoint of run {thread_id} is unusable ({what}): {path}.", hint=RESTART_HINT)
    _check_wal(Path(f"{path}-wal"), thread_id)
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            ok = conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
            query = "SELECT 1 FROM checkpoints WHERE thread_id = ? LIMIT 1"
            found = ok and conn.execute(query, (thread_id,)).fetchone() is not None
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise RunStateError(f"the checkpoint of run {thread_id} is unusable ({e}): {path}.", hint=RESTART_HINT) from e
    if not ok:
        raise RunStateError(f"the checkpoint of run {thread_id} is damaged (SQLite quick_check failed): {path}.",
                            hint=RESTART_HINT)
    if not found:
        raise RunStateError(f"the checkpoint file of run {thread_id} holds no checkpoint of it: {path}.",
                            hint=RESTART_HINT)


def _check_wal(wal: Path, thread_id: str) -> None:
    """A write-ahead log is a 32-byte header and whole frames (24 bytes + one page); anything else was cut."""
    size = wal.stat().st_size if wal.is_file() else 0
    if not size:
        return
    with wal.open("rb") as f:
        header = f.read(32)
    magic, page = (struct.unpack(">II", header[:4] + header[8:12]) if len(header) == 32 else (0, 0))
    if magic not in _WAL_MAGIC or not page or (size - 32) % (24 + page):
        raise RunStateError(f"the checkpoint of run {thread_id} is unusable: its write-ahead log {wal} is "
                            f"truncated or damaged ({size} bytes).", hint=RESTART_HINT)
