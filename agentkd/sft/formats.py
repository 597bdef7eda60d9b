"""Fine-tuning record formats: a trajectory as an OpenAI, ShareGPT (LLaMA-Factory) or Hugging Face record.

Every format goes through one canonical conversation: OpenAI-shaped messages (``tool_calls`` with JSON-string
arguments, ``tool`` messages with ``tool_call_id``) and OpenAI tool definitions. ``conversation`` builds it
from a trajectory under the export options; each ``Format`` encodes it as a record and decodes a record back
to it, which is how a record is rendered through the student's chat template before it is written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentkd.prompts import render
from agentkd.schema import Message
from agentkd.sft.trajectories import Trajectory

Tools = list[dict[str, Any]]
Record = dict[str, Any]
OBSERVATION_JOIN = "\n</tool_response>\n<tool_response>\n"  # LLaMA-Factory's join of parallel tool results


@dataclass(frozen=True)
class RecordOptions:
    """How a trajectory becomes a conversation.

    ``conditioned``: the system head lists the strategies the teacher had, as the student sees them (else the
    strategy-free head, which trains the behaviour without the text). ``first_thought``: the first assistant
    turn opens with the student's first thought (``agentkd.student.student.first_thought``: the top strategy's first
    step, which ``Student(first_thought=True)`` prefills). ``code_blocks``: a code tool (one ``code``
    argument) is written as a ```python block and its output as a user turn, as ``agentkd.student.agent_loop`` runs it.
    """

    conditioned: bool = True
    first_thought: bool = False
    code_blocks: bool = False


def code_tool(tools: Tools) -> str | None:
    """The tool that takes only ``code`` (the student presents it as a ```python block), if any."""
    for spec in tools:
        params = spec["function"].get("parameters") or {}
        if set(params.get("properties") or {}) == {"code"}:
            return str(spec["function"]["name"])
    return None


def conversation(traj: Trajectory, opts: RecordOptions, instructions: str = "") -> tuple[list[Message], Tools]:
    """The canonical conversation of ``traj`` under ``opts``: messages and the tools offered as functions."""
    head = traj.head if opts.conditioned or not traj.free_head else traj.free_head
    messages: list[Message] = [*(dict(m) for m in head), *(dict(m) for m in traj.turns)]
    tools = list(traj.tools)
    block_tool = code_tool(tools) if opts.code_blocks else None
    if block_tool is not None:
        messages = _as_code_blocks(messages, traj, block_tool, instructions)
        tools = [t for t in tools if t["function"]["name"] != block_tool]
    if opts.first_thought and traj.thought:
        first = next(m for m in messages if m["role"] == "assistant")
        first["content"] = f"{traj.thought}{first.get('content') or ''}".strip()
    return messages, tools


def _as_code_blocks(messages: list[Message], traj: Trajectory, tool: str, instructions: str) -> list[Message]:
    out: list[Message] = []
    results = iter(traj.tool_calls)
    blocked: set[str] = set()
    question_seen = False
    for m in messages:
        calls = m.get("tool_calls") or []
        if m["role"] == "user" and not question_seen:
            question_seen = True
            m = {"role": "user", "content": render("student_question.md", question=traj.scenario.question,
                                                    code_tool=tool, instructions=instructions)}
        elif len(calls) == 1 and calls[0]["function"]["name"] == tool and (code := _code(calls[0])) is not None:
            block = f"```python\n{code.strip()}\n```"
            m = {"role": "assistant", "content": f"{m.get('content') or ''}\n{block}".strip()}
            blocked.add(calls[0]["id"])
        elif m["role"] == "tool":
            result = next(results)
            if m["tool_call_id"] in blocked:
                m = {"role": "user", "content": render("student_observation.md", output=m["content"],
                                                        error=result.error, instructions=instructions)}
        out.append(m)
    return out


def _code(call: dict[str, Any]) -> str | None:
    try:
        args = json.loads(call["function"]["arguments"])
    except json.JSONDecodeError:
        return None
    return args["code"] if isinstance(args, dict) and isinstance(args.get("code"), str) else None


# -- OpenAI chat fine-tuning ------------------------------------------------------------------------------


def to_openai(messages: list[Message], tools: Tools) -> Record:
    out: list[Message] = []
    for m in messages:
        if m["role"] == "assistant" and m.get("tool_calls"):
            turn: Message = {"role": "assistant"}
            if m.get("content"):
                turn["content"] = m["content"]
            turn["tool_calls"] = [
                {"id": c["id"], "type": "function",
                 "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]}}
                for c in m["tool_calls"]
            ]
            out.append(turn)
        elif m["role"] == "tool":
            out.append({"role": "tool", "tool_call_id": m["tool_call_id"], "content": m["content"]})
        else:
            out.append({"role": m["role"], "content": m.get("content") or ""})
    return {"messages": out, "tools": tools} if tools else {"messages": out}


def from_openai(record: Record) -> tuple[list[Message], Tools]:
    names = {c["id"]: c["function"]["name"] for m in record["messages"] for c in m.get("tool_calls") or []}
    messages = [
        {**m, "name": names.get(m["tool_call_id"], "")} if m["role"] == "tool" else dict(m)
        for m in record["messages"]
    ]
    return messages, list(record.get("tools") or [])


# -- ShareGPT / LLaMA-Factory -----------------------------------------------------------------------------


def to_sharegpt(messages: list[Message], tools: Tools) -> Record:
    """``conversations`` of human / gpt / function_call / observation turns; ``system`` and ``tools`` apart.

    A function_call turn carries only the call (LLaMA-Factory has no place for text beside it), so text an
    assistant wrote next to a tool call is not in this format; parallel results are one observation.
    """
    turns: list[dict[str, str]] = []
    system = ""
    pending: list[str] = []
    for m in messages:
        if m["role"] == "tool":
            pending.append(str(m["content"]))
            continue
        if pending:
            turns.append({"from": "observation", "value": OBSERVATION_JOIN.join(pending)})
            pending = []
        if m["role"] == "system":  # ShareGPT has one system prompt: the head's messages, joined
            system = f"{system}\n\n{m['content']}" if system else str(m["content"])
        elif m["role"] == "user":
            turns.append({"from": "human", "value": str(m["content"])})
        elif m.get("tool_calls"):
            calls = [{"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}
                     for c in m["tool_calls"]]
            value = calls[0] if len(calls) == 1 else calls
            turns.append({"from": "function_call", "value": json.dumps(value, ensure_ascii=False)})
        else:
            turns.append({"from": "gpt", "value": str(m.get("content") or "")})
    if pending:
        turns.append({"from": "observation", "value": OBSERVATION_JOIN.join(pending)})
    record: Record = {"conversations": turns, "system": system}
    if tools:
        record["tools"] = json.dumps([t["function"] for t in tools], ensure_ascii=False)
    return record


def from_sharegpt(record: Record) -> tuple[list[Message], Tools]:
    messages: list[Message] = [{"role": "system", "content": record["system"]}] if record.get("system") else []
    n = 0
    last_calls: list[Message] = []
    for turn in record["conversations"]:
        kind, value = turn["from"], turn["value"]
        if kind == "human":
            messages.append({"role": "user", "content": value})
        elif kind == "gpt":
            messages.append({"role": "assistant", "content": value})
        elif kind == "function_call":
            parsed = json.loads(value)
            last_calls = []
            for call in parsed if isinstance(parsed, list) else [parsed]:
                n += 1
                last_calls.append({"id": f"call_{n}", "type": "function", "function": {
                    "name": call["name"], "arguments": json.dumps(call["arguments"], ensure_ascii=False)}})
            messages.append({"role": "assistant", "content": None, "tool_calls": last_calls})
        elif kind == "observation":
            parts = value.split(OBSERVATION_JOIN) if len(last_calls) > 1 else [value]
            for call, part in zip(last_calls, parts, strict=False):
                messages.append({"role": "tool", "tool_call_id": call["id"], "name": call["function"]["name"],
                                 "content": part})
    tools = [{"type": "function", "function": f} for f in json.loads(record["tools"])] if record.get("tools") else []
    return messages, tools


# -- Hugging Face messages ------------------------------------------------------------------------------


def to_hf(messages: list[Message], tools: Tools) -> Record:
    """``messages`` as transformers chat templates take them: arguments as objects, ``tool`` turns with a name."""
    out: list[Message] = []
    for m in messages:
        if m["role"] == "assistant" and m.get("tool_calls"):
            out.append({"role": "assistant", "content": m.get("content") or "", "tool_calls": [
                {"id": c["id"], "type": "function",
                 "function": {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}}
                for c in m["tool_calls"]]})
        elif m["role"] == "tool":
            out.append({"role": "tool", "tool_call_id": m["tool_call_id"], "name": m["name"], "content": m["content"]})
        else:
            out.append({"role": m["role"], "content": m.get("content") or ""})
    return {"messages": out, "tools": tools} if tools else {"messages": out}


def from_hf(record: Record) -> tuple[list[Message], Tools]:
    messages: list[Message] = []
    for m in record["messages"]:
        if m.get("tool_calls"):
            calls = [{"id": c.get("id") or f"call_{i}", "type": "function", "function": {
                "name": c["function"]["name"], "arguments": json.dumps(c["function"]["arguments"], ensure_ascii=False)}}
                for i, c in enumerate(m["tool_calls"], start=1)]
            messages.append({"role": "assistant", "content": m.get("content") or None, "tool_calls": calls})
        else:
            messages.append(dict(m))
    return messages, list(record.get("tools") or [])


@dataclass(frozen=True)
class Format:
    """A record format: how to write a conversation as a record and read it back."""

    name: str
    title: str
    encode: Callable[[list[Message], Tools], Record]
    decode: Callable[[Record], tuple[list[Message], Tools]]
    note: str


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("openai", "OpenAI chat fine-tuning JSONL", to_openai, from_openai,
               "`messages` (system, user, assistant with `tool_calls`, `tool` with `tool_call_id`) and `tools`; "
               "upload `train.jsonl` / `validation.jsonl` as the training and validation files."),
        Format("sharegpt", "ShareGPT / LLaMA-Factory with tool calls", to_sharegpt, from_sharegpt,
               "`conversations` (human, function_call, observation, gpt), `system`, and `tools` as a JSON string; "
               "`dataset_info.json` registers both splits with LLaMA-Factory (formatting: sharegpt). Text an "
               "assistant wrote beside a tool call has no place in this format and is left out."),
        Format("hf", "Hugging Face `messages` JSONL", to_hf, from_hf,
               "`messages` as transformers chat templates take them (tool-call `arguments` as objects, `tool` "
               "turns with `name`) and `tools`; load with `datasets.load_dataset('json', ...)`, train with TRL."),
    )
}
