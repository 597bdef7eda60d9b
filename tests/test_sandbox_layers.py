"""The sandbox's escape suite run with each layer switched off in turn: every escape is closed by the
layers that remain, so a kernel without one of them (Landlock ABI <= 5, no Landlock, no user
namespaces) is weaker only where the suite says so. Each escape is a real attempt in a real child.
"""

from __future__ import annotations

import os
import resource
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentkd.tools import run_python
from agentkd.tools.sandbox import LAYERS, SandboxResult

if sys.platform != "linux":
    pytest.skip("the layered sandbox is Linux's", allow_module_level=True)


@dataclass
class Escape:
    name: str
    code: str  # prints ESCAPED when the attempt worked inside the sandbox
    blockers: frozenset[str]  # the layers each of which closes it on its own
    escaped: Callable[[SandboxResult], bool] = lambda r: "ESCAPED" in r.stdout


@dataclass
class Targets:
    """What lives outside the sandbox: a secret, a file to keep, a SQLite database, an unrelated process."""

    secret: Path
    keep: Path
    db: Path
    victim: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Targets]:
    root = tmp_path_factory.mktemp("outside")
    (root / "secret.txt").write_text("S" * 12345)
    (root / "keep.txt").write_text("keep me")
    with sqlite3.connect(root / "data.db") as db:
        db.execute("create table t (x)")
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        yield Targets(root / "secret.txt", root / "keep.txt", root / "data.db", victim)
    finally:
        victim.kill()
        victim.wait()


def _try(body: str) -> str:
    """``body`` in a try: ESCAPED when it ran through, the refusal otherwise (exit status 0 either way)."""
    indented = "\n".join("    " + line for line in body.strip().splitlines())
    return f"import os, signal, sys\ntry:\n{indented}\n    print('ESCAPED')\nexcept Exception as exc:\n" \
           "    print('blocked', type(exc).__name__, exc)\n"


def escapes(t: Targets) -> list[Escape]:
    fs, proc = frozenset({"landlock", "audit"}), frozenset({"seccomp", "audit"})
    victim = t.victim.pid
    return [
        Escape("read a file", _try(f"print(open({str(t.secret)!r}).read()[:3])"), fs),
        Escape("write a file", _try(f"open({str(t.keep)!r}, 'w').write('x')"), fs,
               lambda r: t.keep.read_text() != "keep me"),
        Escape("make a fifo outside", _try(f"os.mkfifo({str(t.secret.parent / 'fifo')!r})"), fs,
               lambda r: (t.secret.parent / "fifo").exists()),
        Escape("sqlite URI", _try(f"import sqlite3\nc = sqlite3.connect('file:{t.db}?mode=rw', uri=True)\n"
                                  "c.execute('insert into t values (1)')\nc.commit()"), fs,
               lambda r: _rows(t.db) > 0),
        Escape("sqlite ATTACH", _try(f"import sqlite3\nc = sqlite3.connect(':memory:')\n"
                                     f"c.execute(\"attach database '{t.db}' as o\")\n"
                                     "c.execute('insert into o.t values (2)')\nc.commit()"), fs,
               lambda r: _rows(t.db) > 0),
        Escape("stat a file", _try(f"print('size', os.stat({str(t.secret)!r}).st_size)\n"
                                   f"print('size', os.stat(path={str(t.secret)!r}).st_size)"), frozenset({"audit"}),
               lambda r: "12345" in r.stdout),
        Escape("access and readlink", _try(f"assert os.access({str(t.secret)!r}, os.R_OK)\n"
                                           f"print(os.readlink('/proc/{victim}/exe'))"), frozenset({"audit"})),
        Escape("connect", _try("import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)"),
               frozenset({"netns", "seccomp", "audit"}), lambda r: "ESCAPED" in r.stdout or "Refused" in r.stdout),
        Escape("start a process", _try("import subprocess\nsubprocess.run(['true'], check=True)"), proc),
        Escape("signal the parent", _try(f"os.kill({os.getpid()}, 0)"), proc),
        Escape("pidfd signal", _try(f"fd = os.pidfd_open({victim})\nsignal.pidfd_send_signal(fd, signal.SIGTERM)"),
               proc, lambda r: t.victim.poll() is not None),
        Escape("limits of another process", _try(f"import resource\nresource.prlimit({victim}, "
                                                 "resource.RLIMIT_NOFILE, (17, 17))"),
               proc, lambda r: "ESCAPED" in r.stdout or _files_limit(victim) == 17),
        Escape("memfd memory", _try("fds = [os.memfd_create(f'm{i}') for i in range(12)]\n"
                                    "[os.write(fd, b'x' * (15 << 20)) for fd in fds]"), proc),
        Escape("POSIX shared memory", _try("from multiprocessing import shared_memory\n"
                                           "m = shared_memory.SharedMemory(create=True, size=1 << 20)\n"
                                           "m.buf[:1] = b'x'\nm.unlink()"), fs),
        Escape("System V shared memory", _try("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                                              "i = libc.shmget(0, 1 << 28, 0o1600)\nassert i >= 0\n"
                                              "libc.shmctl(i, 0, None)"), proc),
        # always closed: the tmpfs caps it, or without one the parent watches the working directory
        Escape("fill the disk", _try("for i in range(12):\n    open(f'f{i}', 'wb').write(b'x' * (15 << 20))"),
               frozenset(LAYERS)),
    ]


def _rows(db: Path) -> int:
    with sqlite3.connect(db) as c:
        return int(c.execute("select count(*) from t").fetchone()[0])


def _files_limit(pid: int) -> int:
    return resource.prlimit(pid, resource.RLIMIT_NOFILE)[0]


@pytest.mark.parametrize("off", [None, *LAYERS])
def test_every_escape_is_closed_by_the_layers_that_remain(targets: Targets, off: str | None) -> None:
    available = set(run_python("pass").layers)
    if off is not None and off not in available:
        pytest.skip(f"this system has no {off} layer to switch off (active: {sorted(available)})")
    active = available - {off}
    files = _files_limit(targets.victim.pid)
    failures = []
    for escape in escapes(targets):
        if escape.blockers.isdisjoint(active):
            continue  # no remaining layer claims this one
        result = run_python(escape.code, memory_mb=128, disk_mb=32, timeout=10, without=[off] if off else [])
        if escape.escaped(result) or result.timed_out:
            failures.append(f"{escape.name}: {result.stdout.strip()[-300:]} {result.stderr.strip()[-300:]}")
    assert targets.victim.poll() is None and _files_limit(targets.victim.pid) == files
    assert not failures, f"with {off or 'no'} layer off, active {sorted(active)}:\n" + "\n".join(failures)


def test_the_full_set_of_layers_is_reported_and_a_shortfall_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    from agentkd.tools import sandbox

    layers = run_python("pass").layers
    assert set(layers) <= set(LAYERS) and {"rlimits", "audit"} <= set(layers)
    sandbox._warned = False
    with caplog.at_level("WARNING", logger="agentkd.tools"):
        run_python("pass")
        run_python("pass")
    warned = [r for r in caplog.records if "sandbox runs without" in r.getMessage()]
    assert len(warned) == (0 if set(layers) == set(LAYERS) else 1)
    with caplog.at_level("WARNING", logger="agentkd.tools"):  # a layer left out on purpose is not a shortfall
        sandbox._warned = False
        run_python("pass", without=["seccomp"])
    assert not [r for r in caplog.records if "sandbox runs without" in r.getMessage()][len(warned):]


def test_unknown_layers_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown sandbox layers"):
        run_python("pass", without=["landlok"])
