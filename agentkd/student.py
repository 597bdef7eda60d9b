"""The student: a small local model that answers with tools and the strategies it retrieves.

retrieve → pack strategies into a token budget → generate (tool calls grammar-constrained) → run the
tool → feed back the result → final answer, with a step limit. A tool that fails becomes a message
the model can read; only our own bugs raise.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agentkd import engine, models
from agentkd.prompts import render
from agentkd.runlog import CallRecord, RunLog
from agentkd.schema import Attempt, Message, Scenario, Strategy, ToolCallRecord
from agentkd.tools import ToolBox, default_tools

CODE_OPEN, CODE_CLOSE = "```python", "\n```\n"
_CODE = re.compile(r"```(?:python|py)\n(.*?)(?:```|$)", re.S)


def extract_code(text: str) -> str | None:
    """The program in the first ```python block of a reply (closed or cut at the stop string)."""
    m = _CODE.search(text)
    return m.group(1).strip() if m and m.group(1).strip() else None


class Retriever(Protocol):
    """Anything that finds strategies for a question (the Chroma library, an edge bundle...)."""

    def search(self, query: str, *, k: int = 3, task: str | None = None) -> Sequence[Any]: ...


@dataclass
class Answer:
    """The student's reply, with what it used to get there."""

    text: str
    strategies: list[tuple[Strategy, float]] = field(default_factory=list)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    transcript: list[Message] = field(default_factory=list)
    completion_tokens: int = 0
    seconds: float = 0.0


def pack(strategies: Sequence[Strategy], budget_tokens: int, count_tokens: Any) -> list[Strategy]:
    """Keep the best-ranked entries that fit ``budget_tokens``, then order them by id.

    A stable order means two questions that retrieve the same entries produce the same prompt prefix,
    which llama.cpp's KV cache can reuse.
    """
    chosen, used = [], 0
    for s in strategies:
        cost = count_tokens(s.render()) + 1
        if used + cost <= budget_tokens:
            chosen.append(s)
            used += cost
    return sorted(chosen, key=lambda s: s.id)


class Student:
    """A GGUF model answering with tools and retrieved strategies."""

    def __init__(
        self,
        model: str | Path,
        *,
        tools: ToolBox | None = None,
        retriever: Retriever | None = None,
        k: int = 3,
        strategy_tokens: int = 600,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        temperature: float = 0.0,
        seed: int = 1234,
        max_steps: int = 4,
        max_tokens: int = 400,
        log: RunLog | None = None,
    ) -> None:
        self.model_spec = str(model)
        self.llm = engine.shared(models.resolve(str(model)), n_ctx=n_ctx, n_threads=n_threads, seed=seed)
        self.tools = tools if tools is not None else default_tools()
        self.retriever, self.k, self.strategy_tokens = retriever, k, strategy_tokens
        self.temperature, self.seed, self.max_steps, self.max_tokens = temperature, seed, max_steps, max_tokens
        self.log = log or RunLog()

    def retrieve(self, question: str, task: str | None = None) -> list[tuple[Strategy, float]]:
        if self.retriever is None:
            return []
        hits = self.retriever.search(question, k=self.k, task=task)
        scored = [(h.strategy, float(h.score)) for h in hits]
        kept = {s.id for s in pack([s for s, _ in scored], self.strategy_tokens, self.llm.count_tokens)}
        return [(s, score) for s, score in scored if s.id in kept]

    def system_prompt(self, strategies: Sequence[Strategy]) -> str:
        """Tools and packed strategies; nothing question-specific, so the KV cache can reuse it."""
        ordered = sorted(strategies, key=lambda s: s.id)
        return render(
            "student_system.md",
            tool_names=[t["function"]["name"] for t in self.tools.specs()],
            strategies=[s.render() for s in ordered],
        )

    def ask(
        self,
        question: str,
        *,
        task: str | None = None,
        instructions: str = "",
        strategies: Sequence[Strategy] | None = None,
    ) -> Answer:
        """Answer one question. ``strategies`` overrides retrieval (used when measuring an entry)."""
        t0 = time.perf_counter()
        chosen = [(s, 1.0) for s in strategies] if strategies is not None else self.retrieve(question, task)
        code_tool = self._code_tool()
        messages: list[Message] = [
            {"role": "system", "content": self.system_prompt([s for s, _ in chosen])},
            {
                "role": "user",
                "content": render(
                    "student_question.md", question=question, code_tool=code_tool, instructions=instructions
                ),
            },
        ]
        answer = self._loop(messages, code_tool, instructions)
        answer.strategies = chosen
        answer.seconds = time.perf_counter() - t0
        return answer

    def _code_tool(self) -> str | None:
        """The name of a tool that takes just ``code``: small models use it best as a ```python block."""
        for spec in self.tools.specs():
            params = spec["function"].get("parameters") or {}
            if set(params.get("properties") or {}) == {"code"}:
                return str(spec["function"]["name"])
        return None

    def _json_tools(self, code_tool: str | None) -> list[dict[str, Any]]:
        return [t for t in self.tools.specs() if t["function"]["name"] != code_tool]

    def _loop(self, messages: list[Message], code_tool: str | None, instructions: str) -> Answer:
        calls: list[ToolCallRecord] = []
        used, text = 0, ""
        json_tools = self._json_tools(code_tool)
        for step in range(self.max_steps):
            last = step == self.max_steps - 1
            result = self.llm.chat(
                messages,
                tools=None if last else (json_tools or None),
                temperature=self.temperature,
                max_tokens=self.max_tokens,
                seed=self.seed,
                stop=(CODE_CLOSE,),
            )
            used += result.completion_tokens
            self.log.record(
                CallRecord(
                    "student",
                    self.model_spec,
                    "answer",
                    prompt_tokens=result.prompt_tokens,
                    completion_tokens=result.completion_tokens,
                    seconds=result.seconds,
                )
            )
            code = extract_code(result.content) if code_tool and not last and not result.tool_calls else None
            if result.tool_calls:
                messages.append(result.message)
                for call in result.tool_calls:
                    fn = call["function"]
                    args = json.loads(fn["arguments"])
                    out = self.tools.run(fn["name"], args)
                    calls.append(ToolCallRecord(name=fn["name"], arguments=args, result=out.output, error=out.error))
                    messages.append(
                        {"role": "tool", "tool_call_id": call["id"], "name": fn["name"], "content": out.output}
                    )
            elif code is not None and code_tool is not None:
                messages.append({"role": "assistant", "content": f"{result.content}{CODE_CLOSE}".strip()})
                out = self.tools.run(code_tool, {"code": code})
                calls.append(
                    ToolCallRecord(name=code_tool, arguments={"code": code}, result=out.output, error=out.error)
                )
                messages.append(
                    {
                        "role": "user",
                        "content": render(
                            "student_observation.md", output=out.output, error=out.error, instructions=instructions
                        ),
                    }
                )
            else:
                messages.append(result.message)
                text = result.content
                break
        if not text and calls:  # ran out of steps: the last tool output is the best answer we have
            text = calls[-1].result
        return Answer(text=text, tool_calls=calls, transcript=messages, completion_tokens=used)

    def attempt(
        self, scenario: Scenario, *, instructions: str = "", strategies: Sequence[Strategy] | None = None
    ) -> Attempt:
        """Answer a scenario and return the record the judge and the teacher see."""
        ans = self.ask(scenario.question, task=scenario.task, instructions=instructions, strategies=strategies)
        return Attempt(
            scenario_id=scenario.id,
            answer=ans.text,
            tool_calls=ans.tool_calls,
            strategy_ids=[s.id for s, _ in ans.strategies],
            transcript=ans.transcript,
            completion_tokens=ans.completion_tokens,
            seconds=ans.seconds,
        )
