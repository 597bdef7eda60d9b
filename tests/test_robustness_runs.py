"""Damaged run state, bad teachers and models, and servers that never answer (issue #17): each is a clear
error that names the file or the fix and exits non-zero before any work, never a silent restart or a hang."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph

from agentkd.config import get_settings
from agentkd.distill.build import _admitted, _write_spec, latest_unfinished_run
from agentkd.distill.checkpoints import check_checkpoint
from agentkd.distill.nodes import BuildState
from agentkd.errors import LibraryError, ModelNotFoundError, RunStateError
from agentkd.library import Library
from agentkd.models.runlog import RunLog
from agentkd.schema import Strategy

ROOT = Path(__file__).parent.parent


def agentkd(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AGENTKD_HOME": str(home), "COLUMNS": "200", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "agentkd.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=180)


class _Count(TypedDict):
    n: int


def _checkpointed(path: Path, thread: str = "run-1") -> sqlite3.Connection:
    """A real LangGraph SQLite checkpoint of a three-step graph; the connection stays open (as if killed)."""
    g = StateGraph(_Count)
    for name in ("a", "b", "c"):
        g.add_node(name, lambda s: {"n": s["n"] + 1})
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    g.add_edge("b", "c")
    g.add_edge("c", END)
    conn = sqlite3.connect(str(path), check_same_thread=False)
    g.compile(checkpointer=SqliteSaver(conn)).invoke({"n": 0}, {"configurable": {"thread_id": thread}})
    return conn


def test_an_intact_checkpoint_passes_and_each_damage_is_named(tmp_path: Path) -> None:
    live = tmp_path / "live.sqlite"
    conn = _checkpointed(live)
    kept = tmp_path / "kept.sqlite"  # the files as a kill -9 leaves them: database and write-ahead log
    shutil.copy(live, kept)
    shutil.copy(f"{live}-wal", f"{kept}-wal")
    conn.close()
    check_checkpoint(live, "run-1")
    check_checkpoint(kept, "run-1")
    with pytest.raises(RunStateError, match="holds no checkpoint of it"):
        check_checkpoint(live, "run-2")

    cut = tmp_path / "cut.sqlite"
    shutil.copy(kept, cut)
    wal = Path(f"{cut}-wal")
    wal.write_bytes(Path(f"{kept}-wal").read_bytes()[:-100])
    with pytest.raises(RunStateError, match=r"write-ahead log .*cut\.sqlite-wal is truncated"):
        check_checkpoint(cut, "run-1")

    live.write_bytes(b"")
    with pytest.raises(RunStateError, match=r"unusable \(empty\): .*live\.sqlite"):
        check_checkpoint(live, "run-1")
    live.write_bytes(b"\0" * 8192)
    with pytest.raises(RunStateError, match="unusable"):
        check_checkpoint(live, "run-1")
    live.unlink()
    with pytest.raises(RunStateError, match=r"missing: .*live\.sqlite"):
        check_checkpoint(live, "run-1")


def _spec(home: Path, run_id: str, teacher: str, **extra: Any) -> Path:
    runs = home / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    spec = {"run_id": run_id, "task": "gsm_symbolic", "heldout": 2, "config": {"iterations": 1},
            "settings": {"teacher": teacher, "library": str(home / "lib")}, "finished": False, **extra}
    path = runs / f"{run_id}.json"
    path.write_text(json.dumps(spec))
    return path


@pytest.mark.parametrize("damage", ["deleted", "zeroed"])
def test_resume_with_an_unusable_checkpoint_stops_and_names_it(tmp_path: Path, damage: str) -> None:
    home = tmp_path / "home"
    script = tmp_path / "teacher.json"
    script.write_text('{"steps": ["hello"]}')
    _spec(home, "20250101-000000-001", f"script:{script}")
    (home / "runs" / "20250101-000000-001.jsonl").write_text('{"event": "admitted", "id": "s-1"}\n')
    if damage == "zeroed":
        (home / "runs" / "20250101-000000-001.sqlite").write_bytes(b"")
    out = agentkd("build", "--resume", "20250101-000000-001", home=home)
    assert out.returncode == 8, out.stdout + out.stderr
    assert "20250101-000000-001.sqlite" in out.stderr and "Traceback" not in out.stderr + out.stdout
    assert json.loads((home / "runs" / "20250101-000000-001.json").read_text())["finished"] is False


def test_resume_last_skips_an_unreadable_spec_with_a_warning(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _spec(home, "20250101-000000-001", "script:x")
    (home / "runs" / "20250102-000000-001.json").write_text('{"run_id": "2025')  # cut short
    settings = get_settings(home=home)
    with pytest.warns(RuntimeWarning, match=r"skipping run 20250102-000000-001: .*unreadable"):
        assert latest_unfinished_run(settings) == "20250101-000000-001"


def test_a_spec_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    _write_spec(path, {"finished": False})

    class Unprintable:
        def __str__(self) -> str:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        _write_spec(path, {"finished": True, "x": Unprintable()})
    assert json.loads(path.read_text()) == {"finished": False} and list(tmp_path.iterdir()) == [path]


def test_the_run_record_lists_what_the_library_holds_from_the_run(tmp_path: Path) -> None:
    lib = Library.open(str(tmp_path / "lib"), "robust")
    lib.restore([Strategy(id="s-1", title="Rule one", trigger="When one thing", body="Do it.", status="admitted")],
                reason="test")
    log = RunLog(tmp_path / "run.jsonl")
    log.event("admitted", id="s-1")
    log.event("admitted", id="s-gone")  # merged away or deleted since: the library does not hold it
    (tmp_path / "run.jsonl").open("a").write('{"event": "adm')  # a line cut by a kill
    assert _admitted(BuildState(), tmp_path / "run.jsonl", lib) == ["s-1"]


def test_an_unknown_local_teacher_is_refused_before_any_work(tmp_path: Path) -> None:
    out = agentkd("build", "--teacher", "local/nosuch", "--library", str(tmp_path / "lib"), home=tmp_path / "home")
    assert out.returncode == 3 and "unknown model 'nosuch'" in out.stderr, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "home" / "runs").exists()


def test_a_missing_teacher_script_is_a_configuration_error(tmp_path: Path) -> None:
    out = agentkd("build", "--teacher", "script:/nonexistent.json", home=tmp_path / "home")
    assert out.returncode == 2 and "/nonexistent.json" in out.stderr and "No such file" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_wrapped_local_model_error_is_not_retried_as_a_dropped_connection() -> None:
    from agentkd.models.litellm_transport import LitellmTransport

    with pytest.raises(ModelNotFoundError, match="unknown model 'nosuch'"):
        LitellmTransport(timeout=5)(model="local/nosuch", messages=[{"role": "user", "content": "hi"}])


def test_a_truncated_gguf_names_the_file_and_the_fix(smollm_path: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    with smollm_path.open("rb") as f:
        cut.write_bytes(f.read(4 << 20))  # the header and a little of the tensors, as an interrupted copy
    out = agentkd("ask", "hi", "--student", str(cut), "--library", str(tmp_path / "lib"), home=tmp_path / "home")
    assert out.returncode == 3 and str(cut) in out.stderr and "truncated" in out.stderr, out.stderr
    assert "agentkd models pull" in out.stderr and "Traceback" not in out.stderr


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A real TCP server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_chroma_server_that_never_answers_is_a_timeout_not_a_hang(silent_server: int) -> None:
    t0 = time.perf_counter()
    with pytest.raises(LibraryError, match=r"did not answer within 1s") as info:
        Library.open(f"http://127.0.0.1:{silent_server}", "robust", timeout=1.0)
    assert time.perf_counter() - t0 < 10 and info.value.hint and "chroma run" in info.value.hint
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert Library.open.__kwdefaults__["timeout"] > 0  # the CLI's opens are bounded too
