"""Every teacher call goes through litellm: the in-process local provider and a real OpenAI-compatible server."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentkd.errors import ConfigError, TeacherConnectionError
from agentkd.models.litellm_transport import LitellmTransport
from agentkd.schema import StrategyDraft
from agentkd.teacher.teacher import Teacher
from tests.conftest import free_port


@pytest.mark.model
def test_local_provider_runs_in_process_through_litellm(smollm_path: Path) -> None:
    teacher = Teacher(f"local/{smollm_path}", transport=LitellmTransport())
    reply = teacher.complete([{"role": "user", "content": "Say hello."}], max_tokens=8)
    assert reply["role"] == "assistant" and reply["content"]
    usage = teacher.log.totals("teacher")
    assert usage.calls == 1 and usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= 8
    assert usage.cost_usd == 0.0 and usage.seconds > 0


@pytest.mark.model
def test_local_teacher_structured_output_is_grammar_constrained(smollm_path: Path) -> None:
    teacher = Teacher(f"local/{smollm_path}", transport=LitellmTransport(), max_reasks=0)
    assert teacher.json_mode
    draft = teacher.structured(
        [{"role": "user", "content": "Write a strategy for percentage problems."}], StrategyDraft
    )
    assert draft.kind in {"strategy", "guidance"} and len(draft.body) >= 20


@pytest.mark.model
@pytest.mark.server
def test_openai_compatible_api_base_works_without_code_changes(llama_server: str) -> None:
    teacher = Teacher("openai/smollm2", transport=LitellmTransport(api_base=llama_server, api_key="not-needed"))
    reply = teacher.complete([{"role": "user", "content": "Say hello."}], max_tokens=8)
    assert reply["content"]
    usage = teacher.log.totals("teacher")
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0


def test_unreachable_server_is_a_connection_error_not_a_crash() -> None:
    transport = LitellmTransport(api_base=f"http://127.0.0.1:{free_port()}/v1", api_key="x", timeout=5)
    with pytest.raises(TeacherConnectionError):
        transport(model="openai/anything", messages=[{"role": "user", "content": "hi"}], max_tokens=4)


def test_unknown_provider_says_how_to_name_one() -> None:
    with pytest.raises(ConfigError, match="prefix the model with its provider"):
        LitellmTransport()(model="no-such-model-xyz", messages=[{"role": "user", "content": "hi"}])
