"""SFT record formats: a fixed trajectory becomes exactly the pinned JSON lines, and each checker knows its rules."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentkd.schema import Scenario, ToolCallRecord, Verdict
from agentkd.sft.formats import FORMATS, RecordOptions, conversation
from agentkd.sft.trajectories import Trajectory
from agentkd.sft.validate import CHECKS

SNAPSHOTS = Path(__file__).parent / "snapshots"
CODE_TOOL = {"type": "function", "function": {
    "name": "python", "description": "Run a Python 3 program and return what it prints.",
    "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}}}
CALCULATOR = {"type": "function", "function": {
    "name": "calculator", "description": "Evaluate an arithmetic expression and return its value.",
    "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}}}
INSTRUCTIONS = "When you know the result, end your reply with a line 'Answer: <number>'."
OPTIONS = {  # one snapshot line per option set
    "conditioned": RecordOptions(),
    "strategy-free, first thought": RecordOptions(conditioned=False, first_thought=True),
    "code blocks": RecordOptions(code_blocks=True),
}


def fixed_trajectory(*, with_strategies: bool = True) -> Trajectory:
    """A verified two-tool trajectory as the collector records it (the head is what the student would see)."""
    question = "A shop sells 17 apples at 23 cents and 5 pears at 41 cents. How many cents in all?"
    intro = {"role": "system", "content": "You are a careful assistant that solves problems with tools.\n"
                                          "Tools: python, calculator."}
    strategies = {"role": "system", "content": "Strategies that helped on similar problems (follow the ones that "
                  "apply):\n[s-1] Price totals\n  When: items bought at unit prices\n  Do: 1. Multiply each count "
                  "by its price. 2. Add the parts."}
    head = [intro, strategies] if with_strategies else [intro]
    return Trajectory(
        scenario=Scenario(id="gsm_symbolic-train-0001", task="gsm_symbolic", question=question, answer="596",
                          category="template-007"),
        teacher="local/qwen2.5-coder-1.5b",
        messages=[
            *head,
            {"role": "user", "content": f"{question}\n\n{INSTRUCTIONS}"},
            {"role": "assistant", "content": "Apples first.", "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "python", "arguments": json.dumps({"code": "print(17 * 23)"})}}]},
            {"role": "tool", "tool_call_id": "call_1", "name": "python", "content": "391"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_2", "type": "function",
                 "function": {"name": "calculator", "arguments": json.dumps({"expression": "391 + 5 * 41"})}}]},
            {"role": "tool", "tool_call_id": "call_2", "name": "calculator", "content": "596"},
            {"role": "assistant", "content": "The apples cost 391 cents and the pears 205.\nAnswer: 596"},
        ],
        free_head=[intro],
        tools=[CODE_TOOL, CALCULATOR],
        tool_calls=[ToolCallRecord(name="python", arguments={"code": "print(17 * 23)"}, result="391"),
                    ToolCallRecord(name="calculator", arguments={"expression": "391 + 5 * 41"}, result="596")],
        with_strategies=with_strategies,
        strategy_ids=["s-1"] if with_strategies else [],
        thought="Plan: Multiply each count by its price.\n" if with_strategies else "",
        answer="The apples cost 391 cents and the pears 205.\nAnswer: 596",
        verdict=Verdict(correct=True, score=1.0, reasons="expected 596, got 596"),
    )


def records(fmt: str) -> list[dict[str, Any]]:
    traj = fixed_trajectory()
    return [FORMATS[fmt].encode(*conversation(traj, opts, INSTRUCTIONS)) for opts in OPTIONS.values()]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_each_format_matches_its_snapshot(fmt: str) -> None:
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records(fmt))
    snapshot = SNAPSHOTS / f"sft_{fmt}.jsonl"
    if os.environ.get("AGENTKD_UPDATE_SNAPSHOTS"):
        snapshot.write_text(lines, encoding="utf-8")
    assert lines == snapshot.read_text(encoding="utf-8"), f"{fmt} records changed: update {snapshot} if intended"


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_records_pass_their_checker_and_survive_a_round_trip(fmt: str) -> None:
    for record in records(fmt):
        assert CHECKS[fmt](record) == []
        again = FORMATS[fmt].encode(*FORMATS[fmt].decode(record))
        assert again == record


def test_options_change_exactly_what_they_say() -> None:
    traj = fixed_trajectory()
    conditioned, _ = conversation(traj, RecordOptions(), INSTRUCTIONS)
    free, _ = conversation(traj, RecordOptions(conditioned=False, first_thought=True), INSTRUCTIONS)
    assert [m["role"] for m in conditioned[:3]] == ["system", "system", "user"]
    assert "[s-1] Price totals" in conditioned[1]["content"]
    assert not any("[s-1]" in str(m.get("content")) for m in free)  # the behaviour stays, the text goes
    assert free[2]["content"] == "Plan: Multiply each count by its price.\nApples first."
    blocks, tools = conversation(traj, RecordOptions(code_blocks=True), INSTRUCTIONS)
    assert [t["function"]["name"] for t in tools] == ["calculator"]  # python became a ```python block
    assert blocks[3]["content"] == "Apples first.\n```python\nprint(17 * 23)\n```" and "tool_calls" not in blocks[3]
    assert blocks[4]["role"] == "user" and blocks[4]["content"].startswith("Output:\n391\n")
    assert "```python block" in blocks[2]["content"]  # the student's own question prompt for code tools
    assert blocks[5]["tool_calls"][0]["function"]["name"] == "calculator"


def test_sharegpt_keeps_one_system_prompt_and_strict_turn_order() -> None:
    record = records("sharegpt")[0]
    assert record["system"].startswith("You are a careful assistant") and "[s-1] Price totals" in record["system"]
    assert [t["from"] for t in record["conversations"]] == [
        "human", "function_call", "observation", "function_call", "observation", "gpt"]
    first_call = json.loads(record["conversations"][1]["value"])
    assert first_call == {"name": "python", "arguments": {"code": "print(17 * 23)"}}
    assert [f["name"] for f in json.loads(record["tools"])] == ["python", "calculator"]


Mutation = Callable[[dict[str, Any]], None]
BROKEN: list[tuple[str, Mutation, str]] = [
    ("openai", lambda r: r["messages"].pop(), "last message must be the assistant's final answer"),
    ("openai", lambda r: r["messages"][4].update(tool_call_id="call_9"), "answers no open tool call"),
    ("openai", lambda r: r["messages"][5]["tool_calls"][0]["function"].update(arguments="{oops"),
     "arguments must be a JSON object string"),
    ("openai", lambda r: r["messages"][3]["tool_calls"][0]["function"].update(name="shell"), "'shell'"),
    ("openai", lambda r: r["messages"].insert(4, {"role": "user", "content": "hi"}), "never answered"),
    ("openai", lambda r: r["messages"][4].update(name="python"), "not allowed in a tool message"),
    ("openai", lambda r: r.update(metadata={}), "unknown top-level key"),
    ("openai", lambda r: r["messages"][3].update(role="bot"), "role 'bot'"),
    ("hf", lambda r: r["messages"][3]["tool_calls"][0]["function"].update(arguments="{}"),
     "arguments must be an object"),
    ("hf", lambda r: r["messages"][4].pop("name"), "needs the tool's name"),
    ("hf", lambda r: r["messages"].append({"role": "system", "content": "late"}), "may only come at the start"),
    ("sharegpt", lambda r: r["conversations"].pop(0), "position 1"),
    ("sharegpt", lambda r: r["conversations"].pop(), "even number of turns"),
    ("sharegpt", lambda r: r.update(tools="[{"), "tools must be a JSON string"),
    ("sharegpt", lambda r: r["conversations"][1].update(value='{"name": "python", "arguments": "x"}'),
     "needs a name and an arguments object"),
    ("sharegpt", lambda r: r["conversations"][3].update(value='{"name": "rm", "arguments": {}}'), "'rm'"),
]


@pytest.mark.parametrize(("fmt", "mutate", "expected"), BROKEN)
def test_checkers_name_the_broken_rule(fmt: str, mutate: Mutation, expected: str) -> None:
    record = copy.deepcopy(records(fmt)[0])
    mutate(record)
    problems = CHECKS[fmt](record)
    assert any(expected in p for p in problems), problems
