"""The sandbox child: kernel layers, resource limits and an audit hook, then the model's code.

``agentkd.tools.sandbox`` runs it as ``python -I _guard.py WORK CPU_S MEMORY_MB FSIZE_MB AUDIT REPORT_FD``
with the code on stdin. It is standalone because agentkd is not importable under ``-I``.

The audit hook (PEP 578) turns the common escapes into a PermissionError the model can read, but
Python code can get around an audit hook; the kernel layers (namespaces, Landlock, seccomp, rlimits)
are what hold when it does.
"""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Callable
from typing import Any

_PROCESS_EVENTS = frozenset({
    "subprocess.Popen", "os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork", "os.forkpty",
    "pty.spawn", "os.startfile", "os.kill", "os.killpg", "signal.pthread_kill",
})
_OTHER_EVENTS = {  # event -> what the model is told
    **dict.fromkeys(("gc.get_objects", "gc.get_referrers", "gc.get_referents"), "inspecting the interpreter's objects"),
    **dict.fromkeys(("resource.setrlimit", "resource.prlimit"), "changing resource limits"),
    "webbrowser.open": "opening a browser",
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
    "sqlite3.connect": ((0,), (None,), True),
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_READABLE_FILES = ("/dev/null", "/dev/zero", "/dev/urandom", "/usr/share/zoneinfo")
_SYSTEM_READ = ("/usr", "/lib", "/lib64", "/etc/ld.so.cache", "/etc/localtime", "/etc/timezone",
                "/proc/cpuinfo", "/proc/meminfo", "/sys/devices/system/cpu")  # for the dynamic loader and BLAS


def python_roots() -> list[str]:
    """Directories Python imports from that belong to the interpreter's installation."""
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    found = {os.path.realpath(os.path.dirname(os.__file__))}
    for entry in sys.path:
        real = os.path.realpath(entry or ".")
        if os.path.isdir(real) and any(real == p or real.startswith(p + os.sep) for p in prefixes):
            found.add(real)
    return sorted(found)


def make_hook(work: str, py_roots: list[str]) -> Callable[[str, tuple[Any, ...]], None]:
    """An audit hook that confines files to ``work`` (reads also to ``py_roots``) and blocks the rest."""
    write_roots = (os.path.realpath(work),)
    read_roots = (*write_roots, *py_roots, *_READABLE_FILES)
    realpath, readlink, fsdecode, join, isabs = (os.path.realpath, os.readlink, os.fsdecode, os.path.join,
                                                 os.path.isabs)

    def inside(path: Any, roots: tuple[str, ...], dir_fd: Any = None) -> bool:
        if path is None:
            path = "."
        if isinstance(path, int):
            return True  # an already open descriptor
        text = fsdecode(path)
        if isinstance(dir_fd, int) and dir_fd >= 0 and not isabs(text):
            text = join(readlink(f"/proc/self/fd/{dir_fd}"), text)
        real = realpath(text)
        return any(real == r or real.startswith(r + "/") for r in roots)

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
            if event == "sqlite3.connect" and args[0] in (":memory:", ""):
                return
            for spot, fd_spot in zip(spots, dir_fds, strict=True):
                dir_fd = args[fd_spot] if fd_spot is not None else None
                if not inside(args[spot], write_roots if writes else read_roots, dir_fd):
                    verb = "change" if writes else "read"
                    raise PermissionError(f"sandbox: cannot {verb} {args[spot]!r} ({event}): only files in the "
                                          "working directory are allowed")
        elif event.startswith("socket."):
            if event != "socket.__new__" or args[1] != 1:  # AF_UNIX socketpairs (asyncio) stay possible
                deny(f"network access ({event})")
        elif event in _PROCESS_EVENTS:
            deny(f"starting processes or sending signals ({event})", "compute the result in this Python program")
        elif event.startswith("ctypes."):
            deny(f"ctypes ({event})", "use plain Python or numpy")
        elif event in _OTHER_EVENTS:
            deny(_OTHER_EVENTS[event])

    return hook


def set_limits(cpu_s: int, memory_mb: int, fsize_mb: int, *, no_processes: bool) -> None:
    """Cap CPU time, address space, file size, open files and core dumps, and optionally new processes.

    RLIMIT_NPROC = 0 also stops threads, and root ignores it; it is the fallback where seccomp is missing.
    """
    limits = [(resource.RLIMIT_CPU, cpu_s), (resource.RLIMIT_AS, memory_mb << 20),
              (resource.RLIMIT_FSIZE, fsize_mb << 20), (resource.RLIMIT_NOFILE, 256), (resource.RLIMIT_CORE, 0)]
    for which, value in limits + ([(resource.RLIMIT_NPROC, 0)] if no_processes else []):
        try:
            _, hard = resource.getrlimit(which)
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):  # e.g. macOS refuses RLIMIT_AS; the other layers still apply
            pass


def run(code: str) -> None:
    """Run the model's code as ``__main__``, printing a traceback without this file's frames on error."""
    import linecache

    linecache.cache["main.py"] = (len(code), None, code.splitlines(True), "main.py")
    main = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(compile(code, "main.py", "exec"), main)
    except SystemExit:
        raise
    except BaseException as exc:
        import traceback

        report = traceback.TracebackException.from_exception(exc)
        for part in (report, report.__cause__, report.__context__):  # leave out this file's frames (the hook)
            if part is not None:
                part.stack = traceback.StackSummary.from_list([f for f in part.stack if f.filename != __file__])
        sys.stdout.flush()
        sys.stderr.write("".join(report.format()))
        sys.exit(1)


def _load_kernel() -> Any:
    """The sibling ``_kernel`` module (agentkd itself is not importable here), or None off Linux."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    try:
        import _kernel

        return _kernel
    except Exception:
        return None
    finally:
        sys.path.remove(here)
        sys.modules.pop("_kernel", None)


def kernel_layers(work: str, py_roots: list[str]) -> list[str]:
    """Enter the namespaces, Landlock and seccomp, each where the kernel allows it; the names of those applied."""
    kernel = _load_kernel()
    steps: dict[str, Callable[[], bool]] = {
        "netns": lambda: kernel.unshare_network(),
        "landlock": lambda: kernel.landlock(read=[*py_roots, *_SYSTEM_READ], write=[work],
                                            read_write_files=["/dev/null", "/dev/zero", "/dev/urandom"]),
        "seccomp": lambda: kernel.seccomp(),
    }
    applied = []
    for name, apply in steps.items():
        try:
            if apply():
                applied.append(name)
        except Exception:  # no such layer on this kernel or platform (kernel is None off Linux): the others apply
            pass
    return applied


def main() -> None:
    """Apply the layers (namespaces, Landlock, seccomp, rlimits, audit hook), then run the code from stdin."""
    work, cpu_s, memory_mb, fsize_mb, audit, report_fd = sys.argv[1:7]
    code = sys.stdin.read()
    py_roots = python_roots()
    layers = kernel_layers(work, py_roots)
    set_limits(int(cpu_s), int(memory_mb), int(fsize_mb), no_processes="seccomp" not in layers)
    layers.insert(0, "rlimits")
    os.chdir(work)
    sys.dont_write_bytecode = True
    if audit == "1":
        sys.addaudithook(make_hook(work, py_roots))
        layers.append("audit")
    os.write(int(report_fd), " ".join(layers).encode())
    os.close(int(report_fd))
    sys.stdout.reconfigure(line_buffering=True, errors="backslashreplace")  # type: ignore[union-attr]
    run(code)


if __name__ == "__main__":
    main()
