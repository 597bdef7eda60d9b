"""The Python sandbox, in real child processes: each escape is attempted and must fail.

Tests with ``audit=False`` leave out the audit hook to show that the kernel layers hold on their own;
they are skipped where this kernel lacks the layer they rely on.
"""

from __future__ import annotations

import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import pytest

from agentkd.tools import python_tool, run_python
from agentkd.tools.sandbox import MAX_CAPTURE, NO_OUTPUT, SandboxResult, describe, remove_tree, signal_name


def _denied(result: SandboxResult, audit: bool = True) -> bool:
    """Refused by the audit hook (its message), or without it by the kernel (an OS error)."""
    by = "PermissionError: sandbox:" if audit else "Error: [Errno"
    return result.returncode != 0 and by in result.stderr


def _needs(result: SandboxResult, layer: str) -> None:
    if layer not in result.layers:
        pytest.skip(f"the {layer} layer is not available on this kernel (active: {result.layers})")


def test_normal_code_with_numpy_and_math_works() -> None:
    code = """
import math, fractions, decimal, itertools, collections, datetime
import numpy as np
print(math.comb(10, 3), fractions.Fraction(1, 3) + fractions.Fraction(1, 6), decimal.Decimal("1.1") * 3)
print(len(list(itertools.permutations(range(4)))), collections.Counter("abca")["a"], datetime.date(2024, 3, 1))
print(np.linalg.solve(np.array([[2.0, 1.0], [1.0, 3.0]]), np.array([3.0, 5.0])).round(3).tolist())
"""
    result = run_python(code)
    assert result.ok, result.stderr
    assert result.stdout.splitlines() == ["120 1/2 3.3", "24 2 2024-03-01", "[0.8, 1.4]"]
    assert {"rlimits", "audit"} <= set(result.layers)


def test_the_working_directory_is_usable_and_removed_afterwards() -> None:
    result = run_python("import os\nopen('a.txt', 'w').write('hi')\nos.mkdir('d')\nos.rename('a.txt', 'd/b.txt')\n"
                        "print(os.getcwd())\nprint(open('d/b.txt').read())")
    assert result.ok, result.stderr
    workdir, content = result.stdout.splitlines()
    assert content == "hi"
    assert not Path(workdir).exists() and not Path(workdir).parent.exists()


@pytest.mark.parametrize("audit", [True, False])
def test_reading_outside_the_sandbox_fails(tmp_path: Path, audit: bool) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    result = run_python(f"print(open({str(secret)!r}).read())\n", audit=audit)
    if not audit:
        _needs(result, "landlock")
    assert _denied(result, audit) and "TOP-SECRET-VALUE" not in result.stdout
    passwd = run_python("print(open('/etc/passwd').read())", audit=audit)
    assert _denied(passwd, audit) and "root:" not in passwd.stdout
    listing = run_python(f"import os; print(os.listdir({str(tmp_path)!r}))", audit=audit)
    assert _denied(listing, audit) and "secret.txt" not in listing.stdout


@pytest.mark.parametrize("audit", [True, False])
def test_writing_outside_the_sandbox_fails(tmp_path: Path, audit: bool) -> None:
    target = tmp_path / "pwned.txt"
    keep = tmp_path / "keep.txt"
    keep.write_text("keep me")
    code = f"""
import os
for attempt in (lambda: open({str(target)!r}, "w").write("x"), lambda: os.remove({str(keep)!r}),
                lambda: os.symlink({str(keep)!r}, "link") or open("link", "w").write("x")):
    try:
        attempt()
    except OSError as exc:
        print(type(exc).__name__, str(exc).startswith("sandbox:"))
"""
    result = run_python(code, audit=audit)
    if not audit:
        _needs(result, "landlock")
    assert result.stdout.splitlines() == [f"PermissionError {audit}"] * 3, result.stderr
    assert not target.exists() and keep.read_text() == "keep me"


@pytest.mark.parametrize("audit", [True, False])
def test_network_is_unreachable(audit: bool) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        code = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('connected')"
        result = run_python(code, audit=audit)
        if not audit:
            _needs(result, "netns")
        assert result.returncode != 0 and "connected" not in result.stdout
        assert ("sandbox: network access" if audit else "Error") in result.stderr
        server.settimeout(0.1)
        with pytest.raises(TimeoutError):
            server.accept()  # nobody connected
    lookup = run_python("import socket; print(socket.getaddrinfo('example.com', 80))", audit=audit)
    assert lookup.returncode != 0 and "example" not in lookup.stdout


