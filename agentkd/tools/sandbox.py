"""Run model-written Python in a separate, confined process, and the ``python`` tool built on it.

Each run gets a fresh ``python -I`` process in a new session, a temporary working directory that is
deleted afterwards, a minimal environment (no API keys), and a wall-clock timeout that kills the
whole process group. Inside, ``_guard.py`` applies the layers: user and network namespaces (no
network), Landlock (files), seccomp (no processes, exec or outside signals), rlimits (CPU, memory,
file size), then an audit hook that turns the usual attempts into errors the model can read.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentkd.tools.base import Tool, ToolResult, tool

GUARD = Path(__file__).with_name("_guard.py")
MAX_CAPTURE = 20_000  # bytes of stdout and of stderr kept from a run
FILE_LIMIT_MB = 16  # RLIMIT_FSIZE: the largest file (stdout included) the child may write
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

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def run_python(code: str, *, timeout: float = 10.0, memory_mb: int = 512, audit: bool = True) -> SandboxResult:
    """Run ``code`` in a sandboxed child process and wait at most ``timeout`` seconds.

    ``audit=False`` leaves out the audit hook, to check that the kernel layers hold on their own.
    """
    run_dir = Path(tempfile.mkdtemp(prefix="agentkd-sandbox-"))
    try:
        work = run_dir / "work"
        work.mkdir()
        (run_dir / "code.py").write_text(code, encoding="utf-8")
        return _run(run_dir, work, timeout=timeout, memory_mb=memory_mb, audit=audit)
    finally:
        _remove(run_dir)


def _run(run_dir: Path, work: Path, *, timeout: float, memory_mb: int, audit: bool) -> SandboxResult:
    report_r, report_w = os.pipe()  # the child writes the names of its active layers here
    argv = [sys.executable, "-I", str(GUARD), str(work), str(math.ceil(timeout) + 1), str(memory_mb),
            str(FILE_LIMIT_MB), "1" if audit else "0", str(report_w)]
    start = time.perf_counter()
    try:
        with open(run_dir / "code.py", "rb") as stdin, open(run_dir / "stdout", "wb") as out, \
                open(run_dir / "stderr", "wb") as err:
            proc = subprocess.Popen(argv, stdin=stdin, stdout=out, stderr=err, cwd=work, env=child_env(work),
                                    start_new_session=True, pass_fds=(report_w,))
            os.close(report_w)
            report_w = -1
            try:
                finished = _wait(proc, timeout)
            finally:  # also when interrupted: never leave the child running
                _kill_group(proc.pid)  # before reaping, so the group id cannot have been reused
                proc.wait()
        seconds = time.perf_counter() - start
        layers = os.read(report_r, 1024).decode(errors="replace").split()
    finally:
        os.close(report_r)
        if report_w >= 0:
            os.close(report_w)
    return SandboxResult(stdout=_head(run_dir / "stdout"), stderr=_tail(run_dir / "stderr"),
                         returncode=proc.returncode, timed_out=not finished, seconds=seconds, layers=tuple(layers))


def child_env(work: Path) -> dict[str, str]:
    """A minimal environment: nothing inherited from ours, so no API keys or tokens reach the child."""
    return {"PATH": os.defpath, "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": str(work)}


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait for the child to exit, waking up as soon as it does; False if it is still running."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # not Linux >= 5.3
        try:
            proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(max(timeout, 0) * 1000))
    finally:
        os.close(pidfd)


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


def _remove(path: Path) -> None:
    """Delete the run directory even where the code took away its own permissions."""

    def retry(func: Any, failed: str, _: Any) -> None:
        os.chmod(os.path.dirname(failed), 0o700)
        if os.path.isdir(failed):
            os.chmod(failed, 0o700)
        func(failed)

    shutil.rmtree(path, onerror=retry)


def describe(result: SandboxResult, *, timeout: float, memory_mb: int) -> ToolResult:
    """What the model sees: the program's output, and on failure the end of its traceback."""
    shown = result.stdout.rstrip("\n")
    if result.timed_out:
        return ToolResult(_join(shown, f"Error: TimeoutError: the program was stopped after {timeout:g} s. "
                                       "Use a faster method or smaller search, or print partial results."), True)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        trace = "\n".join(lines[-12:])
        if result.returncode < 0:
            name = signal.Signals(-result.returncode).name
            trace = _join(trace, f"Error: the program was killed by {name}"
                                 + (" (CPU time limit)" if name == "SIGXCPU" else ""))
        if "MemoryError" in trace:
            trace += f"\n(the sandbox allows {memory_mb} MB of memory: use less, e.g. generators instead of lists)"
        if "EOFError" in trace:
            trace += "\n(there is no input: put the data in the program itself)"
        return ToolResult(_join(shown, trace or f"Error: the program exited with status {result.returncode}"), True)
    warnings = "\n".join(result.stderr.strip().splitlines()[-5:])
    return ToolResult(_join(shown or NO_OUTPUT, f"stderr:\n{warnings}" if warnings else ""))


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
