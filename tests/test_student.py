"""The student's agent loop on the real tiny model (SmolLM2-135M, temperature 0) and on scripted replies."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from agentkd.models.llamacpp import ChatResult
from agentkd.models.llamacpp_core import CHUNK
from agentkd.student.agent_loop import (
    AgentLoop,
    Done,
    StrategiesRetrieved,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
)
from agentkd.student.student import Student, first_thought, reuse_first
from agentkd.student.voting import Action, vote
from agentkd.tools import ToolBox, calculator, tool
from tests.student_kit import STRATEGIES, ListRetriever, ScriptedLLM, call


@tool
def boom(city: str) -> str:
    """Look up a city's population.

    Args:
        city: The city.
    """
    raise RuntimeError(f"the population service is down for {city}")


@tool(timeout=0.3)
def slow(city: str) -> str:
    """Look up a city's weather.

    Args:
        city: The city.
    """
    time.sleep(3)
    return "sunny"


def _student(path: Path, **kw: Any) -> Student:
    kw.setdefault("max_tokens", 32)
    kw.setdefault("max_steps", 2)
    # one thread: the cores are shared with other jobs, and llama.cpp's spinning threads suffer most from that
    return Student(path, n_ctx=2048, n_threads=1, **kw)


@pytest.mark.model
def test_chat_streams_events_and_matches_ask(smollm_path: Path) -> None:
    st = _student(smollm_path, retriever=ListRetriever(STRATEGIES), tools=ToolBox([calculator]))
    q = "How many legs do 3 spiders have?"
    events = list(st.chat([{"role": "user", "content": q}], stream=True))
    assert isinstance(events[0], StrategiesRetrieved) and isinstance(events[-1], Done)
    assert [s.id for s, _ in events[0].strategies] == ["s-a", "s-b", "s-c"]  # prompt order: by id
    answer = events[-1].answer
    last_step = max(e.step for e in events if isinstance(e, TextDelta))
    streamed = "".join(e.text for e in events if isinstance(e, TextDelta) and e.step == last_step)
    assert answer.text and streamed.strip() == answer.text
    assert {s.id: round(score, 2) for s, score in answer.strategies} == {"s-b": 0.9, "s-a": 0.8, "s-c": 0.7}
    assert st.ask(q).text == answer.text == st.chat([{"role": "user", "content": q}]).text


@pytest.mark.model
@pytest.mark.parametrize(("name", "expected"), [("boom", "population service is down"), ("slow", "did not finish")])
def test_a_failing_tool_becomes_a_message_the_model_reads(smollm_path: Path, name: str, expected: str) -> None:
    st = _student(smollm_path, tools=ToolBox([boom, slow]))
    choice = {"type": "function", "function": {"name": name}}
    answer = st.chat([{"role": "user", "content": "What about Paris?"}], tool_choice=choice)
    record = answer.tool_calls[0]
    assert record.name == name and record.error and expected in record.result
    tool_msg = next(m for m in answer.transcript if m["role"] == "tool")
    assert expected in tool_msg["content"] and "Call it as" in tool_msg["content"]  # how to call it right
    assert answer.steps == 2 and answer.transcript[-1]["role"] == "assistant"  # the model went on after it


@pytest.mark.model
def test_second_question_with_the_same_strategies_reuses_the_kv_cache(smollm_path: Path) -> None:
    st = _student(smollm_path, retriever=ListRetriever(STRATEGIES), max_steps=1, max_tokens=4)
    st.ask("A bus leaves at 9:40 and the trip takes 95 minutes. When does it arrive?")
    second = st.ask("What is 15% of 80?")
    stable = st.llm.count_tokens(st.system_prompt(STRATEGIES))
    assert second.cached_tokens >= stable - CHUNK and stable > 60  # kept up to a chunk boundary
    assert second.timings["ttft"] > 0 and second.timings["retrieve"] < second.seconds


@pytest.mark.model
def test_first_thought_prefills_the_reply_with_the_top_strategy(smollm_path: Path) -> None:
    st = _student(smollm_path, retriever=ListRetriever(STRATEGIES), first_thought=True, tools=ToolBox([]))
    events = list(st.chat([{"role": "user", "content": "A pen costs 3 and a book 12. Total for 2 each?"}],
                          stream=True))  # fmt: skip
    opening = "Plan: Name each quantity as a variable.\n"
    first = next(e for e in events if isinstance(e, TextDelta))
    assert first.text == opening
    answer = events[-1].answer  # type: ignore[union-attr]
    assert answer.transcript[-1]["content"].startswith(opening.strip())


@pytest.mark.model
def test_self_consistency_samples_candidates_on_the_real_model(smollm_path: Path) -> None:
    st = _student(smollm_path, tools=ToolBox([calculator]), samples=3, max_steps=1, max_tokens=12)
    answer = st.ask("What is 6 times 7?")
    assert answer.votes and answer.votes[0]["candidates"] == 3
    assert sum(answer.votes[0]["votes"].values()) <= 3 and answer.text


def test_self_consistency_keeps_the_action_whose_result_is_most_common() -> None:
    # seed 1234 proposes 2+2, the other two propose different expressions worth 5: the 5s win.
    proposals = {1234: "2+2", 1235: "2+3", 1236: "10/2"}

    def script(messages: list[dict[str, Any]], kw: dict[str, Any]) -> dict[str, Any]:
        if messages[-1]["role"] == "tool":
            return {"content": f"The answer is {messages[-1]['content']}."}
        return call("calculator", json.dumps({"expression": proposals[kw["seed"]]}), cid=f"c{kw['seed']}")

    llm = ScriptedLLM(script)
    loop = AgentLoop(llm, ToolBox([calculator]), samples=3, sample_temperature=0.8)
    events = list(loop.run([{"role": "user", "content": "What is five?"}]))
    answer = events[-1].answer  # type: ignore[union-attr]
    assert [c.arguments["expression"] for c in answer.tool_calls] == ["2+3"]  # the first of the majority
    assert answer.votes[0]["votes"] == {"result:4": 1, "result:5": 2} and answer.votes[0]["chosen"] == 1
    assert answer.text == "The answer is 5."
    assert all(kw["temperature"] == 0.8 for _, kw in llm.calls)
    assert sorted({kw["seed"] for _, kw in llm.calls}) == [1234, 1235, 1236]
    started = [e for e in events if isinstance(e, ToolCallStarted)]
    assert len(started) == 1 and len([e for e in events if isinstance(e, ToolCallFinished)]) == 1


def test_failed_candidates_do_not_vote_and_ties_go_to_the_first() -> None:
    def action(output: str, error: bool = False) -> Action:
        from agentkd.tools import ToolResult

        a = Action(ChatResult({"role": "assistant", "content": None}, "stop", 0, 0, 0.0), "calculator", {"e": output})
        a.output = ToolResult(output, error)
        return a

    assert vote([action("Error: x", True), action("7"), action("8")]) == (1, {"result:7": 1, "result:8": 1})
    assert vote([action("Error", True), action("Error", True)]) == (0, {})


def test_the_step_limit_ends_the_loop_with_the_last_tool_output() -> None:
    llm = ScriptedLLM(lambda m, kw: {"content": "no more tools"} if kw["tool_choice"] == "none"
                      else call("calculator", '{"expression": "1+1"}'))  # fmt: skip
    answer = list(AgentLoop(llm, ToolBox([calculator]), max_steps=3).run([{"role": "user", "content": "?"}]))[-1]
    assert answer.answer.steps == 3 and len(answer.answer.tool_calls) == 2  # type: ignore[union-attr]
    assert [kw["tool_choice"] for _, kw in llm.calls] == ["auto", "auto", "none"]  # last step: tools shown, not called


def test_entries_are_ordered_for_the_longest_cached_prefix() -> None:
    a, b, c = sorted(STRATEGIES, key=lambda s: s.id)
    assert [s.id for s in reuse_first([a, b, c], [])] == ["s-a", "s-b", "s-c"]
    assert [s.id for s in reuse_first([a, b], ["s-b", "s-c"])] == ["s-b", "s-a"]  # s-b was cached first
    assert first_thought(STRATEGIES[1]) == "Plan: Convert every quantity to one unit.\n"
    assert first_thought(STRATEGIES[2]) == "Plan: Write p% as p/100 before multiplying.\n"


def test_a_last_step_that_still_calls_a_tool_answers_with_the_last_tool_output() -> None:
    def script(messages: list[dict[str, Any]], kw: dict[str, Any]) -> dict[str, Any]:
        if kw["tool_choice"] == "none":  # tools shown but not callable: the model writes the call as text
            return {"content": '```json\n{"name": "calculator", "arguments": {"expression": "2*3"}}'}
        return call("calculator", '{"expression": "2*3"}')

    answer = list(AgentLoop(ScriptedLLM(script), ToolBox([calculator]), max_steps=2).run([]))[-1].answer  # type: ignore[union-attr]
    assert answer.text == "6" and answer.finish_reason == "length"


def test_malformed_tool_call_json_is_fed_back_for_the_model_to_fix() -> None:
    def script(messages: list[dict[str, Any]], kw: dict[str, Any]) -> dict[str, Any]:
        tool_turns = [m for m in messages if m["role"] == "tool"]
        if not tool_turns:
            return call("calculator", '{"expression": "2*3"')  # the closing brace is missing
        if len(tool_turns) == 1:
            assert "not valid JSON" in tool_turns[0]["content"]  # the model reads what went wrong
            return call("calculator", '{"expression": "2*3"}')
        return {"content": f"Answer: {tool_turns[-1]['content']}"}

    answer = list(AgentLoop(ScriptedLLM(script), ToolBox([calculator]), max_steps=4).run([]))[-1].answer  # type: ignore[union-attr]
    assert answer.text == "Answer: 6"
    assert [c.error for c in answer.tool_calls] == [True, False]


def test_a_context_overflow_ends_the_episode_with_a_clear_outcome() -> None:
    from agentkd.errors import ContextOverflowError

    def script(messages: list[dict[str, Any]], kw: dict[str, Any]) -> dict[str, Any]:
        if any(m["role"] == "tool" for m in messages):
            raise ContextOverflowError("the prompt is 5000 tokens but the context window is 4096.")
        return call("calculator", '{"expression": "40+2"}')

    answer = list(AgentLoop(ScriptedLLM(script), ToolBox([calculator]), max_steps=4).run([]))[-1].answer  # type: ignore[union-attr]
    assert answer.finish_reason == "context" and "context window" in answer.error
    assert answer.text == "42"  # the last tool output is the best answer there is
