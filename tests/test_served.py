"""A student reached over an OpenAI-compatible server (a real llama.cpp server on localhost), in the loop too."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentkd.cli.main import app
from agentkd.distill.context import BuildConfig, BuildContext
from agentkd.distill.graph import run
from agentkd.errors import ConfigError, ModelNotFoundError
from agentkd.library import Library
from agentkd.models.runlog import RunLog
from agentkd.student.student import Student
from agentkd.testing import fake_teacher
from agentkd.tools import ToolBox
from tests.conftest import free_port
from tests.loopkit import PassPhraseTask, strategy_script, write_script

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.model
def test_a_served_student_answers_and_is_logged(llama_server: str) -> None:
    log = RunLog()
    student = Student("smollm2", api_base=llama_server, tools=ToolBox([]), retriever=None, max_tokens=16, log=log)
    answer = student.ask("Say hello to the visitor.")
    assert answer.text
    usage = log.totals("student")
    assert usage.calls == 1 and usage.prompt_tokens > 0 and usage.completion_tokens > 0


@pytest.mark.model
def test_the_loop_runs_student_episodes_concurrently_on_a_server(tmp_path: Path, llama_server: str) -> None:
    log = RunLog(tmp_path / "run.jsonl")
    library = Library.open(str(tmp_path / "lib"), "passphrase")
    student = Student("smollm2", api_base=llama_server, tools=ToolBox([]), retriever=library, n_ctx=2048,
                      max_tokens=24, log=log)
    ctx = BuildContext(teacher=fake_teacher(strategy_script(4), log=log), student=student, library=library,
                       task=PassPhraseTask(), log=log,
                       config=BuildConfig(iterations=2, batch_size=2, siblings=1, seed=3, student_concurrency=2,
                                          max_strategies_per_iteration=1))
    assert ctx.student_turns._value == 2  # type: ignore[attr-defined]  # two episodes may run at once
    state = run(ctx)
    assert state.stats[0]["passed"] == 0
    assert len(state.admitted) == 1, "the served student is measured with and without the candidate"
    assert state.stats[1]["passed"] == 2


def test_an_unreachable_student_server_says_how_to_fix_it() -> None:
    student = Student("smollm2", api_base=f"http://127.0.0.1:{free_port()}/v1", tools=ToolBox([]), retriever=None)
    with pytest.raises(ModelNotFoundError) as exc:
        student.ask("hi")
    assert "cannot reach the student server" in str(exc.value) and "--student-api-base" in str(exc.value)


def test_student_concurrency_needs_a_served_student() -> None:
    result = CliRunner().invoke(app, ["build", "--student-concurrency", "2"])
    assert isinstance(result.exception, ConfigError) and result.exception.exit_code == 2
    assert "needs a served student" in str(result.exception) and "--student-api-base" in str(result.exception)


@pytest.mark.model
def test_agentkd_build_with_a_served_student(tmp_path: Path, llama_server: str) -> None:
    """The CLI path: --student names the served model, no GGUF is pulled, the run records the server."""
    script = write_script(tmp_path / "teacher.json", failures=6)
    env = {**os.environ, "AGENTKD_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "agentkd.cli", "build", "--task", "tests.loopkit:PassPhraseTask", "--teacher",
         f"script:{script}", "--student", "smollm2", "--student-api-base", llama_server, "--student-concurrency", "2",
         "--library", str(tmp_path / "lib"), "--collection", "passphrase", "--iterations", "1", "--batch-size", "2",
         "--siblings", "1", "--heldout", "2", "--seed", "5"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert not (tmp_path / "home" / "models").exists() or not any((tmp_path / "home" / "models").iterdir())
    spec = json.loads(next((tmp_path / "home" / "runs").glob("*.json")).read_text())
    assert spec["settings"]["student_api_base"] == llama_server and spec["config"]["student_concurrency"] == 2
    assert len(Library.open(str(tmp_path / "lib"), "passphrase").list(status="admitted")) == 1


def test_a_student_server_that_never_answers_times_out_with_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    held: list[socket.socket] = []
    with socket.create_server(("127.0.0.1", 0)) as server:  # accepts every connection, answers none

        def accept() -> None:
            with contextlib.suppress(OSError):
                while True:
                    held.append(server.accept()[0])

        threading.Thread(target=accept, daemon=True).start()
        monkeypatch.setenv("AGENTKD_STUDENT_TIMEOUT", "0.5")
        student = Student("smollm2", api_base=f"http://127.0.0.1:{server.getsockname()[1]}/v1", tools=ToolBox([]),
                          retriever=None)
        t0 = time.monotonic()
        with pytest.raises(ModelNotFoundError) as exc:
            student.ask("hi")
        assert time.monotonic() - t0 < 10
    for conn in held:
        conn.close()
    message = str(exc.value)
    assert "did not answer within 0.5 s" in message and "AGENTKD_STUDENT_TIMEOUT" in message
    assert len(held) == 3  # the first try and two retries, each abandoned at the timeout
