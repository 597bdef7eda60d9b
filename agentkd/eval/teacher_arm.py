"""The teacher as a contestant: it answers the scenarios the student answers, on the student's agent loop.

``TeacherSolver`` has the members a task's own episode loop uses (``llm`` — the teacher, a ``ChatModel`` —
``retrieve``, ``temperature``...) and ``attempt`` for plain tasks, so the harness runs it like the student:
- with the Python sandbox the teacher writes a ```python block, which is run and its output shown to it
  (the student's protocol, the same question prompt); JSON tools (calculator, domain tools) are offered
  as OpenAI tools;
- without tools it answers in chain of thought (the harness passes the chain-of-thought instructions).
Its usage is kept in its own run log, apart from the teacher's other jobs (e.g. tau2's simulated customer).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence

from agentkd.models.runlog import RunLog
from agentkd.prompts import render
from agentkd.schema import Attempt, Message, Scenario, Strategy
from agentkd.student.agent_loop import AgentLoop, Done, code_tool
from agentkd.teacher.teacher import Teacher
from agentkd.tools import ToolBox


class TeacherSolver:
    """The teacher answering alone, student-shaped (see the module docstring)."""

    def __init__(self, teacher: Teacher, *, tools: ToolBox | None, max_steps: int = 4, max_tokens: int = 768) -> None:
        # a copy with its own totals (the arm's tokens and cost, not the customer's), writing to the same file
        self.teacher = copy.copy(teacher)
        self.teacher.log = RunLog(teacher.log.path)
        self.llm = self.teacher  # a ChatModel: task episodes (tau2, BFCL) call its chat_stream
        self.tools = tools or ToolBox([])
        self.max_steps, self.max_tokens = max_steps, max_tokens
        self.temperature, self.seed = teacher.temperature, teacher.seed or 0
        self.model_spec = teacher.model

    def retrieve(self, question: str, task: str | None = None) -> list[tuple[Strategy, float]]:
        return []  # the teacher answers alone

    def attempt(
        self, scenario: Scenario, *, instructions: str = "", strategies: Sequence[Strategy] | None = None
    ) -> Attempt:
        """Answer one scenario with the tools, on the student's own agent loop and prompt (code blocks for the
        sandbox, tool calls for the rest): the same words and the same protocol for both contestants."""
        t0 = time.perf_counter()
        code = code_tool(self.tools)
        question = render("student_question.md", question=scenario.question, code_tool=code, instructions=instructions)
        messages: list[Message] = [
            {"role": "system", "content": render("student_system.md", tool_names=self.tools.names, system="")},
            {"role": "user", "content": question},
        ]
        # the teacher logs its own calls (role "teacher"); the loop's records would count them twice
        loop = AgentLoop(self.teacher, self.tools, max_steps=self.max_steps, max_tokens=self.max_tokens,
                         temperature=self.temperature, seed=self.seed, log=RunLog(), model_spec=self.model_spec)
        answer = next(e.answer for e in loop.run(messages, instructions=instructions) if isinstance(e, Done))
        return Attempt(scenario_id=scenario.id, answer=answer.text, tool_calls=answer.tool_calls,
                       transcript=answer.transcript, completion_tokens=answer.completion_tokens,
                       seconds=time.perf_counter() - t0)
