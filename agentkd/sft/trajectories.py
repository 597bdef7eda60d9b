"""The teacher as the agent: it answers a scenario with the student's own tools, and the judge keeps it or not.

The teacher sees what the student would see (the student's system prompt, with or without the strategies
the student would retrieve, and the student's question prompt), calls the tools by function calling, and
each call is run with the real tool. A trajectory is kept only when the task's ground truth says its
final answer is right; everything else becomes a ``Dropped`` with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from agentkd.distill.grading import judge
from agentkd.errors import TaskError, TeacherError
from agentkd.prompts import render
from agentkd.schema import Attempt, Message, Scenario, Strategy, ToolCallRecord, Verdict
from agentkd.tasks import TaskSource, as_task
from agentkd.teacher.teacher import Teacher
from agentkd.tools import ToolBox

Stage = Literal["teacher", "steps", "judge", "dedupe", "format", "template", "length"]

# litellm (this version) imports its MCP gateway, which needs the optional ``mcp`` package, whenever
# ``tools`` are passed; this flag skips that gateway. Transports other than litellm ignore it.
TRANSPORT_PARAMS: dict[str, Any] = {"_skip_mcp_handler": True}


class Trajectory(BaseModel):
    """One verified teacher episode: the conversation (system, user, assistant and tool turns) and its provenance."""

    scenario: Scenario
    teacher: str
    messages: list[Message]  # the student's system head, the question, then the teacher's turns and tool results
    free_head: list[Message] = Field(default_factory=list)  # the student's system head without strategies
    tools: list[dict[str, Any]] = Field(default_factory=list)
    tool_calls: list[ToolCallRecord] = Field(default_factory=list)  # one per ``tool`` message, in order
    with_strategies: bool = False
    strategy_ids: list[str] = Field(default_factory=list)
    thought: str = ""  # the student's first thought for this problem (the top strategy's first step), or ""
    nudged: bool = False  # the teacher was asked for its final answer (see ``TrajectoryCollector._act``)
    answer: str = ""
    verdict: Verdict | None = None

    @property
    def head(self) -> list[Message]:
        """The leading system messages (the student's head, with the strategies the teacher had)."""
        n = next((i for i, m in enumerate(self.messages) if m["role"] != "system"), len(self.messages))
        return self.messages[:n]

    @property
    def turns(self) -> list[Message]:
        """Everything after the head: the question, the teacher's turns and the tool results."""
        return self.messages[len(self.head) :]

    @property
    def steps(self) -> int:
        return sum(m["role"] == "assistant" for m in self.messages)

    @property
    def tool_errors(self) -> int:
        return sum(c.error for c in self.tool_calls)


class Dropped(BaseModel):
    """A trajectory or record that was not written, with the stage that dropped it and why.

    ``messages`` keeps the conversation of a rejected episode (wrong answer, step limit), to see what went wrong.
    """

    scenario_id: str
    stage: Stage
    reason: str
    detail: str = ""
    messages: list[Message] = Field(default_factory=list)


class AgentStudent(Protocol):
    """What the collector needs from the student (``agentkd.student.student.Student`` has it): tools and prompts."""

    tools: ToolBox

    def retrieve(self, question: str, task: str | None = None) -> list[tuple[Strategy, float]]: ...

    def head(self, strategies: Sequence[Strategy]) -> list[Message]: ...


def _arguments(raw: Any) -> str:
    return raw if isinstance(raw, str) else json.dumps(raw if raw is not None else {}, ensure_ascii=False)


def _parsed(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"_raw": arguments}


class TrajectoryCollector:
    """Runs the teacher as the agent on scenarios and keeps the trajectories the judge verifies."""

    def __init__(
        self,
        teacher: Teacher,
        student: AgentStudent,
        task: TaskSource,
        *,
        with_strategies: bool = True,
        max_steps: int = 6,
        max_tokens: int = 700,
        tool_first: bool = True,
    ) -> None:
        task = as_task(task)
        if task.has_own("run"):
            raise TaskError(
                f"task {task.name!r} runs its own multi-turn episodes, which export-sft cannot replay yet.",
                hint="export from a task the student answers in one conversation (gsm_symbolic, any "
                "reasoning-gym name, spec:<file>.yaml).",
            )
        self.teacher, self.student, self.task = teacher, student, task
        self.with_strategies, self.max_steps, self.max_tokens = with_strategies, max_steps, max_tokens
        self.tool_first = tool_first

    def prompt(self, scenario: Scenario) -> tuple[list[Message], list[Strategy], str]:
        """The student's head and question prompt for ``scenario`` (tools are offered by function calling),
        the strategies in it, and the student's first thought (from the best-scored one)."""
        from agentkd.student.student import first_thought

        found = self.student.retrieve(scenario.question, scenario.task) if self.with_strategies else []
        strategies = sorted((s for s, _ in found), key=lambda s: s.id)
        thought = first_thought(max(found, key=lambda f: f[1])[0]) if found else ""
        question = render(
            "student_question.md", question=scenario.question, code_tool=None, instructions=self.task.instructions
        )
        return [*self.student.head(strategies), {"role": "user", "content": question}], strategies, thought

    def collect(self, scenario: Scenario) -> Trajectory | Dropped:
        """One episode: the teacher acts until it answers in text or runs out of steps; then the judge."""
        messages, strategies, thought = self.prompt(scenario)
        try:
            answer, records, nudged = self._act(messages)
        except TeacherError as exc:
            return Dropped(scenario_id=scenario.id, stage="teacher", reason="teacher failed",
                           detail=str(exc).splitlines()[0])
        if answer is None:
            return Dropped(scenario_id=scenario.id, stage="steps", reason="no final answer within the step limit",
                           detail=f"{self.max_steps} steps", messages=messages)
        if not answer.strip():
            return Dropped(scenario_id=scenario.id, stage="teacher", reason="empty final answer", messages=messages)
        attempt = Attempt(scenario_id=scenario.id, answer=answer, tool_calls=records,
                          strategy_ids=[s.id for s in strategies], transcript=messages)
        verdict = judge(self.task, scenario, attempt)
        if not verdict.correct:
            reason = "wrong answer" if verdict.method == "ground_truth" else "not verified by the rubric"
            return Dropped(scenario_id=scenario.id, stage="judge", reason=reason, detail=verdict.reasons,
                           messages=messages)
        return Trajectory(
            scenario=scenario,
            teacher=self.teacher.model,
            messages=messages,
            free_head=self.student.head([]),
            tools=self.student.tools.specs(),
            tool_calls=records,
            with_strategies=self.with_strategies,
            strategy_ids=[s.id for s in strategies],
            thought=thought,
            nudged=nudged,
            answer=answer,
            verdict=verdict,
        )

    def _params(self, step: int, answer_now: bool) -> dict[str, Any]:
        specs = self.student.tools.specs()
        if not specs:
            return {}
        params: dict[str, Any] = {**TRANSPORT_PARAMS, "tools": specs}
        if answer_now:
            params["tool_choice"] = "none"  # tools stay visible but the reply must be the answer
        elif step == 0 and self.tool_first:
            # the data is about tool use: the first turn acts (small teachers otherwise often write a call
            # as prose, which cannot be run, and then "answer" with a number from it)
            params["tool_choice"] = "required"
        return params

    def _act(self, messages: list[Message]) -> tuple[str | None, list[ToolCallRecord], bool]:
        """Run the episode on ``messages`` (appended to): the final answer (None if there is none), the calls,
        and whether the teacher had to be asked for its answer.

        A turn that only repeats calls already made is neither run nor recorded. Then, or at the step limit,
        the teacher is asked for its final answer in a user turn (``prompts/sft_answer_now.md``) that is not
        recorded: small teachers often keep calling a tool whose result they already have.
        """
        records: list[ToolCallRecord] = []
        seen: set[tuple[str, str]] = set()
        answer_now = False
        for step in range(self.max_steps):
            answer_now = answer_now or step == self.max_steps - 1
            nudge = [{"role": "user", "content": render("sft_answer_now.md", instructions=self.task.instructions)}]
            reply = self.teacher.complete([*messages, *(nudge if answer_now else [])], purpose="sft_trajectory",
                                          max_tokens=self.max_tokens, **self._params(step, answer_now))
            content = reply.get("content")
            turn: Message = {"role": "assistant", "content": content.strip() if isinstance(content, str) else None}
            calls = [(str((c.get("function") or {}).get("name") or ""), _arguments((c.get("function") or {})
                      .get("arguments"))) for c in reply.get("tool_calls") or []]
            if not calls:
                messages.append(turn)
                return str(turn["content"] or ""), records, answer_now
            if answer_now:
                break  # the provider ignored tool_choice="none"
            if all(c in seen for c in calls):
                answer_now = True
                continue
            seen.update(calls)
            turn["tool_calls"] = [
                {"id": f"call_{len(records) + i}", "type": "function", "function": {"name": name, "arguments": args}}
                for i, (name, args) in enumerate(calls, start=1)
            ]
            messages.append(turn)
            for call in turn["tool_calls"]:
                name, arguments = call["function"]["name"], call["function"]["arguments"]
                out = self.student.tools.run(name, arguments)
                records.append(ToolCallRecord(name=name, arguments=_parsed(arguments), result=out.output,
                                              error=out.error))
                messages.append({"role": "tool", "tool_call_id": call["id"], "name": name, "content": out.output})
        return None, records, answer_now

    def collect_all(
        self,
        scenarios: Sequence[Scenario],
        *,
        workers: int = 1,
        progress: Callable[[Scenario, Trajectory | Dropped], None] = lambda sc, result: None,
    ) -> list[Trajectory | Dropped]:
        """Every scenario's outcome, in the scenarios' order; ``workers`` teacher episodes run at once."""

        def one(sc: Scenario) -> Trajectory | Dropped:
            result = self.collect(sc)
            progress(sc, result)
            return result

        if workers <= 1 or len(scenarios) <= 1:
            return [one(sc) for sc in scenarios]
        with ThreadPoolExecutor(max_workers=min(workers, len(scenarios))) as pool:
            return list(pool.map(one, scenarios))
