"""How the library reaches Chroma: a directory (read-only ones through a private copy) or a server with a
timeout; split from ``store.py``, which owns the collection. Chroma's failures become ``LibraryError``s."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import chromadb

from agentkd.config import get_settings
from agentkd.errors import AgentKDError, LibraryError

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
HTTP_TIMEOUT = 30.0  # seconds for one request to a Chroma server; a query of 100k entries takes milliseconds


def client_for(location: str, *, create: bool, timeout: float) -> tuple[Any, Path, bool]:
    """A Chroma client for a directory or ``http(s)://host:port``, where its history file goes, and whether
    it is a read-only snapshot. Without ``create`` a library that does not exist is an error, not a new one."""
    # Default Settings on purpose: Chroma refuses a second client for the same path with other settings,
    # and users reopen libraries with plain `chromadb.PersistentClient(path)`. (Telemetry is a no-op in 1.5.)
    scheme = _SCHEME.match(location)
    if scheme and scheme.group(1).lower() not in ("http", "https"):
        raise LibraryError(f"{location!r} is a {scheme.group(1)} URL; a library is a directory or a Chroma "
                           "server at http(s)://host:port.", hint="give a directory, or http://host:port.")
    try:
        if scheme:
            return _http_client(location, timeout)
        path = Path(location).expanduser()
        if not (path / "chroma.sqlite3").is_file():
            if not create:
                raise LibraryError(
                    f"there is no strategy library at {path}.",
                    hint="check --library / AGENTKD_LIBRARY; `agentkd build` or `agentkd library import DIR` "
                    "creates one.",
                )
            path.mkdir(parents=True, exist_ok=True)
        if _writable(path):
            return chromadb.PersistentClient(path=str(path)), path / "history.jsonl", False
        return chromadb.PersistentClient(path=_snapshot(path)), path / "history.jsonl", True
    except LibraryError:
        raise
    except Exception as e:
        raise LibraryError(
            f"cannot open the strategy library at {location!r}: {e}",
            hint="give a writable directory, or the URL of a running server (start one with "
            "`chroma run --path DIR --port 8000`).",
        ) from e


def _http_client(location: str, timeout: float) -> tuple[Any, Path, bool]:
    url = urlparse(location)
    if not url.hostname:
        raise LibraryError(f"{location!r} has no host name.", hint="write it as http://host:port.")
    ssl = url.scheme == "https"
    port = url.port or (443 if ssl else 8000)
    base = f"{url.scheme}://{url.hostname}:{port}"
    # Chroma's client sends its first request while it is being built, with no timeout (httpx timeout=None):
    # a server that accepts and never answers would hang us there, so ask it first under our own timeout.
    try:
        with urllib.request.urlopen(f"{base}/api/v2/heartbeat", timeout=timeout) as resp:
            resp.read(4096)
    except urllib.error.HTTPError:
        pass  # it answers: Chroma's own client will say what it thinks of the reply
    except (OSError, ValueError) as e:
        why = f"did not answer within {timeout:g}s" if isinstance(e, TimeoutError) or "timed out" in str(e) else (
            f"cannot be reached ({getattr(e, 'reason', e)})")
        raise LibraryError(f"the Chroma server at {base} {why}.",
                           hint="check that it is running and healthy (`chroma run --path DIR --port "
                           f"{port}`) and that --library / AGENTKD_LIBRARY names it.") from e
    client = chromadb.HttpClient(host=url.hostname, port=port, ssl=ssl)
    session = getattr(getattr(client, "_server", None), "_session", None)
    if session is not None:  # every later request gets the timeout too (Chroma has no setting for it)
        session.timeout = timeout
    client.heartbeat()
    return client, get_settings().home / "libraries" / f"{url.hostname}_{port}" / "history.jsonl", False


def _writable(path: Path) -> bool:
    db = path / "chroma.sqlite3"
    return os.access(path, os.W_OK) and (not db.exists() or os.access(db, os.W_OK))


def _snapshot(path: Path) -> str:
    """A private copy of a library we may not write, for reading: Chroma writes to its database on open."""
    copy = Path(tempfile.mkdtemp(prefix="agentkd-readonly-"))
    atexit.register(shutil.rmtree, copy, ignore_errors=True)
    shutil.copytree(path, copy, dirs_exist_ok=True, ignore=shutil.ignore_patterns("history.jsonl"))
    return str(copy)


_WRITES = frozenset({"add", "upsert", "update", "delete", "modify"})


class _Guarded:
    """A Chroma collection whose failures (a timeout, a read-only or full disk) become ``LibraryError``s
    naming the library, and whose writes are refused when the library is a read-only snapshot."""

    def __init__(self, collection: Any, location: str, read_only: bool) -> None:
        self._col, self._location, self._read_only = collection, location, read_only

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._col, name)
        if not callable(attr):
            return attr
        if self._read_only and name in _WRITES:
            raise LibraryError(f"the library at {self._location} is read-only; it can be listed, shown, exported "
                               "and searched, not changed.", hint="make its directory writable to change it.")

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attr(*args, **kwargs)
            except AgentKDError:
                raise
            except Exception as e:
                raise failure(self._location, e) from e

        return call


def failure(location: str, e: Exception) -> LibraryError:
    text = str(e) or type(e).__name__
    if "timeout" in type(e).__name__.lower() or "timed out" in text.lower():
        return LibraryError(f"the library at {location} did not answer in time ({text}).",
                            hint="check that the Chroma server is running and not overloaded, then try again.")
    if "readonly" in text.replace("-", "").replace(" ", "").lower():
        return LibraryError(f"the library at {location} is read-only: {text}", hint="make its directory writable.")
    if "disk is full" in text or "No space left" in text:
        return LibraryError(f"the disk of the library at {location} is full: {text}",
                            hint="free some disk space and run the command again.")
    return LibraryError(f"the library at {location} failed: {text}",
                        hint="check that it is reachable and intact; `agentkd library list` reads it.")


def collection_names(client: Any) -> str:
    try:
        names = sorted(getattr(c, "name", str(c)) for c in client.list_collections())
    except Exception:  # only for the hint
        return "(could not be listed)"
    return ", ".join(names) or "none"


def guarded(collection: Any, location: str, read_only: bool) -> Any:
    """The collection behind ``_Guarded``: failures named, writes refused when ``read_only``."""
    return _Guarded(collection, location, read_only)
