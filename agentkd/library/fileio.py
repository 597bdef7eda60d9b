"""Reading and writing strategy files safely: bounded reads that never follow a link, YAML checked for
anchors and depth before it is loaded, atomic writes, and the export manifest of the files export wrote."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
import tempfile
from pathlib import Path

import yaml

from agentkd.errors import LibraryError

SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
ID_RULE = "ids may use letters, digits, '.', '_' and '-', start with a letter or digit, and have 1 to 200 characters"
MAX_FILE_BYTES = 1 << 20  # a strategy file is a few KB; anything near this is not one
MAX_DEPTH = 16  # the schema nests 3 levels; deeper YAML is refused before it reaches the recursive composer


def unsafe_yaml(front: str) -> str | None:
    """Why this YAML may not be loaded (anchors, aliases, deep nesting), or None; reads events, builds nothing.

    Aliases expand to shared objects that a loader copies out ("billion laughs": 1.4 KB became 2.6 GB), and
    the composer recurses once per nesting level; both are refused here, before either runs.
    """
    depth = 0
    for event in yaml.parse(front, Loader=yaml.SafeLoader):
        line = f"line {event.start_mark.line + 2}: " if event.start_mark else ""
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            return f"{line}YAML anchors and aliases (&name, *name) are not allowed in strategy files"
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                return f"{line}YAML nested deeper than {MAX_DEPTH} levels is not allowed in strategy files"
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return None


def read_regular(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, never through a symbolic link.

    ``O_NOFOLLOW`` and checking the opened descriptor (not the name) leave no gap for a file swapped in
    between; a link, a FIFO or /dev/zero would otherwise be read, or block, forever.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, f"{path} is a symbolic link; strategy files must be regular files") from e
        raise
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"{path} is larger than {limit} bytes, too large for a strategy file")
    return data


MANIFEST = ".agentkd-export.json"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def os_error(what: str, path: Path, e: OSError) -> LibraryError:
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


def read_manifest(directory: Path) -> dict[str, str]:
    """File name → sha256 of what the last export wrote; empty when there is no readable manifest."""
    try:
        data = json.loads(read_regular(directory / MANIFEST))
        files = data.get("files", {}) if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # no manifest, or one we cannot trust: then nothing counts as ours, the safe side
    return {n: d for n, d in files.items() if isinstance(n, str) and isinstance(d, str) and is_entry_name(n)}


def is_entry_name(name: str) -> bool:
    """Only plain ``<id>.md`` names in the directory itself: a manifest cannot point export elsewhere."""
    return name.endswith(".md") and SAFE_ID.fullmatch(name[:-3]) is not None


def existing_bytes(path: Path) -> bytes | None:
    """The file's bytes, None when absent; a link or anything but a regular file raises LibraryError."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise os_error("read", path, e) from e
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
        raise os_error("read", path, e) from e


def atomic_write(directory: Path, name: str, data: bytes) -> None:
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


def write_manifest(directory: Path, files: dict[str, str]) -> None:
    atomic_write(directory, MANIFEST, (json.dumps({"files": files}, indent=1, sort_keys=True) + "\n").encode())
