"""Run model-written Python in a separate, confined process, and the ``python`` tool built on it.

Each run gets a fresh ``python -I`` process in a new session, a temporary working directory that is
deleted afterwards, a minimal environment (no API keys), and a wall-clock timeout that kills the
whole process group. Inside, ``_guard.py`` applies the layers (``LAYERS``): user and network
namespaces (no network), a size-capped tmpfs as the working directory, Landlock (files), seccomp (no
processes, exec, other processes or memory outside the limit), rlimits (CPU, memory, file size), then
an audit hook (``_hook.py``) that turns the usual attempts into errors the model can read. Where a
layer is missing the others still apply, and agentkd says so once.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from agentkd.tools.base import Tool, ToolResult, tool

GUARD = Path(__file__).with_name("_guard.py")
MAX_CAPTURE = 20_000  # bytes of stdout and of stderr kept from a run
FILE_LIMIT_MB = 16  # RLIMIT_FSIZE: the largest file (stdout included) the child may write
DISK_LIMIT_MB = 64  # all files in the working directory together
MAX_FILES = 10_000  # entries in the working directory, where the tmpfs is missing and we count them
WATCH_INTERVAL = 0.05  # seconds between looks at the working directory, where the tmpfs is missing
LAYERS = ("rlimits", "netns", "tmpfs", "landlock", "seccomp", "audit")  # the full set, in the order applied
log = logging.getLogger("agentkd.tools")
_warned = False
NO_OUTPUT = "(no output — use print() to show the result)"


@dataclass
class SandboxResult:
    """What a sandboxed run produced; ``layers`` names the isolation layers that were in force."""

    stdout: str
    stderr: str
    returncode: int
    timed_out: bool
    seconds: float
    layers: tuple[str, ...] = ()
    disk_full: bool = False  # stopped for writing more than the working directory may hold

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def run_python(code: str, *, timeout: float = 10.0, memory_mb: int = 512, disk_mb: int = DISK_LIMIT_MB,
               audit: bool = True, without: Iterable[str] = ()) -> SandboxResult:
    """Run ``code`` in a sandboxed child process and wait at most ``timeout`` seconds.

    ``without`` names layers to leave out (``audit=False`` is ``without=("audit",)``), to check that the
    others hold on their own.
    """
    off = set(without) | (set() if audit else {"audit"})
    if off - set(LAYERS):
        raise ValueError(f"unknown sandbox layers {sorted(off - set(LAYERS))}; the layers are {', '.join(LAYERS)}")
    run_dir = Path(tempfile.mkdtemp(prefix="agentkd-sandbox-"))
    try:
        work = run_dir / "work"
        work.mkdir()
        (run_dir / "code.py").write_text(code, encoding="utf-8")
        result = _run(run_dir, work, timeout=timeout, memory_mb=memory_mb, disk_mb=disk_mb, off=off)
    finally:
        remove_tree(run_dir)
    if not off:
        _warn_once(result.layers)
    return result


def _run(run_dir: Path, work: Path, *, timeout: float, memory_mb: int, disk_mb: int, off: set[str]) -> SandboxResult:
    report_r, report_w = os.pipe()  # the child writes the names of its active layers here
    argv = [sys.executable, "-I", str(GUARD), str(work), str(math.ceil(timeout) + 1), str(memory_mb),
            str(FILE_LIMIT_MB), str(disk_mb), ",".join(sorted(off)), str(report_w)]
    start = time.perf_counter()
    disk_full = False
    try:
        with open(run_dir / "code.py", "rb") as stdin, open(run_dir / "stdout", "wb") as out, \
                open(run_dir / "stderr", "wb") as err:
            proc = subprocess.Popen(argv, stdin=stdin, stdout=out, stderr=err, cwd=work, env=child_env(work),
                                    start_new_session=True, pass_fds=(report_w,))
            os.close(report_w)
            report_w = -1
            try:
                layers = _read_report(report_r, timeout)
                # without the tmpfs the kernel does not cap the work directory's total: watch it from here
                watch = None if "tmpfs" in layers else (lambda: _over_disk_limit(work, disk_mb << 20))
                finished, disk_full = _wait(proc, timeout - (time.perf_counter() - start), watch)
            finally:  # also when interrupted: never leave the child running
                _kill_group(proc.pid)  # before reaping, so the group id cannot have been reused
                proc.wait()
        seconds = time.perf_counter() - start
    finally:
        os.close(report_r)
        if report_w >= 0:
            os.close(report_w)
    return SandboxResult(stdout=_head(run_dir / "stdout"), stderr=_tail(run_dir / "stderr"),
                         returncode=proc.returncode, timed_out=not finished and not disk_full, seconds=seconds,
                         layers=tuple(layers), disk_full=disk_full)


def _read_report(fd: int, timeout: float) -> list[str]:
    """The child's layers, written before the model's code starts (empty if it died first)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    if not poller.poll(max(timeout, 0) * 1000):
        return []
    return os.read(fd, 1024).decode(errors="replace").split()


