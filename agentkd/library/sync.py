"""Export a library to a directory of strategy files without ever touching a file export did not write.

The directory keeps a manifest (``.agentkd-export.json``): the name and sha256 of every file the last
export wrote. A later export removes a file only when the manifest lists it and it still has exactly the
content written, and overwrites one only when it is absent, unchanged since it was written, or an
export-format file of the same entry from before manifests existed. Everything else (a person's notes,
a file edited since, a symbolic link planted at an entry's name) is left alone, and a conflict stops the
export before it writes anything. Files are written to a temporary name and renamed into place, so a
rename replaces a link rather than writing through it, and a full disk leaves the old file whole.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from agentkd.errors import LibraryError
from agentkd.library.files import (
    DELIMITER,
    ID_RULE,
    MAX_FILE_BYTES,
    SAFE_ID,
    SyncReport,
    read_regular,
    render_file,
)

if TYPE_CHECKING:
    from agentkd.library.store import Library

MANIFEST = ".agentkd-export.json"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _os_error(what: str, path: Path, e: OSError) -> LibraryError:
    reason = e.strerror or str(e)
    hint = {
        errno.ENOSPC: "free some disk space (or export somewhere else) and run the export again.",
        errno.EDQUOT: "free some disk space (or export somewhere else) and run the export again.",
        errno.EROFS: "export to a writable directory.",
        errno.EACCES: "export to a directory you may write to.",
        errno.ENOTDIR: "a part of the path is a file, not a directory: choose another directory.",
        errno.EEXIST: "a file of that name is in the way: choose another directory.",
    }.get(e.errno or 0, "check the path and its permissions, then run the export again.")
    return LibraryError(f"cannot {what} {path}: {reason}.", hint=hint)


def _read_manifest(directory: Path) -> dict[str, str]:
    """File name → sha256 of what the last export wrote; empty when there is no readable manifest."""
    try:
        data = json.loads(read_regular(directory / MANIFEST))
        files = data.get("files", {}) if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # no manifest, or one we cannot trust: then nothing counts as ours, the safe side
    return {n: d for n, d in files.items() if isinstance(n, str) and isinstance(d, str) and _is_entry_name(n)}


def _is_entry_name(name: str) -> bool:
    """Only plain ``<id>.md`` names in the directory itself: a manifest cannot point export elsewhere."""
    return name.endswith(".md") and SAFE_ID.fullmatch(name[:-3]) is not None


def _current(path: Path) -> bytes | None:
    """The file's bytes, None when absent; a link or anything but a regular file raises LibraryError."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise _os_error("read", path, e) from e
    if stat.S_ISLNK(info.st_mode):
        raise LibraryError(f"{path} is a symbolic link; export writes only regular files it owns.",
                           hint="remove the link (or export to another directory); nothing was written.")
    if not stat.S_ISREG(info.st_mode):
        raise LibraryError(f"{path} is in the way: it is not a regular file.",
                           hint="move it away (or export to another directory); nothing was written.")
    if info.st_size > MAX_FILE_BYTES:
        raise LibraryError(f"{path} is in the way: at {info.st_size} bytes it is not a strategy file export wrote.",
                           hint="move it away (or export to another directory); nothing was written.")
    try:
        return read_regular(path)
    except OSError as e:
        raise _os_error("read", path, e) from e


def _atomic_write(directory: Path, name: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, directory / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export(lib: Library, directory: Path) -> SyncReport:
    """Write every entry of ``lib`` to ``directory`` (created if needed) and remove the files export wrote
    for entries no longer in the library; files export did not write are never changed or removed."""
    entries = lib.list()
    bad = [s.id for s in entries if not SAFE_ID.fullmatch(s.id)]
    if bad:
        raise LibraryError(f"entries {bad} have ids that cannot be file names.",
                           hint=f"{ID_RULE}; re-add those entries under such ids.")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _os_error("create the export directory", directory, e) from e
    if not directory.is_dir():
        raise LibraryError(f"{directory} is not a directory.", hint="choose a directory to export to.")
    ours = _read_manifest(directory)
    wanted = {f"{s.id}.md": render_file(s).encode("utf-8") for s in entries}
    plan = _plan(directory, wanted, ours)  # every check before any write: a conflict writes nothing
    report = SyncReport()
    manifest: dict[str, str] = {}
    try:
        for name, data in wanted.items():
            if plan[name]:
                _atomic_write(directory, name, data)
                report.written.append(name[:-3])
            else:
                report.unchanged.append(name[:-3])
            manifest[name] = _digest(data)
        for name, digest in sorted(ours.items()):
            if name in wanted:
                continue
            path = directory / name
            try:
                current = _current(path)
            except LibraryError:
                current = None  # replaced by a link or a directory since: not ours any more
            if current is not None and _digest(current) == digest:
                path.unlink()
                report.removed.append(name[:-3])
            elif current is not None:
                report.kept.append(name[:-3])  # edited since: no longer ours, so no longer in the manifest
        _atomic_write(directory, MANIFEST, (json.dumps({"files": manifest}, indent=1, sort_keys=True) + "\n").encode())
    except OSError as e:
        raise _os_error("write to", directory, e) from e
    return report


def _plan(directory: Path, wanted: dict[str, bytes], ours: dict[str, str]) -> dict[str, bool]:
    """For each file, whether it must be written; raises LibraryError for one export may not overwrite."""
    plan: dict[str, bool] = {}
    for name, data in wanted.items():
        path = directory / name
        current = _current(path)
        if current is None or current == data:
            plan[name] = current is None
            continue
        if name in ours:
            if _digest(current) != ours[name]:
                raise LibraryError(
                    f"{path} was edited since the last export; exporting would overwrite the edit.",
                    hint=f"import it first (agentkd library import {directory}), or delete it; nothing was written.",
                )
        elif not current.startswith(f"{DELIMITER}\nid: {name[:-3]}\n".encode()):
            raise LibraryError(f"{path} is not a file that export wrote; exporting would overwrite it.",
                               hint="move it away (or export to another directory); nothing was written.")
        plan[name] = True
    return plan
