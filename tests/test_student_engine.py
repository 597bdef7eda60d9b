"""The engine under the student: grammar-last sampling, streaming, prefill, limits (SmolLM2-135M, temperature 0)."""

from __future__ import annotations

import json

import pytest

from agentkd.models import llamacpp
from agentkd.models.chat_template import json_value_done, parse_loose_tool_call
from agentkd.models.llamacpp import ChatResult, ContextOverflowError, LocalLLM

pytestmark = pytest.mark.model

WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city", "days", "unit"],
        },
    },
}
PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"]}  # fmt: skip


def _calls(llm: LocalLLM) -> list[ChatResult]:
    msgs = [{"role": "user", "content": "Weather in Paris for 3 days, in celsius?"}]
    return [
        llm.chat(msgs, tools=[WEATHER], tool_choice="required", max_tokens=60),
        llm.chat([{"role": "user", "content": "Invent a person."}], json_schema=PERSON, max_tokens=60),
    ]


def test_grammar_last_sampling_gives_the_same_output_as_masking_every_token(
    smollm: LocalLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = _calls(smollm)
    assert all(r.timings["grammar_rejections"] < r.completion_tokens for r in fast)  # most tokens never masked
    monkeypatch.setattr(llamacpp._Sampler, "_allowed", lambda self, token, logit: False)  # every token "rejected"
    shortlisted = _calls(smollm)  # ... and sampled again from the allowed of the 128 best
    monkeypatch.setattr(llamacpp._Sampler, "shortlist", 0)
    full = _calls(smollm)  # ... and sampled again from the whole vocabulary, masked
    for other in (shortlisted, full):
        assert other[1].message == fast[1].message
        assert other[0].tool_calls[0]["function"] == fast[0].tool_calls[0]["function"]
    assert set(json.loads(fast[0].tool_calls[0]["function"]["arguments"])) == {"city", "days", "unit"}


def test_streamed_deltas_add_up_to_the_content_and_a_prefix_starts_it(smollm: LocalLLM) -> None:
    msgs = [{"role": "user", "content": "Name three colors."}]
    items = list(smollm.chat_stream(msgs, max_tokens=20, prefix="Sure: "))
    result = items[-1]
    assert isinstance(result, ChatResult) and items[0] == "Sure: "
    assert "".join(i for i in items if isinstance(i, str)).strip() == result.content
    assert result.timings["ttft"] >= result.timings["prefill"] > 0


def test_tool_choice_none_shows_the_tools_but_never_calls_one(smollm: LocalLLM) -> None:
    msgs = [{"role": "user", "content": "Weather in Paris?"}]
    res = smollm.chat(msgs, tools=[WEATHER], tool_choice="none", max_tokens=12)
    assert not res.tool_calls and res.finish_reason in {"stop", "length"}
    assert "weather" in smollm.render(msgs, [WEATHER])


def test_a_prompt_longer_than_the_context_is_a_clear_error(smollm: LocalLLM) -> None:
    with pytest.raises(ContextOverflowError, match="context window") as err:
        smollm.chat([{"role": "user", "content": "word " * 3000}], max_tokens=4)
    assert "n_ctx" in str(err.value)


def test_json_value_done_respects_escaped_quotes() -> None:
    assert not json_value_done('{"a": "x\\"}')
    assert json_value_done('{"a": "x\\"}"}')
    assert json_value_done('{"a": {"b": [1, 2]}}')


def test_a_tool_call_written_as_bare_or_repeated_json_is_recovered() -> None:
    line = '{"name": "calculator", "arguments": {"expression": "36 / 100"}}'
    expected = {"name": "calculator", "arguments": {"expression": "36 / 100"}}
    assert parse_loose_tool_call(f"{line}\n{line}\n{line[:20]}", {"calculator"}) == expected
    assert parse_loose_tool_call(f"```json\n{line}", {"calculator"}) == expected  # an unclosed block
    assert parse_loose_tool_call(f"I will call it: {line}", {"weather"}) is None
    assert parse_loose_tool_call("The answer is {4}.", {"calculator"}) is None