def _warn_once(layers: tuple[str, ...]) -> None:
    global _warned
    missing = [name for name in LAYERS if name not in layers]
    if missing and not _warned:
        _warned = True
        log.warning("the Python sandbox runs without %s (this system does not offer %s); the other layers "
                    "still apply. For the full set use Linux >= 6.12 with unprivileged user namespaces "
                    "allowed (kernel.unprivileged_userns_clone=1, no AppArmor restriction).",
                    ", ".join(missing), "it" if len(missing) == 1 else "them")


def child_env(work: Path) -> dict[str, str]:
    """A minimal environment: nothing inherited from ours, so no API keys or tokens reach the child."""
    return {"PATH": os.defpath, "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": str(work)}


def _wait(proc: subprocess.Popen[bytes], timeout: float,
          watch: Callable[[], bool] | None = None) -> tuple[bool, bool]:
    """Wait for the child to exit, waking up as soon as it does: (exited, stopped because ``watch`` fired)."""
    deadline = time.perf_counter() + max(timeout, 0)
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # not Linux >= 5.3
        pidfd = -1
    try:
        poller = select.poll()
        if pidfd >= 0:
            poller.register(pidfd, select.POLLIN)
        while (left := deadline - time.perf_counter()) > 0:
            step = left if watch is None else min(left, WATCH_INTERVAL)
            if pidfd >= 0:
                if poller.poll(step * 1000):
                    return True, False
            else:
                try:
                    proc.wait(step)
                    return True, False
                except subprocess.TimeoutExpired:
                    pass
            if watch is not None and watch():
                return False, True
        return proc.poll() is not None, False
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _over_disk_limit(work: Path, limit: int) -> bool:
    """Whether the tree under ``work`` holds more than ``limit`` bytes or ``MAX_FILES`` entries."""
    used, entries, stack = 0, 0, [str(work)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    entries += 1
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    used += st.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    if used > limit or entries > MAX_FILES:
                        return True
        except OSError:  # removed or made unreadable while we looked: judged at the next look
            continue
    return False


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(pgid, signal.SIGKILL)


def _head(path: Path) -> str:
    size = path.stat().st_size
    with open(path, "rb") as f:
        text = f.read(MAX_CAPTURE).decode(errors="replace")
    return text + (f"\n... [output cut: {size} bytes in all]" if size > MAX_CAPTURE else "")


def _tail(path: Path) -> str:
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(size - MAX_CAPTURE, 0))
        text = f.read().decode(errors="replace")
    return (f"[... {size - MAX_CAPTURE} earlier bytes cut]\n" if size > MAX_CAPTURE else "") + text


