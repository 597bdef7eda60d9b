"""The sandbox child: kernel layers, resource limits and an audit hook, then the model's code.

``agentkd.tools.sandbox`` runs it as ``python -I _guard.py WORK CPU_S MEMORY_MB FSIZE_MB DISK_MB OFF REPORT_FD``
with the code on stdin (OFF: comma-separated layers to leave out, for tests). It is standalone because
agentkd is not importable under ``-I``.

The audit hook (``_hook.py``) turns the common escapes into a PermissionError the model can read, but
Python code can get around an audit hook; the kernel layers (namespaces, Landlock, seccomp, rlimits)
are what hold when it does. Every escape is meant to be closed by two layers at least.
"""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Callable
from typing import Any

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
        here = os.path.dirname(__file__)
        for part in (report, report.__cause__, report.__context__):  # leave out the sandbox's frames (the hook)
            if part is not None:
                part.stack = traceback.StackSummary.from_list(
                    [f for f in part.stack if os.path.dirname(f.filename) != here])
        sys.stdout.flush()
        sys.stderr.write("".join(report.format()))
        sys.exit(1)


def _load_sibling(name: str) -> Any:
    """A sibling module (agentkd is not importable here), or None where it cannot load (``_kernel`` off Linux)."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    try:
        return __import__(name)
    except Exception:
        return None
    finally:
        sys.path.remove(here)
        sys.modules.pop(name, None)


def kernel_layers(work: str, py_roots: list[str], disk_mb: int, off: set[str]) -> list[str]:
    """Enter the namespaces, the work filesystem, Landlock and seccomp, each where the kernel allows it and
    ``off`` does not name it; the names of those applied. The order matters: mounting needs the namespaces
    and must come before Landlock and seccomp, which forbid it."""
    kernel = _load_sibling("_kernel")
    steps: dict[str, Callable[[], bool]] = {
        "netns": lambda: kernel.unshare_network(),
        "tmpfs": lambda: kernel.mount_work(work, disk_mb),
        "landlock": lambda: kernel.landlock(read=[*py_roots, *_SYSTEM_READ], write=[work],
                                            read_write_files=["/dev/null", "/dev/zero", "/dev/urandom"]),
        "seccomp": lambda: kernel.seccomp(),
    }
    applied = []
    for name, apply in steps.items():
        if name in off:
            continue
        try:
            if apply():
                applied.append(name)
        except Exception:  # no such layer on this kernel or platform (kernel is None off Linux): the others apply
            pass
    return applied


def main() -> None:
    """Apply the layers (namespaces, work filesystem, Landlock, seccomp, rlimits, audit hook), then run the code."""
    work, cpu_s, memory_mb, fsize_mb, disk_mb, off_arg, report_fd = sys.argv[1:8]
    off = set(off_arg.split(",")) - {""}
    code = sys.stdin.read()
    py_roots = python_roots()
    hook = _load_sibling("_hook") if "audit" not in off else None  # before Landlock, which hides this directory
    layers = kernel_layers(work, py_roots, int(disk_mb), off)
    if "rlimits" not in off:
        set_limits(int(cpu_s), int(memory_mb), int(fsize_mb), no_processes="seccomp" not in layers)
        layers.insert(0, "rlimits")
    os.chdir(work)  # after the mount: the working directory is the new filesystem, not the one beneath it
    sys.dont_write_bytecode = True
    if hook is not None:
        sys.addaudithook(hook.make_hook(work, py_roots, files_confined="landlock" in layers))
        layers.append("audit")
    os.write(int(report_fd), " ".join(layers).encode())
    os.close(int(report_fd))
    sys.stdout.reconfigure(line_buffering=True, errors="backslashreplace")  # type: ignore[union-attr]
    run(code)


if __name__ == "__main__":
    main()
