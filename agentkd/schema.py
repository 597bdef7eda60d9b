"""Data shared by every part of agentkd: scenarios, attempts, strategies, and what the teacher must return.

The Pydantic models whose names end in ``Draft`` or ``Verdict`` are the *spec for teacher output*: the
teacher is shown their JSON schema, its reply is validated against them, and a validation error is
fed back to it verbatim.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

Message = dict[str, Any]  # OpenAI-shaped: {"role": ..., "content": ..., "tool_calls": [...]}


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def short_id(*parts: str, n: int = 10) -> str:
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:n]


MAX_BODY_LINES = 6  # a drafted entry's body: a few steps, or a skeleton of a few lines

Progress = Callable[..., None]  # progress(event, **data): a command's live display, or nothing


class Scenario(BaseModel):
    """One problem or task the student attempts; ``answer`` is ground truth when the source has it."""

    id: str
    task: str
    question: str
    answer: str | None = None
    category: str = "default"
    difficulty: int = 1
    metadata: dict[str, Any] = Field(default_factory=dict)


class ToolCallRecord(BaseModel):
    name: str
    arguments: dict[str, Any]
    result: str
    error: bool = False


class Attempt(BaseModel):
    """What the student did on a scenario: its final answer, its tool calls and the strategies it had."""

    scenario_id: str
    answer: str
    tool_calls: list[ToolCallRecord] = Field(default_factory=list)
    strategy_ids: list[str] = Field(default_factory=list)
    transcript: list[Message] = Field(default_factory=list)
    completion_tokens: int = 0
    seconds: float = 0.0
    votes: list[dict[str, Any]] = Field(default_factory=list)  # a voting student's candidates, tally and choice


class Verdict(BaseModel):
    """The judge's decision on one attempt, with its reasons."""

    correct: bool
    score: float = Field(ge=0.0, le=1.0)
    reasons: str = ""
    method: Literal["ground_truth", "rubric"] = "ground_truth"


class StrategyDraft(BaseModel):
    """What the teacher writes after seeing failures: a short reusable rule, not the answer to one problem.

    Short on purpose: a small student follows a few lines and loses the thread of a paragraph, and the
    entries share its small context with the question.
    """

    kind: Literal["strategy", "guidance"] = Field(
        description="'strategy' = when X, do Y; 'guidance' = how to understand and decompose this class of problem"
    )
    title: str = Field(min_length=5, max_length=60, description="A short name for the entry")
    trigger: str = Field(
        min_length=10, max_length=200, description="When it applies: the kind of problem, in general terms"
    )
    body: str = Field(
        min_length=20,
        max_length=400,
        description=f"What to do: at most {MAX_BODY_LINES} short lines (imperative steps, or a Python skeleton with "
        "placeholder names); general, with no numbers or answer from the problems",
    )
    tool_hints: list[str] = Field(default_factory=list, max_length=2, description="How to use the tools, if relevant")

    @field_validator("title", "trigger", "body")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.strip()

    @field_validator("body")
    @classmethod
    def _few_lines(cls, v: str) -> str:
        lines = [line for line in v.splitlines() if line.strip()]
        if len(lines) > MAX_BODY_LINES:
            raise ValueError(f"the body has {len(lines)} lines; a small student follows at most {MAX_BODY_LINES}: "
                             "keep the steps that avoid the mistake")
        return v

    @field_validator("tool_hints")
    @classmethod
    def _short_hints(cls, v: list[str]) -> list[str]:
        long = [h for h in v if len(h) > 160]
        if long:
            raise ValueError(f"a tool hint is one short sentence (at most 160 characters), not {len(long[0])}")
        return v


class Effect(BaseModel):
    """Measured effect of an entry: student wins with and without it on the same scenarios."""

    trials: int = Field(default=0, ge=0)
    wins_with: int = Field(default=0, ge=0)
    wins_without: int = Field(default=0, ge=0)
    helped: int = Field(default=0, ge=0, description="Trials won with the entry and lost without it")
    hurt: int = Field(default=0, ge=0, description="Trials lost with the entry and won without it")

    @field_validator("wins_with", "wins_without", "helped", "hurt")
    @classmethod
    def _within_trials(cls, v: int, info: ValidationInfo) -> int:
        # an imported "trials: 1, wins_with: 1000000" would show a huge lift and could never be auto-retired
        trials = info.data.get("trials")
        if trials is not None and v > trials:
            raise ValueError(f"{info.field_name} ({v}) cannot exceed trials ({trials})")
        return v

    @property
    def lift(self) -> float:
        return (self.wins_with - self.wins_without) / self.trials if self.trials else 0.0

    @property
    def lift_lower_bound(self) -> float:
        """A conservative (one-sided ~90%) lower bound on the lift of paired trials."""
        if not self.trials:
            return 0.0
        n = self.trials
        spread = math.sqrt(max(self.wins_with + self.wins_without, 1)) / n
        return self.lift - 1.28 * spread

    @property
    def lift_upper_bound(self) -> float:
        """The matching upper bound: below zero, even the optimistic reading says the entry hurts."""
        if not self.trials:
            return 0.0
        return 2 * self.lift - self.lift_lower_bound