def remove_tree(root: Path) -> None:
    """Delete ``root`` however deep its tree and whatever permissions the code left on it.

    Without recursion and without long paths: each directory met is first moved up to ``root`` itself,
    so only two descriptors are open at a time and every name is one component long.
    """
    try:
        top = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return
    try:
        queue: list[str | None] = [None]  # None: root itself
        moved = 0
        os.chmod(top, 0o700)
        while queue:
            name = queue.pop()
            fd = top if name is None else _open_dir(top, name)
            try:
                for entry in list(os.scandir(fd)):
                    if entry.is_dir(follow_symlinks=False):
                        moved += 1
                        flat = f".agentkd-rm-{moved}"
                        with contextlib.suppress(OSError):  # moving a directory needs write access to it
                            os.chmod(entry.name, 0o700, dir_fd=fd)
                        os.rename(entry.name, flat, src_dir_fd=fd, dst_dir_fd=top)
                        queue.append(flat)
                    else:
                        os.unlink(entry.name, dir_fd=fd)
            finally:
                if fd != top:
                    os.close(fd)
            if name is not None:
                os.rmdir(name, dir_fd=top)
    finally:
        os.close(top)
    os.rmdir(root)


def _open_dir(parent: int, name: str) -> int:
    with contextlib.suppress(OSError):
        os.chmod(name, 0o700, dir_fd=parent)
    return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)


def describe(result: SandboxResult, *, timeout: float, memory_mb: int, disk_mb: int = DISK_LIMIT_MB) -> ToolResult:
    """What the model sees: the program's output, and on failure the end of its traceback."""
    shown = result.stdout.rstrip("\n")
    files_hint = (f"(the sandbox allows {disk_mb} MB of files in all, {FILE_LIMIT_MB} MB per file: write less, "
                  "or keep the data in memory)")
    if result.disk_full:
        return ToolResult(_join(shown, f"Error: OSError: the program was stopped for writing more than {disk_mb} MB "
                                       f"or {MAX_FILES} files to the working directory.", files_hint), True)
    if result.timed_out:
        return ToolResult(_join(shown, f"Error: TimeoutError: the program was stopped after {timeout:g} s. "
                                       "Use a faster method or smaller search, or print partial results."), True)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        trace = "\n".join(lines[-12:])
        if result.returncode < 0:
            name = signal_name(-result.returncode)
            trace = _join(trace, f"Error: the program was killed by {name}"
                                 + (" (CPU time limit)" if name == "SIGXCPU" else ""))
        if "MemoryError" in trace:
            trace += f"\n(the sandbox allows {memory_mb} MB of memory: use less, e.g. generators instead of lists)"
        if "No space left on device" in trace or "File too large" in trace:
            trace += "\n" + files_hint
        if "EOFError" in trace:
            trace += "\n(there is no input: put the data in the program itself)"
        return ToolResult(_join(shown, trace or f"Error: the program exited with status {result.returncode}"), True)
    warnings = "\n".join(result.stderr.strip().splitlines()[-5:])
    return ToolResult(_join(shown or NO_OUTPUT, f"stderr:\n{warnings}" if warnings else ""))


def signal_name(number: int) -> str:
    """``SIGKILL``, ``SIGRTMIN+6``, or ``signal 99``: every number has a name (real-time ones have no enum member)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        rtmin, rtmax = getattr(signal, "SIGRTMIN", 0), getattr(signal, "SIGRTMAX", -1)
        return f"SIGRTMIN+{number - rtmin}" if rtmin <= number <= rtmax else f"signal {number}"


def _join(*parts: str) -> str:
    return "\n".join(p for p in parts if p)


def python_tool(timeout: float = 10.0, memory_mb: int = 512) -> Tool:
    """The ``python`` tool: runs the model's program with ``run_python`` under these limits."""

    def python(code: str) -> ToolResult:
        """Run a Python program.

        Args:
            code: The complete Python 3 program to run. Print the values you need.
        """
        return describe(run_python(code, timeout=timeout, memory_mb=memory_mb), timeout=timeout,
                        memory_mb=memory_mb)

    description = (
        "Run a Python 3 program in a fresh sandboxed process and return what it prints. Use print() to show "
        "results; nothing carries over between calls. The standard library (math, fractions, decimal, "
        "itertools, collections, datetime, ...) and numpy are available. There is no network and no "
        f"subprocess, and files can be written only in the working directory. Limits: {timeout:g} s, "
        f"{memory_mb} MB of memory."
    )
    return tool(name="python", description=description)(python)