@pytest.mark.parametrize("audit", [True, False])
@pytest.mark.parametrize("code", [
    "import os\nwhile True:\n    os.fork()",
    "import subprocess\nsubprocess.run(['ls'])",
    "import os\nrc = os.system('touch {marker}')\nprint('status', rc)\nassert rc == 0",
    "import os\nos.posix_spawn('/bin/touch', ['touch', '{marker}'], {{}})",
])
def test_starting_processes_fails(tmp_path: Path, code: str, audit: bool) -> None:
    marker = tmp_path / "marker"
    result = run_python(code.format(marker=marker), timeout=5, audit=audit)
    if not audit:
        _needs(result, "seccomp")
    assert result.returncode != 0 and not result.timed_out, result.stderr
    assert not marker.exists()
    assert not audit or "sandbox: starting processes" in result.stderr


def test_kernel_layers_are_active_where_the_kernel_offers_them() -> None:
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"):
        pytest.skip("the kernel layers are implemented for Linux on x86_64 and aarch64")
    layers = set(run_python("pass").layers)
    assert {"rlimits", "seccomp", "audit"} <= layers
    probe = "import ctypes, sys; libc = ctypes.CDLL(None); libc.syscall.restype = ctypes.c_long; "
    has_landlock = subprocess.run([sys.executable, "-c", probe + "sys.exit(libc.syscall(444, None, 0, 1) < 1)"])
    assert ("landlock" in layers) == (has_landlock.returncode == 0)
    has_netns = subprocess.run([sys.executable, "-c", probe + "sys.exit(libc.unshare(0x50000000) != 0)"])
    assert ("netns" in layers) == (has_netns.returncode == 0)


def test_bypassing_the_audit_hook_still_cannot_fork() -> None:
    code = """
import _posixsubprocess, os
r, w = os.pipe()
pid = _posixsubprocess.fork_exec([b"/bin/echo", b"hi"], [b"/bin/echo"], True, (w,), None, None,
    -1, -1, -1, -1, -1, -1, r, w, False, False, -1, None, None, None, -1, None, False)
print("spawned", pid)
"""
    result = run_python(code)
    _needs(result, "seccomp")
    assert "PermissionError: [Errno 1] Operation not permitted" in result.stderr and "spawned" not in result.stdout


@pytest.mark.parametrize("audit", [True, False])
def test_signals_cannot_reach_the_parent(audit: bool) -> None:
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        result = run_python(f"import os, signal\nos.kill({os.getpid()}, signal.SIGUSR1)\nprint('sent')", audit=audit)
        time.sleep(0.05)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    if not audit:
        _needs(result, "seccomp")
    assert _denied(result, audit) and received == []


@pytest.mark.parametrize("audit", [True, False])
def test_ctypes_is_blocked(audit: bool) -> None:
    result = run_python("import ctypes\nlibc = ctypes.CDLL(None)\nprint('pid', libc.getpid())", audit=audit)
    if audit:
        assert _denied(result) and "pid" not in result.stdout and "ctypes" in result.stderr
    else:  # ctypes itself works without the hook, but what it could reach is still confined
        _needs(result, "seccomp")
        forked = run_python("import ctypes\nprint('fork', ctypes.CDLL(None).fork())", audit=False)
        assert forked.stdout.strip() == "fork -1"


@pytest.mark.parametrize("code", ["b = bytearray(10**10)", "a = []\nwhile True:\n    a.append(' ' * 10**6)"])
def test_huge_allocations_raise_memory_error(code: str) -> None:
    result = run_python(code, memory_mb=256)
    assert result.returncode == 1 and not result.timed_out
    assert result.stderr.strip().endswith("MemoryError")


def test_an_infinite_loop_is_killed_at_the_timeout() -> None:
    start = time.perf_counter()
    result = run_python("print('started', flush=True)\nwhile True:\n    pass", timeout=1.0)
    assert time.perf_counter() - start < 3.0
    assert result.timed_out and result.returncode == -signal.SIGKILL
    assert result.stdout == "started\n"  # what was printed before the kill is kept


