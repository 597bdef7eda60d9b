"""The teacher as the agent: it answers a scenario with the student's own tools, and the judge keeps it or not.

The teacher sees what the student would see (the student's system prompt, with or without the strategies
the student would retrieve, and the student's question prompt), calls the tools by function calling, and
each call is run with the real tool. A trajectory is kept only when the task's ground truth says its
final answer is right; everything else becomes a ``Dropped`` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from agentkd.chat import ChatResult
from agentkd.distill.grading import judge
from agentkd.errors import TaskError, TeacherError
from agentkd.models.runlog import RunLog
from agentkd.prompts import render
from agentkd.schema import Attempt, Message, Scenario, Strategy, ToolCallRecord, Verdict
from agentkd.student.agent_loop import AgentLoop, Done
from agentkd.tasks import TaskSource, as_task
from agentkd.teacher.teacher import Teacher
from agentkd.tools import ToolBox

Stage = Literal["teacher", "steps", "judge", "dedupe", "format", "template", "length"]


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


class _Purposed:
    """The teacher as the loop's ``ChatModel``, its calls logged under ``purpose``."""

    def __init__(self, teacher: Teacher, purpose: str) -> None:
        self.teacher, self.purpose = teacher, purpose

    def chat_stream(self, messages: list[Message], **kwargs: Any) -> Iterator[str | ChatResult]:
        return self.teacher.chat_stream(messages, purpose=self.purpose, **kwargs)


def _number_calls(messages: list[Message]) -> None:
    """Give the episode's calls the ids ``call_1``, ``call_2``… in order, their tool messages too (providers
    repeat ids or leave them out; a training record needs each call paired with its result)."""
    n = 0
    pending: list[str] = []
    for m in messages:
        if m["role"] == "assistant" and m.get("tool_calls"):
            pending = []
            for call in m["tool_calls"]:
                n += 1
                call["id"] = f"call_{n}"
                pending.append(call["id"])
            m["tool_calls"] = [{**c, "type": "function"} for c in m["tool_calls"]]
        elif m["role"] == "tool" and pending:
            m["tool_call_id"] = pending.pop(0)


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

    def _act(self, messages: list[Message]) -> tuple[str | None, list[ToolCallRecord], bool]:
        """Run the episode on ``messages`` (appended to) on the student's agent loop, every tool a JSON call:
        the final answer (None if there is none), the calls, and whether the teacher had to be asked for it.

        A turn that only repeats calls already made is neither run nor recorded. Then, or at the step limit,
        the teacher is asked for its final answer in a user turn (``prompts/sft_answer_now.md``) that is not
        recorded: small teachers often keep calling a tool whose result they already have.
        """
        loop = AgentLoop(
            _Purposed(self.teacher, "sft_trajectory"), self.student.tools, max_steps=self.max_steps,
            max_tokens=self.max_tokens, temperature=self.teacher.temperature, seed=self.teacher.seed or 0,
            log=RunLog(), model_spec=self.teacher.model, tool_output_answers=False, code_blocks=False,
            answer_nudge=render("sft_answer_now.md", instructions=self.task.instructions),
        )  # fmt: skip
        # the data is about tool use: the first turn acts (small teachers otherwise often write a call as
        # prose, which cannot be run, and then "answer" with a number from it)
        first = "required" if self.tool_first and self.student.tools.specs() else "auto"
        answer = next(e.answer for e in loop.run(messages, tool_choice=first) if isinstance(e, Done))
        _number_calls(messages)
        last = messages[-1]
        replied = last["role"] == "assistant" and not last.get("tool_calls")
        if replied:
            last["content"] = str(last.get("content") or "").strip()
        return (str(last["content"]) if replied else None), answer.tool_calls, answer.nudged

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
