"""A domain described in one YAML page, for domains with no data: the teacher writes the scenarios and grades.

The spec (see ``examples/support_domain.yaml``) gives a description, a policy, categories, tools
(name, description, parameters, and a canned ``result`` or a Python ``expression`` over the
arguments), examples and a grading rubric. The teacher generates customer requests from it
(``ScenarioDraft``s, via ``Teacher.structured``); the student answers one request with the spec's
tools; the teacher grades the transcript against the rubric and returns a ``Verdict`` with reasons.
There is no ground truth, so ``Scenario.answer`` stays None and the verdict's method is "rubric".
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from agentkd.errors import TaskError, ToolError
from agentkd.prompts import render
from agentkd.schema import Attempt, Message, Scenario, Strategy, Verdict, short_id
from agentkd.tasks.base import Split, Task
from agentkd.tasks.episode import (
    Stopwatch,
    StructuredModel,
    StudentLike,
    agent_turn,
    choose_strategies,
    require_fit,
)
from agentkd.tools import Tool, ToolBox

HELDOUT_SEED_OFFSET = 1_000_003
_SAFE_BUILTINS = {f.__name__: f for f in (abs, all, any, bool, dict, float, int, len, list, max, min, round, sorted,
                                         str, sum, tuple)}
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class ToolSpec(BaseModel):
    """A tool of the domain; its result is canned text (``{argument}`` placeholders filled) or an expression."""

    name: str
    description: str
    parameters: dict[str, dict[str, Any]] = Field(default_factory=dict, description="JSON schema per argument")
    required: list[str] | None = Field(default=None, description="required arguments (default: all)")
    result: str | None = None
    expression: str | None = Field(default=None, description="a Python expression over the arguments")

    @model_validator(mode="after")
    def _one_result(self) -> ToolSpec:
        if (self.result is None) == (self.expression is None):
            raise ValueError(f"tool {self.name!r} needs exactly one of `result` (canned text) or `expression`")
        return self

    def build(self) -> Tool:
        """The agentkd ``Tool``; arguments are checked against the schema by ``Tool.run``."""
        code = compile(self.expression, f"<tool {self.name}>", "eval") if self.expression else None
        canned = self.result

        def fn(**arguments: Any) -> Any:
            if code is not None:
                return eval(code, {"__builtins__": _SAFE_BUILTINS, "math": math}, dict(arguments))
            assert canned is not None
            return canned.format_map(_Blank(arguments))

        required = list(self.parameters) if self.required is None else self.required
        schema = {"type": "object", "properties": self.parameters, "required": required}
        return Tool(self.name, self.description.strip(), schema, fn)


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:  # an optional argument left out reads as empty
        return ""


class ExampleSpec(BaseModel):
    request: str
    good_answer: str = ""
    category: str = ""


class DomainSpec(BaseModel):
    """A domain described in one page."""

    name: str = Field(pattern=_SLUG.pattern)
    description: str
    policy: str = ""
    categories: list[str] = Field(default_factory=lambda: ["general"], min_length=1)
    tools: list[ToolSpec] = Field(default_factory=list)
    examples: list[ExampleSpec] = Field(default_factory=list)
    rubric: str

    @classmethod
    def load(cls, path: str | Path) -> DomainSpec:
        """Read and validate a spec file; every problem names the file and the field."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise TaskError(f"cannot read the domain spec {path}: {exc}", hint="check the path after 'spec:'") from exc
        except yaml.YAMLError as exc:
            raise TaskError(f"{path} is not valid YAML: {exc}",
                            hint="fix the indentation or quoting it points at") from None
        try:
            spec = cls.model_validate(data)
            spec.toolbox()
        except ValidationError as exc:
            where = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()[:5])
            raise TaskError(f"{path} is not a valid domain spec: {where}",
                            hint="see examples/support_domain.yaml for the fields") from None
        except (SyntaxError, ToolError) as exc:
            raise TaskError(f"{path}: a tool cannot be built: {exc}",
                            hint="check its name, parameters and expression") from None
        return spec

    def toolbox(self) -> ToolBox:
        return ToolBox(t.build() for t in self.tools)


class ScenarioDraft(BaseModel):
    """One customer request the teacher writes from a domain spec."""

    request: str = Field(min_length=10, max_length=600, description="What the customer writes, in their words")
    category: str = Field(description="One of the domain's categories")
    difficulty: int = Field(ge=1, le=3, description="1 = one simple step, 3 = several steps or a policy edge case")
    expected: str = Field(min_length=10, max_length=800,
                          description="What a good agent does: the tools it calls with which arguments, and what it "
                                      "tells the customer, following the policy")


class ScenarioDrafts(BaseModel):
    scenarios: list[ScenarioDraft] = Field(min_length=1)


class RubricVerdict(BaseModel):
    """The teacher's grade of one answer against the rubric."""

    reasons: str = Field(min_length=5, max_length=1000, description="What the agent did right and wrong, briefly")
    score: float = Field(ge=0.0, le=1.0, description="How well the answer meets the rubric, 0 to 1")
    passed: bool = Field(description="True only if the answer is correct and follows the policy")