def test_the_environment_has_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-do-not-leak")
    result = run_python("import os\nprint(os.environ.get('OPENAI_API_KEY'))\nprint(sorted(os.environ))")
    assert result.ok and result.stdout.splitlines()[0] == "None"
    assert "sk-test-do-not-leak" not in result.stdout + result.stderr


def test_output_is_capped() -> None:
    result = run_python("print('x' * 200_000)\nprint('done')")
    assert result.ok
    assert len(result.stdout) < MAX_CAPTURE + 100 and "output cut" in result.stdout


def test_python_tool_output_for_the_model() -> None:
    python = python_tool(timeout=1.0)
    assert python.run({"code": "print(6 * 7)"}).output == "42"
    assert python.run({"code": "x = 6 * 7"}).output == NO_OUTPUT
    failed = python.run({"code": "print('before')\nvalues = [1, 2]\nprint(values[5])"})
    assert failed.error
    assert failed.output.startswith("before\nTraceback")
    assert 'File "main.py", line 3' in failed.output and "IndexError: list index out of range" in failed.output
    assert "_guard.py" not in python.run({"code": "open('/etc/passwd')"}).output
    slow = python.run({"code": "while True:\n    pass"})
    assert slow.error and "stopped after 1 s" in slow.output


def test_startup_overhead_is_small() -> None:
    times = [run_python("print(1 + 1)").seconds for _ in range(5)]
    assert statistics.median(times) < 0.5, times


def test_a_real_time_signal_is_named_in_the_error_not_a_crash() -> None:
    python = python_tool(timeout=5.0)
    killed = python.run({"code": "import os, signal\nsignal.signal(40, signal.SIG_DFL)\nsignal.raise_signal(40)"})
    assert killed.error and f"killed by SIGRTMIN+{40 - signal.SIGRTMIN}" in killed.output
    assert signal_name(9) == "SIGKILL" and signal_name(200) == "signal 200"


def test_writing_more_than_the_disk_limit_stops_with_a_message_the_model_can_act_on() -> None:
    code = "for i in range(8):\n    open(f'f{i}', 'wb').write(b'x' * (15 << 20))\nprint('wrote all')"
    for without in ((), ("tmpfs",)):  # the tmpfs caps it; without one the parent watches the directory
        result = run_python(code, disk_mb=32, without=without)
        assert "wrote all" not in result.stdout and not result.ok, (without, result)
        message = describe(result, timeout=10, memory_mb=512, disk_mb=32).output
        assert "32 MB of files in all" in message, message


def test_a_deep_tree_left_by_the_code_is_still_removed() -> None:
    code = "import os\nprint(os.getcwd())\nfor _ in range(1100):\n    os.mkdir('d')\n    os.chdir('d')\n" \
           "open('f', 'w').write('x')\nos.chmod('.', 0)"
    result = run_python(code, timeout=20, without=("tmpfs",))  # with the tmpfs the files never reach our disk
    assert result.ok, result.stderr
    assert not Path(result.stdout.strip()).parent.exists()


def test_remove_tree_needs_no_recursion_and_no_long_paths(tmp_path: Path) -> None:
    root = tmp_path / "run"
    root.mkdir()
    fd = os.open(root, os.O_RDONLY)
    for _ in range(1500):  # 1,500 levels of 200-character names: far past PATH_MAX and the recursion limit
        os.mkdir("n" * 200, dir_fd=fd)
        nxt = os.open("n" * 200, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = nxt
    os.close(os.open("file", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    os.fchmod(fd, 0o500)
    os.close(fd)
    remove_tree(root)
    assert not root.exists()


def test_memfd_memory_counts_against_the_limit() -> None:
    code = "import os\nfds = [os.memfd_create(f'm{i}') for i in range(40)]\n" \
           "[os.write(fd, b'x' * (15 << 20)) for fd in fds]"
    for without in ((), ("audit",)):
        result = run_python(code, memory_mb=128, without=without)
        if without:
            _needs(result, "seccomp")
        assert result.returncode == 1 and "PermissionError" in result.stderr, result.stderr
