"""The teacher as a contestant: it answers the scenarios the student answers, through ``Teacher.complete``.

``TeacherSolver`` has the members a task's own episode loop uses (``llm.chat``, ``retrieve``,
``temperature``...) and ``attempt`` for plain tasks, so the harness runs it exactly like the student:
- with the Python sandbox the teacher writes a ```python block, which is run and its output shown to it
  (the student's protocol, the same question prompt); JSON tools (calculator, domain tools) are offered
  as OpenAI tools;
- without tools it answers in chain of thought (the harness passes the chain-of-thought instructions).
Its usage is kept in its own run log, apart from the teacher's other jobs (e.g. tau2's simulated customer).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentkd.models.runlog import RunLog
from agentkd.prompts import render
from agentkd.schema import Attempt, Message, Scenario, Strategy, ToolCallRecord
from agentkd.student.agent_loop import CODE_CLOSE, code_tool, extract_code
from agentkd.teacher.teacher import Teacher
from agentkd.tools import ToolBox


@dataclass
class Reply:
    """One teacher turn in the shape task episodes expect (``agentkd.tasks.episode.ChatReply``)."""

    message: dict[str, Any]
    prompt_tokens: int
    completion_tokens: int
    seconds: float


def clean_message(message: dict[str, Any]) -> dict[str, Any]:
    """An assistant message with only the OpenAI fields (providers add their own, which some reject back)."""
    out: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
    calls = []
    for i, call in enumerate(message.get("tool_calls") or []):
        fn = call.get("function") or {}
        args = fn.get("arguments")
        calls.append({"id": call.get("id") or f"call_{i}", "type": "function",
                      "function": {"name": fn.get("name", ""),
                                   "arguments": args if isinstance(args, str) else json.dumps(args or {})}})
    if calls:
        out["tool_calls"] = calls
    return out


class TeacherChat:
    """``chat(messages, tools=...)`` on top of ``Teacher.complete``, with the usage of that one call."""

    def __init__(self, teacher: Teacher) -> None:
        self.teacher = teacher

    def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] = "auto",
        temperature: float = 0.0,
        max_tokens: int = 512,
        seed: int | None = None,
        stop: Sequence[str] = (),
    ) -> Reply:
        params: dict[str, Any] = {}
        if tools:
            params.update(tools=tools, tool_choice=tool_choice)
        if stop:
            params["stop"] = list(stop)
        usage = self.teacher.log.totals("teacher")
        before = (usage.prompt_tokens, usage.completion_tokens)
        t0 = time.perf_counter()
        message = self.teacher.complete(messages, purpose="eval", max_tokens=max_tokens, **params)
        usage = self.teacher.log.totals("teacher")
        return Reply(clean_message(message), usage.prompt_tokens - before[0], usage.completion_tokens - before[1],
                     time.perf_counter() - t0)


class TeacherSolver:
    """The teacher answering alone, student-shaped (see the module docstring)."""

    def __init__(self, teacher: Teacher, *, tools: ToolBox | None, max_steps: int = 4, max_tokens: int = 768) -> None:
        # a copy with its own totals (the arm's tokens and cost, not the customer's), writing to the same file
        self.teacher = copy.copy(teacher)
        self.teacher.log = RunLog(teacher.log.path)
        self.llm = TeacherChat(self.teacher)
        self.tools = tools or ToolBox([])
        self.max_steps, self.max_tokens = max_steps, max_tokens
        self.temperature, self.seed = teacher.temperature, teacher.seed or 0
        self.model_spec = teacher.model

    def retrieve(self, question: str, task: str | None = None) -> list[tuple[Strategy, float]]:
        return []  # the teacher answers alone

    def attempt(
        self, scenario: Scenario, *, instructions: str = "", strategies: Sequence[Strategy] | None = None
    ) -> Attempt:
        """Answer one scenario with the tools (code blocks for the sandbox, tool calls for the rest)."""
        t0 = time.perf_counter()
        code = code_tool(self.tools)
        json_tools = [t for t in self.tools.specs() if t["function"]["name"] != code]
        names = self.tools.names
        # the student's own question prompt: the same words for both contestants
        question = render("student_question.md", question=scenario.question, code_tool=code, instructions=instructions)
        messages: list[Message] = [
            {"role": "system", "content": render("student_system.md", tool_names=names, system="")},
            {"role": "user", "content": question},
        ]
        calls: list[ToolCallRecord] = []
        answer, tokens = "", 0
        for step in range(self.max_steps):
            last = step == self.max_steps - 1
            reply = self.llm.chat(messages, tools=None if last else json_tools or None, max_tokens=self.max_tokens,
                                  stop=(CODE_CLOSE,) if code and not last else ())
            tokens += reply.completion_tokens
            message = reply.message
            content = str(message.get("content") or "")
            program = extract_code(content) if code and not last else None
            if message.get("tool_calls"):
                messages.append(message)
                for call in message["tool_calls"]:
                    calls.append(self._run_json_call(call, messages))
            elif program is not None and code is not None:
                out = self.tools.run(code, {"code": program})
                calls.append(ToolCallRecord(name=code, arguments={"code": program}, result=out.output, error=out.error))
                messages.append({"role": "assistant", "content": f"{content}{CODE_CLOSE}".strip()})
                messages.append({"role": "user", "content": render("student_observation.md", output=out.output,
                                                                   error=out.error, instructions=instructions)})
            else:
                messages.append(message)
                answer = content
                break
        if not answer and calls:  # out of steps: the last tool output is the best there is (as the student)
            answer = calls[-1].result
        return Attempt(scenario_id=scenario.id, answer=answer, tool_calls=calls, transcript=messages,
                       completion_tokens=tokens, seconds=time.perf_counter() - t0)

    def _run_json_call(self, call: dict[str, Any], messages: list[Message]) -> ToolCallRecord:
        fn = call["function"]
        try:
            args = json.loads(fn["arguments"]) if isinstance(fn["arguments"], str) else dict(fn["arguments"])
        except json.JSONDecodeError as exc:  # the model's mistake: it reads the error and may try again
            args, out_text, error = {}, f"arguments are not valid JSON: {exc}", True
        else:
            out = self.tools.run(fn["name"], args)
            out_text, error = out.output, out.error
        messages.append({"role": "tool", "tool_call_id": call.get("id"), "name": fn["name"], "content": out_text})
        return ToolCallRecord(name=fn["name"], arguments=args, result=out_text, error=error)
