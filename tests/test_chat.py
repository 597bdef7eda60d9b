"""``agentkd chat``: the streaming REPL shows strategies, text and tool calls; /reset and /exit work."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from agentkd.cli.chat import repl, show_turn
from agentkd.student.agent_loop import AgentLoop, StrategiesRetrieved
from agentkd.student.student import Student
from agentkd.tools import ToolBox, calculator
from tests.student_kit import STRATEGIES, ListRetriever, ScriptedLLM, call


def _console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=120, color_system=None), buf


@pytest.mark.model
def test_repl_streams_turns_keeps_history_and_resets(smollm_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    st = Student(smollm_path, n_ctx=2048, n_threads=1, retriever=ListRetriever(STRATEGIES), tools=ToolBox([calculator]),
                 max_tokens=16, max_steps=2)  # fmt: skip
    seen: list[list[dict[str, Any]]] = []
    chat = st.chat

    def spy(messages: list[dict[str, Any]], **kw: Any) -> Any:
        seen.append([dict(m) for m in messages])
        return chat(messages, **kw)

    monkeypatch.setattr(st, "chat", spy)
    monkeypatch.setattr("sys.stdin", io.StringIO("Hi, who are you?\nAnd what is 2+2?\n/reset\nHello again\n/exit\n"))
    out, buf = _console()
    repl(st, out=out)
    text = buf.getvalue()
    assert text.count("strategies: s-a Check units first (0.80), s-b Compute totals with a program (0.90)") == 3
    assert "conversation reset" in text and "prompt tokens cached" in text
    assert [len(m) for m in seen] == [1, 3, 1]  # the 2nd turn carries the 1st; after /reset, nothing
    assert seen[1][1]["role"] == "assistant" and seen[1][1]["content"]


def test_a_turn_shows_strategies_tool_calls_and_results() -> None:
    def script(messages: list[dict[str, Any]], kw: dict[str, Any]) -> dict[str, Any]:
        if messages[-1]["role"] == "tool":
            return {"content": "It is 391."}
        return call("calculator", '{"expression": "17*23"}')

    loop = AgentLoop(ScriptedLLM(script), ToolBox([calculator]))

    def events() -> Any:
        yield StrategiesRetrieved([(STRATEGIES[0], 0.87)])
        yield from loop.run([{"role": "user", "content": "17*23?"}])

    out, buf = _console()
    answer = show_turn(out, events())
    text = buf.getvalue()
    assert answer is not None and answer.text == "It is 391."
    assert "s-b Compute totals with a program (0.87)" in text
    assert "→ calculator(expression='17*23')" in text and "391" in text and "It is 391." in text


@pytest.mark.model
def test_agentkd_chat_command_runs_a_session(smollm_path: Path, tmp_path: Path) -> None:
    env = {**os.environ, "AGENTKD_HOME": str(tmp_path), "AGENTKD_STUDENT": str(smollm_path), "AGENTKD_N_CTX": "2048",
           "AGENTKD_N_THREADS": "1", "COLUMNS": "120"}  # fmt: skip
    cmd = [sys.executable, "-m", "agentkd.cli", "chat", "--no-library", "--max-steps", "1"]
    out = subprocess.run(cmd, input="Say hello.\n/nope\n/exit\n", capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "strategies: none retrieved" in out.stdout and "unknown command" in out.stdout
    assert "prompt tokens cached" in out.stdout and "Traceback" not in out.stderr