class SpecTask(Task):
    """A task source from a domain spec: teacher-generated scenarios, a teacher rubric as the judge."""

    instructions = ""
    model_roles = ("teacher",)

    def __init__(self, spec: DomainSpec | str | Path, *, teacher: StructuredModel | None = None,
                 max_steps: int = 4) -> None:
        self.spec = spec if isinstance(spec, DomainSpec) else DomainSpec.load(spec)
        self.name, self.teacher, self.max_steps = f"spec:{self.spec.name}", teacher, max_steps
        self._cache: dict[tuple[str, int, int], list[Scenario]] = {}
        tools = ", ".join(t.name for t in self.spec.tools) or "none"
        self.strategy_focus = (
            f"The student is an assistant for this domain: {self.spec.description.strip()} It acts through its "
            f"tools ({tools}) and must follow the domain's policy. Typical mistakes: answering from memory instead "
            "of a tool, a wrong or missing argument, breaking the policy, not answering what was asked.")

    def tools(self) -> ToolBox:
        return self.spec.toolbox()

    def _teacher(self) -> StructuredModel:
        if self.teacher is None:
            raise TaskError(f"{self.name} needs a teacher to write and grade its scenarios",
                            hint="pass teacher=Teacher(...) to get_task/SpecTask, or set task.teacher")
        return self.teacher

    def scenarios(self, split: Split, n: int, seed: int) -> list[Scenario]:
        """``n`` requests written by the teacher; held-out ones come from a seed range builds never use."""
        return self._generate(split, n, seed + (HELDOUT_SEED_OFFSET if split.startswith("heldout") else 0))

    def scenarios_for(self, category: str, n: int, seed: int, difficulty: int = 1) -> list[Scenario]:
        return self._generate("train", n, seed, category=category, difficulty=difficulty)

    def siblings(self, scenario: Scenario, k: int, seed: int) -> list[Scenario]:
        return self._generate("train", k, seed, category=scenario.category, difficulty=scenario.difficulty)

    def _generate(self, split: str, n: int, seed: int, *, category: str | None = None,
                  difficulty: int | None = None) -> list[Scenario]:
        key = (f"{split}/{category}/{difficulty}", n, seed)
        if key not in self._cache:
            examples = list(self.spec.examples)
            random.Random(seed).shuffle(examples)
            prompt = render("spec_scenarios.md", spec=self.spec, n=n, batch=seed, examples=examples[:3],
                            category=category, difficulty=difficulty)
            drafts = self._teacher().structured([{"role": "user", "content": prompt}], ScenarioDrafts,
                                                purpose="generate_scenarios", max_tokens=400 + 250 * n)
            self._cache[key] = [self._scenario(d, split, seed) for d in drafts.scenarios[:n]]
        return self._cache[key]

    def _scenario(self, draft: ScenarioDraft, split: str, seed: int) -> Scenario:
        category = draft.category.strip().lower()
        known = {c.lower(): c for c in self.spec.categories}
        return Scenario(
            id=f"{self.name}-{split}-{short_id(draft.request, str(seed))}",
            task=self.name,
            question=draft.request.strip(),
            answer=None,
            category=known.get(category, self.spec.categories[0]),
            difficulty=draft.difficulty,
            metadata={"split": split, "seed": seed, "expected": draft.expected},
        )

    def run(self, student: StudentLike, scenario: Scenario, *, instructions: str = "",
            strategies: Sequence[Strategy] | None = None) -> Attempt:
        """The student answers the request with the domain's tools, under the domain's policy."""
        clock = Stopwatch()
        chosen = choose_strategies(student, scenario.question, scenario.task, strategies)
        system = render("spec_agent.md", spec=self.spec, strategies=[s.render() for s in chosen])
        messages: list[Message] = [{"role": "system", "content": system},
                                   {"role": "user", "content": scenario.question}]
        tools = self.tools()
        require_fit(student, messages, tools, f"{self.name}'s description, policy and tools")
        turn = agent_turn(student, messages, tools, max_steps=self.max_steps, purpose="spec")
        return Attempt(scenario_id=scenario.id, answer=turn.text, tool_calls=turn.calls,
                       strategy_ids=[s.id for s in chosen], transcript=messages,
                       completion_tokens=turn.completion_tokens, seconds=clock.seconds)

    def grade(self, scenario: Scenario, attempt: Attempt) -> Verdict:
        """The teacher's rubric verdict on the whole attempt (tool calls and reply)."""
        prompt = render("spec_rubric.md", spec=self.spec, request=scenario.question,
                        expected=scenario.metadata.get("expected", ""),
                        calls=[{**c.model_dump(), "arguments": json.dumps(c.arguments, ensure_ascii=False)}
                               for c in attempt.tool_calls],
                        answer=attempt.answer)
        graded = self._teacher().structured([{"role": "user", "content": prompt}], RubricVerdict, purpose="rubric")
        return Verdict(correct=graded.passed, score=graded.score, reasons=graded.reasons, method="rubric")

    def check(self, scenario: Scenario, answer: str) -> Verdict:
        return self.grade(scenario, Attempt(scenario_id=scenario.id, answer=answer))
