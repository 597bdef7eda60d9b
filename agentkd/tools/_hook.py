"""The sandbox child's Python layer: an audit hook (PEP 578) and guards on the calls it cannot see.

It runs inside the child (``python -I``, where agentkd is not importable), loaded by ``_guard.py``.
It is the one layer every platform has, so it closes each escape on its own as far as Python allows,
and the kernel layers (namespaces, Landlock, seccomp) hold where Python code gets around it.

Some calls raise no audit event at all (``os.stat``, ``os.memfd_create``, ``os.pidfd_open``,
``signal.pidfd_send_signal``, ``os.mkfifo``...): they are replaced by checked versions. Some C
modules open files by name without an event (sqlite3's ``ATTACH``, dbm, readline's history): where
no kernel layer confines files (no Landlock) they cannot be imported at all.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

_PROCESS_EVENTS = frozenset({
    "subprocess.Popen", "os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork", "os.forkpty",
    "pty.spawn", "os.startfile", "os.kill", "os.killpg", "signal.pthread_kill",
})
_OTHER_EVENTS = {  # event -> what the model is told
    **dict.fromkeys(("gc.get_objects", "gc.get_referrers", "gc.get_referents"), "inspecting the interpreter's objects"),
    **dict.fromkeys(("resource.setrlimit", "resource.prlimit"), "changing resource limits"),
    "webbrowser.open": "opening a browser",
    "sqlite3.enable_load_extension": "loading SQLite extensions",
}
# event -> (index of each path argument, index of its dir_fd or None, whether it writes)
_PATH_EVENTS: dict[str, tuple[tuple[int, ...], tuple[int | None, ...], bool]] = {
    "os.listdir": ((0,), (None,), False), "os.scandir": ((0,), (None,), False), "os.chdir": ((0,), (None,), False),
    "os.getxattr": ((0,), (None,), False), "os.listxattr": ((0,), (None,), False),
    "os.mkdir": ((0,), (2,), True), "os.remove": ((0,), (1,), True), "os.rmdir": ((0,), (1,), True),
    "os.rename": ((0, 1), (2, 3), True), "os.link": ((0, 1), (2, 3), True), "os.symlink": ((1,), (2,), True),
    "os.chmod": ((0,), (2,), True), "os.chown": ((0,), (3,), True), "os.chflags": ((0,), (None,), True),
    "os.lchflags": ((0,), (None,), True), "os.truncate": ((0,), (None,), True), "os.utime": ((0,), (3,), True),
    "os.setxattr": ((0,), (None,), True), "os.removexattr": ((0,), (None,), True),
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_READABLE_FILES = ("/dev/null", "/dev/zero", "/dev/urandom", "/usr/share/zoneinfo")
# C modules that open files by name without an audit event; only Landlock can confine them
UNAUDITED_FILE_MODULES = frozenset({"_sqlite3", "_dbm", "_gdbm", "readline"})
# calls without an audit event: (module, name) -> (index of the path argument, keyword of its dir_fd, writes)
_UNAUDITED_PATH_CALLS = {
    "stat": (0, "dir_fd", False), "lstat": (0, "dir_fd", False), "access": (0, "dir_fd", False),
    "readlink": (0, "dir_fd", False), "statvfs": (0, None, False), "pathconf": (0, None, False),
    "mkfifo": (0, "dir_fd", True), "mknod": (0, "dir_fd", True),
}
_UNAUDITED_DENIED = {  # (module, name) -> what the model is told
    ("os", "memfd_create"): "anonymous in-memory files (os.memfd_create): they escape the memory limit",
    ("os", "pidfd_open"): "process handles (os.pidfd_open)",
    ("signal", "pidfd_send_signal"): "sending signals (signal.pidfd_send_signal)",
    ("os", "sched_setaffinity"): "changing CPU affinity", ("os", "sched_setscheduler"): "changing scheduling",
    ("os", "sched_setparam"): "changing scheduling", ("os", "setpriority"): "changing priorities",
}
_SHARED_MEMORY = "_posixshmem"  # POSIX shared memory lives in /dev/shm: outside the memory limit and the work dir


def make_hook(work: str, py_roots: list[str], *, files_confined: bool) -> Callable[[str, tuple[Any, ...]], None]:
    """An audit hook that confines files to ``work`` (reads also to ``py_roots``) and blocks the rest.

    ``files_confined`` says whether a kernel layer (Landlock) confines files; without one the modules
    that open files behind the hook's back are refused.
    """
    inside, write_roots, read_roots = _path_check(work, py_roots)

    def deny(what: str, advice: str = "") -> None:
        raise PermissionError(f"sandbox: {what} is not allowed here" + (f"; {advice}" if advice else ""))

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            path, mode, flags = args
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and bool(flags & _WRITE_FLAGS))
            if not inside(path, write_roots if writes else read_roots):
                where = "only files in the working directory" + ("" if writes else " and Python's libraries")
                raise PermissionError(f"sandbox: cannot {'write' if writes else 'read'} {path!r}: {where} are allowed")
        elif event in _PATH_EVENTS:
            spots, dir_fds, writes = _PATH_EVENTS[event]
            for spot, fd_spot in zip(spots, dir_fds, strict=True):
                dir_fd = args[fd_spot] if fd_spot is not None else None
                if not inside(args[spot], write_roots if writes else read_roots, dir_fd):
                    verb = "change" if writes else "read"
                    raise PermissionError(f"sandbox: cannot {verb} {args[spot]!r} ({event}): only files in the "
                                          "working directory are allowed")
        elif event == "sqlite3.connect":
            path = sqlite_path(args[0])
            if path is not None and not inside(path, write_roots):
                raise PermissionError(f"sandbox: cannot open the database {args[0]!r}: only databases in the "
                                      "working directory (or ':memory:') are allowed")
        elif event == "import":
            name = args[0]
            if name == _SHARED_MEMORY or (name in UNAUDITED_FILE_MODULES and not files_confined):
                deny(f"the module {name!r} (it reaches files or memory outside the sandbox's limits)",
                     "keep data in Python objects or in ordinary files in the working directory")
        elif event.startswith("socket."):
            if event != "socket.__new__" or args[1] != 1:  # AF_UNIX socketpairs (asyncio) stay possible
                deny(f"network access ({event})")
        elif event in _PROCESS_EVENTS:
            deny(f"starting processes or sending signals ({event})", "compute the result in this Python program")
        elif event.startswith("ctypes."):
            deny(f"ctypes ({event})", "use plain Python or numpy")
        elif event in _OTHER_EVENTS:
            deny(_OTHER_EVENTS[event])

    guard_unaudited_calls(inside, write_roots, read_roots)
    return hook


def _path_check(work: str, py_roots: list[str]) -> tuple[Callable[..., bool], tuple[str, ...], tuple[str, ...]]:
    write_roots = (os.path.realpath(work),)
    read_roots = (*write_roots, *py_roots, *_READABLE_FILES)
    realpath, readlink, fsdecode, join, isabs, split = (os.path.realpath, os.readlink, os.fsdecode, os.path.join,
                                                        os.path.isabs, os.path.split)

    def inside(path: Any, roots: tuple[str, ...], dir_fd: Any = None, follow: bool = True) -> bool:
        """Whether ``path`` resolves under one of ``roots`` (its last link not followed where ``follow`` is False)."""
        if path is None:
            path = "."
        if isinstance(path, int):
            return True  # an already open descriptor
        # realpath calls the guarded os.lstat, and takes a refusal for "not a link": the guards must stand aside
        _busy.on = True
        try:
            text = fsdecode(path)
            if isinstance(dir_fd, int) and dir_fd >= 0 and not isabs(text):
                text = join(readlink(f"/proc/self/fd/{dir_fd}"), text)
            if follow:
                real = realpath(text)
            else:
                head, tail = split(text)
                real = join(realpath(head or "."), tail) if tail not in ("", ".", "..") else realpath(text)
        finally:
            _busy.on = False
        return any(real == r or real.startswith(r + "/") for r in roots)

    return inside, write_roots, read_roots


_busy = threading.local()  # set while ``inside`` checks a path: its own calls go to the real functions


def sqlite_path(database: Any) -> str | None:
    """The file a ``sqlite3.connect`` argument names (a URI's path too), or None for an in-memory database.

    The uri flag is not in the audit event, so ``file:`` is always read as a URI: stricter, never looser.
    """
    text = os.fsdecode(database) if isinstance(database, (str, bytes, os.PathLike)) else str(database)
    if text in ("", ":memory:"):
        return None
    if not text.startswith("file:"):
        return text
    rest, _, query = text[len("file:"):].partition("?")
    rest = rest.partition("#")[0]
    if rest.startswith("//"):  # file://host/path: only an empty host or localhost is valid
        rest = "/" + rest[2:].partition("/")[2]
    params = dict(p.partition("=")[::2] for p in query.split("&") if p)
    if params.get("mode") == "memory" or (rest in ("", ":memory:") and "vfs" not in params):
        return None
    # any other VFS could read what it likes; a relative URI path is relative to the working directory
    return "/" if "vfs" in params else unquote(rest)


def guard_unaudited_calls(inside: Callable[..., bool], write_roots: tuple[str, ...],
                          read_roots: tuple[str, ...]) -> None:
    """Replace the calls that raise no audit event with checked versions (in ``os`` and ``posix`` alike)."""

    def checked(name: str, original: Callable[..., Any], spot: int, fd_kw: str | None,
                writes: bool) -> Callable[..., Any]:
        roots = write_roots if writes else read_roots

        def call(*args: Any, **kwargs: Any) -> Any:
            path = args[spot] if len(args) > spot else kwargs.get("path")  # by keyword too
            if not getattr(_busy, "on", False) and path is not None:
                follow = kwargs.get("follow_symlinks", True) and name not in ("lstat", "readlink")
                if not inside(path, roots, kwargs.get(fd_kw) if fd_kw else None, follow):
                    verb = "change" if writes else "look at"
                    raise PermissionError(f"sandbox: cannot {verb} {path!r} (os.{name}): only files in the "
                                          "working directory are allowed")
            return original(*args, **kwargs)

        call.__name__ = call.__qualname__ = name
        return call

    def refused(what: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            raise PermissionError(f"sandbox: {what} is not allowed here")

        return call

    posix = sys.modules.get("posix")
    for name, (spot, fd_kw, writes) in _UNAUDITED_PATH_CALLS.items():
        original = getattr(os, name, None)
        if original is not None:
            _replace((os, posix), name, checked(name, original, spot, fd_kw, writes))
    for (module, name), what in _UNAUDITED_DENIED.items():
        if module == "os" and hasattr(os, name):
            _replace((os, posix), name, refused(what))
        elif module == "signal" and hasattr(signal, name):
            _replace((signal, sys.modules.get("_signal")), name, refused(what))


def _replace(modules: tuple[Any, ...], name: str, value: Any) -> None:
    for module in modules:
        if module is not None and hasattr(module, name):
            setattr(module, name, value)
