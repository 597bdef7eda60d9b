"""Checks a record must pass before it is written: its format's rules, then the student's own chat template.

Each ``check_<format>`` returns the broken rules (an empty list means valid). ``TemplateCheck`` decodes the
record back to a conversation, renders it with the chat template read from the student's GGUF, makes sure
the rendering kept the final answer and every tool result, and counts its tokens against the limit.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any, Protocol

from agentkd.schema import Message
from agentkd.sft.formats import FORMATS, Record

ROLES = {"system", "user", "assistant", "tool"}


class Renderer(Protocol):
    """The student's template and tokenizer (``agentkd.models.llamacpp.LocalLLM`` has both)."""

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str: ...

    def count_tokens(self, text: str) -> int: ...


def _json_object(text: Any) -> dict[str, Any] | None:
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _check_tools(tools: Any, *, wrapped: bool) -> tuple[list[str], set[str]]:
    """Rules of a tool list; ``wrapped``: OpenAI style ``{"type": "function", "function": {...}}``."""
    if not isinstance(tools, list):
        return ["tools must be a list"], set()
    problems, names = [], set()
    for i, t in enumerate(tools):
        fn = t.get("function") if wrapped and isinstance(t, dict) else t
        if wrapped and (not isinstance(t, dict) or t.get("type") != "function"):
            problems.append(f"tools[{i}] must have type 'function'")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            problems.append(f"tools[{i}] has no function name")
            continue
        if fn["name"] in names:
            problems.append(f"tool {fn['name']!r} is defined twice")
        names.add(fn["name"])
        params = fn.get("parameters")
        if not isinstance(params, dict) or params.get("type") != "object":
            problems.append(f"tool {fn['name']!r}: parameters must be a JSON schema of type 'object'")
    return problems, names


def _check_messages(messages: Any, names: set[str], *, args_as: type, ids_required: bool) -> list[str]:
    """Rules shared by the OpenAI and Hugging Face ``messages`` lists."""
    if not isinstance(messages, list) or not messages:
        return ["messages must be a non-empty list"]
    problems: list[str] = []
    open_calls: dict[str, str] = {}  # id -> name, calls not yet answered
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        where = f"messages[{i}]"
        if role not in ROLES:
            problems.append(f"{where}: role {role!r} is not one of {sorted(ROLES)}")
            continue
        if role == "system" and any(x.get("role") != "system" for x in messages[:i]):
            problems.append(f"{where}: system messages may only come at the start")
        calls = m.get("tool_calls") or []
        content = m.get("content")
        if role != "tool" and open_calls:
            problems.append(f"{where}: tool call(s) {sorted(open_calls)} were never answered")
            open_calls = {}
        if not (isinstance(content, str) or (role == "assistant" and calls and content is None)):
            problems.append(f"{where}: content must be a string")
        if role == "assistant":
            for j, c in enumerate(calls):
                fn = c.get("function") or {}
                if c.get("type") != "function" or fn.get("name") not in names:
                    problems.append(f"{where}.tool_calls[{j}]: calls {fn.get('name')!r}, which is not in tools")
                args = fn.get("arguments")
                ok = _json_object(args) is not None if args_as is str else isinstance(args, dict)
                if not ok:
                    kind = "a JSON object string" if args_as is str else "an object"
                    problems.append(f"{where}.tool_calls[{j}]: arguments must be {kind}")
                call_id = c.get("id")
                if ids_required and not isinstance(call_id, str):
                    problems.append(f"{where}.tool_calls[{j}]: id is missing")
                open_calls[str(call_id if call_id is not None else j)] = str(fn.get("name"))
        elif role == "tool":
            call_id = m.get("tool_call_id")
            if ids_required or call_id is not None:
                if call_id not in open_calls:
                    problems.append(f"{where}: tool_call_id {call_id!r} answers no open tool call")
                open_calls.pop(str(call_id), None)
            elif open_calls:
                open_calls.pop(next(iter(open_calls)))
            else:
                problems.append(f"{where}: a tool result without a tool call before it")
    if open_calls:
        problems.append(f"tool call(s) {sorted(open_calls)} were never answered")
    if messages[-1].get("role") != "assistant" or messages[-1].get("tool_calls"):
        problems.append("the last message must be the assistant's final answer")
    if not any(m.get("role") == "user" for m in messages if isinstance(m, dict)):
        problems.append("there is no user message")
    return problems


def _unknown_keys(record: Record, allowed: set[str]) -> list[str]:
    extra = sorted(set(record) - allowed)
    return [f"unknown top-level key(s) {extra}"] if extra else []


def check_openai(record: Record) -> list[str]:
    """OpenAI chat fine-tuning: messages + tools; arguments are JSON strings; tool turns answer a call id."""
    problems = _unknown_keys(record, {"messages", "tools", "parallel_tool_calls"})
    tool_problems, names = _check_tools(record.get("tools", []), wrapped=True)
    problems += tool_problems
    problems += _check_messages(record.get("messages"), names, args_as=str, ids_required=True)
    for i, m in enumerate(record.get("messages") or []):
        allowed = {"tool": {"role", "tool_call_id", "content"},
                   "assistant": {"role", "content", "tool_calls", "weight"}}.get(m.get("role"), {"role", "content",
                                                                                                "name"})
        if extra := sorted(set(m) - allowed):
            problems.append(f"messages[{i}]: key(s) {extra} are not allowed in a {m.get('role')} message")
    return problems