class Provenance(BaseModel):
    teacher: str = ""
    student: str = ""
    student_quantization: str = ""
    source_scenarios: list[str] = Field(default_factory=list)
    created: datetime = Field(default_factory=now)
    updated: datetime = Field(default_factory=now)
    version: int = Field(default=1, ge=1)


class WorkedExample(BaseModel):
    """A solved scenario the task's ground truth verified: shown to the student as a prior exchange.

    For code tasks (``form`` "program") ``program`` is the Python the solver ran and ``output`` what it
    printed; ``answer`` is the final answer the check accepted. The student sees it in its own format
    (question, its code block, the tool's output, the answer line), rendered from these fields with its own
    prompt templates. Where the answer itself is the solution (``form`` "answer": BFCL's function call,
    graded as it is written, nothing executed), ``program`` and ``answer`` are that verified answer.
    """

    question: str = Field(min_length=1)
    program: str = Field(min_length=1)
    output: str = ""
    answer: str = Field(min_length=1)
    solver: str = ""  # who wrote the solution: the teacher's or the student's model name
    verification: str = ""  # how ground truth accepted it (the expected answer and the check)
    category: str = ""  # the scenario's category (gsm_symbolic: its problem template)
    form: Literal["program", "answer"] = "program"


class Strategy(BaseModel):
    """An entry of the strategy library: a strategy, solution guidance, or a verified worked example."""

    id: str
    kind: Literal["strategy", "guidance", "example"] = "strategy"
    title: str
    trigger: str
    body: str
    tool_hints: list[str] = Field(default_factory=list)
    tasks: list[str] = Field(default_factory=list)
    domains: list[str] = Field(default_factory=list)
    provenance: Provenance = Field(default_factory=Provenance)
    effect: Effect = Field(default_factory=Effect)
    status: Literal["candidate", "admitted", "retired", "rejected"] = "candidate"
    review: Literal["unreviewed", "approved", "edited"] = "unreviewed"
    status_reason: str = ""
    uses: int = Field(default=0, ge=0)
    successes: int = Field(default=0, ge=0)
    worked: WorkedExample | None = None  # kind "example": the verified solution

    @model_validator(mode="before")
    @classmethod
    def _example_program_is_the_body(cls, data: Any) -> Any:
        """A worked example's program is the entry's body (what a reviewer reads and edits in its file)."""
        if isinstance(data, dict) and isinstance(data.get("worked"), dict) and "program" not in data["worked"]:
            data = {**data, "worked": {**data["worked"], "program": data.get("body", "")}}
        return data

    @field_validator("successes")
    @classmethod
    def _within_uses(cls, v: int, info: ValidationInfo) -> int:
        uses = info.data.get("uses")
        if uses is not None and v > uses:
            raise ValueError(f"successes ({v}) cannot exceed uses ({uses})")
        return v

    @classmethod
    def from_draft(cls, draft: StrategyDraft, *, task: str, provenance: Provenance) -> Strategy:
        sid = f"{draft.kind[0]}-{short_id(draft.title, draft.trigger, draft.body)}"
        return cls(
            id=sid,
            kind=draft.kind,
            title=draft.title,
            trigger=draft.trigger,
            body=draft.body,
            tool_hints=draft.tool_hints,
            tasks=[task],
            provenance=provenance,
        )

    @classmethod
    def from_example(cls, example: WorkedExample, *, task: str, provenance: Provenance) -> Strategy:
        """An ``example`` entry; retrieval matches the question it solves (its trigger)."""
        sid = f"e-{short_id(example.question, example.program)}"
        title = f"Worked example ({example.category})" if example.category else "Worked example"
        return cls(id=sid, kind="example", title=title, trigger=example.question, body=example.program,
                   tasks=[task], provenance=provenance, worked=example)

    def embedding_text(self) -> str:
        """What is embedded for retrieval: the situation it applies to, then its title."""
        return f"{self.trigger}\n{self.title}"

    def render(self) -> str:
        """How the entry appears in the student's prompt."""
        if self.kind == "example" and self.worked is not None:  # as text, for students without a code tool
            w = self.worked
            if w.form == "answer":
                return f"[{self.id}] {self.title}\n  Request: {w.question}\n  Correct answer: {w.answer}"
            return (f"[{self.id}] {self.title}\n  Problem: {w.question}\n  Program:\n{w.program.strip()}\n"
                    f"  Output: {w.output.strip()}\n  Answer: {w.answer}")
        hints = "".join(f"\n  - tool: {h}" for h in self.tool_hints)
        return f"[{self.id}] {self.title}\n  When: {self.trigger}\n  Do: {self.body}{hints}"
