"""One student everywhere: ``ask``, ``serve`` and ``eval``'s student arm send the model the same prompt for the
same question, flags and library (the system text with the packed entries, a worked example's exchange, the
question, the tools)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentkd.cli.main import app
from agentkd.config import get_settings
from agentkd.library import Library
from agentkd.models.llamacpp import LocalLLM
from agentkd.parts import load_task
from agentkd.schema import Provenance, Strategy, WorkedExample

pytestmark = pytest.mark.model
SEED = 11


class _Seen(Exception):
    """Raised by the recorder once the first model call's prompt is captured: nothing more is needed."""


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def record(self: LocalLLM, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        calls.append({"messages": [dict(m) for m in messages], "tools": kwargs.get("tools"),
                      "rendered": self.render(messages, kwargs.get("tools"))})
        raise _Seen

    monkeypatch.setattr(LocalLLM, "chat_stream", record)
    return calls


@pytest.fixture
def library(tmp_path: Path) -> Path:
    question = load_task("gsm_symbolic").scenarios("heldout", 1, seed=SEED)[0].question
    lib = Library.open(str(tmp_path / "lib"), "same")
    lib.add(Strategy(id="s-names", title="Name every quantity", status="admitted", tasks=["gsm_symbolic"],
                     trigger="word problems about totals, prices and counts of items people buy or share",
                     body="1. Name each quantity as a variable. 2. Print the arithmetic result in Python."))
    worked = WorkedExample(question=question.replace("1", "2"), program="print(2 * 3)", output="6", answer="6",
                           category="template-000")
    lib.add(Strategy.from_example(worked, task="gsm_symbolic", provenance=Provenance()).model_copy(
        update={"status": "admitted"}))
    return tmp_path / "lib"


def test_ask_serve_and_the_eval_arm_send_the_same_prompt(
    smollm_path: Path, library: Path, tmp_path: Path, recorded: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from agentkd.cli.chat import open_student
    from agentkd.eval import EvalConfig, run_eval
    from agentkd.server import create_app

    monkeypatch.setenv("AGENTKD_STUDENT", str(smollm_path))
    monkeypatch.setenv("AGENTKD_LIBRARY", str(library))
    monkeypatch.setenv("AGENTKD_COLLECTION", "same")
    question = load_task("gsm_symbolic").scenarios("heldout", 1, seed=SEED)[0].question

    # agentkd ask "<question>" --task gsm_symbolic
    CliRunner().invoke(app, ["ask", question, "--task", "gsm_symbolic"])
    # agentkd serve --task gsm_symbolic, asked by a client
    served = open_student(get_settings(), task="gsm_symbolic")
    with TestClient(create_app(served), raise_server_exceptions=False) as client:
        client.post("/v1/chat/completions", json={"model": "student", "messages": [
            {"role": "user", "content": question}]}, headers={"Host": "127.0.0.1"})
    # agentkd eval --task gsm_symbolic --arms student+library (the same item)
    with pytest.raises(_Seen):
        run_eval(get_settings(), EvalConfig(task="gsm_symbolic", split="heldout", n=1, seed=SEED,
                                            arms="student+library", out=tmp_path / "eval"))

    assert len(recorded) == 3, "each path reached the model once"
    ask, serve, evaluate = recorded
    assert ask["rendered"] == serve["rendered"] == evaluate["rendered"]
    assert ask["tools"] == serve["tools"] == evaluate["tools"]
    system = ask["messages"][0]["content"]
    assert "Tools: python." in system  # the task's tools, not python + calculator
    assert any("Name every quantity" in m["content"] for m in ask["messages"] if m["role"] == "system")
    # the worked example is shown as a prior exchange, in the student's own format
    roles = [m["role"] for m in ask["messages"]]
    assert roles[-5:] == ["user", "assistant", "user", "assistant", "user"]
    assert "print(2 * 3)" in ask["messages"][-4]["content"] and ask["messages"][-2]["content"] == "Answer: 6"