def check_hf(record: Record) -> list[str]:
    """Hugging Face messages: as transformers chat templates take them; arguments are objects."""
    problems = _unknown_keys(record, {"messages", "tools"})
    tool_problems, names = _check_tools(record.get("tools", []), wrapped=True)
    problems += tool_problems
    problems += _check_messages(record.get("messages"), names, args_as=dict, ids_required=False)
    for i, m in enumerate(record.get("messages") or []):
        if m.get("role") == "tool" and not isinstance(m.get("name"), str):
            problems.append(f"messages[{i}]: a tool message needs the tool's name")
    return problems


SHAREGPT_ODD, SHAREGPT_EVEN = ("human", "observation"), ("gpt", "function_call")


def check_sharegpt(record: Record) -> list[str]:
    """LLaMA-Factory ShareGPT: human/observation at odd positions, gpt/function_call at even ones, even count."""
    problems = _unknown_keys(record, {"conversations", "system", "tools"})
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        return [*problems, "conversations must be a non-empty list"]
    if not isinstance(record.get("system", ""), str):
        problems.append("system must be a string")
    names: set[str] = set()
    if "tools" in record:
        tools = None
        with contextlib.suppress(json.JSONDecodeError):
            tools = json.loads(record["tools"]) if isinstance(record["tools"], str) else None
        if tools is None:
            problems.append("tools must be a JSON string of function definitions")
        else:
            tool_problems, names = _check_tools(tools, wrapped=False)
            problems += tool_problems
    for i, turn in enumerate(turns):
        kind, value = turn.get("from"), turn.get("value")
        allowed = SHAREGPT_ODD if i % 2 == 0 else SHAREGPT_EVEN
        if kind not in allowed:
            problems.append(f"conversations[{i}]: {kind!r} at position {i + 1}; expected one of {allowed}")
        if not isinstance(value, str):
            problems.append(f"conversations[{i}]: value must be a string")
        elif kind == "function_call":
            problems += _check_sharegpt_call(i, value, names)
        if kind == "observation" and (i == 0 or turns[i - 1].get("from") != "function_call"):
            problems.append(f"conversations[{i}]: an observation must follow a function_call")
    if len(turns) % 2:
        problems.append(f"{len(turns)} turns: a conversation must have an even number of turns")
    if turns[-1].get("from") != "gpt":
        problems.append("the last turn must be gpt's final answer")
    return problems


def _check_sharegpt_call(i: int, value: str, names: set[str]) -> list[str]:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return [f"conversations[{i}]: a function_call value must be JSON"]
    problems = []
    for call in parsed if isinstance(parsed, list) else [parsed]:
        if not isinstance(call, dict) or not isinstance(call.get("arguments"), dict):
            problems.append(f"conversations[{i}]: a function_call needs a name and an arguments object")
        elif call.get("name") not in names:
            problems.append(f"conversations[{i}]: calls {call.get('name')!r}, which is not in tools")
    return problems


CHECKS = {"openai": check_openai, "sharegpt": check_sharegpt, "hf": check_hf}


@dataclass
class Rendered:
    tokens: int
    problem: str | None = None


class TemplateCheck:
    """Renders records through the student's chat template and measures them in the student's tokens."""

    def __init__(self, renderer: Renderer, max_tokens: int) -> None:
        self.renderer, self.max_tokens = renderer, max_tokens

    def __call__(self, record: Record, fmt: str) -> Rendered:
        messages, tools = FORMATS[fmt].decode(record)
        try:
            text = self.renderer.render(messages, tools or None)
            missing = self._missing(messages, tools)
        except Exception as exc:  # a Jinja error in the model's own template
            return Rendered(0, f"the chat template failed: {type(exc).__name__}: {exc}")
        if missing:
            return Rendered(0, f"the chat template dropped {missing}")
        tokens = self.renderer.count_tokens(text)
        if tokens > self.max_tokens:
            return Rendered(tokens, f"{tokens} tokens > limit {self.max_tokens}")
        return Rendered(tokens)

    def _missing(self, messages: list[Message], tools: list[dict[str, Any]]) -> str | None:
        """What the template loses: each tool result and the final answer are replaced by a unique probe,
        so a number that also appears elsewhere in the conversation cannot hide a loss."""
        probe = [dict(m) for m in messages]
        marks: dict[str, str] = {}
        for i, m in enumerate(probe):
            if m["role"] == "tool" or (i == len(probe) - 1 and m.get("content")):
                mark = f"agentkd-sft-probe-{i}"
                name = m.get("name") or "a tool"
                marks[mark] = "the final answer" if m["role"] == "assistant" else f"the result of {name}"
                m["content"] = mark
        text = self.renderer.render(probe, tools or None)
        return next((what for mark, what in marks.items() if mark not in text), None)
