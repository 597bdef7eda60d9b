"""Harvesting worked examples: a solution the task's ground truth verified, in the form the student uses.

The teacher solves a scenario the student failed as the student would: one short Python program. The
program runs in the student's own sandbox, and only a printed result that the task's check accepts
becomes a candidate ``example`` entry; a first greedy try, then sampled retries. A verified solution
filters the teacher's mistakes out, which is how a small student can end up above its teacher. Like
every candidate, an example then has to show a measured effect on fresh siblings before admission.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentkd.distill.context import BuildContext
from agentkd.distill.grading import judge
from agentkd.errors import TeacherError
from agentkd.prompts import render
from agentkd.schema import Attempt, Scenario, WorkedExample
from agentkd.student.agent_loop import code_tool, extract_code
from agentkd.student.voting import answer_key


@dataclass
class Harvest:
    """What one scenario's harvest gave: the verified example, or the last program tried and why it failed."""

    example: WorkedExample | None
    program: str = ""
    output: str = ""
    reason: str = ""
    tries: int = 0


def harvest_example(ctx: BuildContext, sc: Scenario, *, tries: int = 2, temperature: float = 0.7) -> Harvest:
    """The teacher's verified program for ``sc``, or why there is none (no code tool, wrong, failed)."""
    tool = code_tool(ctx.student.tools)
    if tool is None or sc.answer is None:
        return Harvest(None, reason="the task has no code tool or no ground truth")
    last = Harvest(None, reason="no program")
    for i in range(tries):
        try:
            reply = ctx.teacher.complete(
                [{"role": "user", "content": render("harvest_solve.md", question=sc.question)}],
                purpose="solve_example", max_tokens=400, temperature=0.0 if i == 0 else temperature,
                seed=ctx.config.seed + i,
            )
        except TeacherError as exc:
            return Harvest(None, reason=f"teacher failed: {str(exc).splitlines()[0]}", tries=i + 1)
        text = str(reply.get("content") or "")
        program = extract_code(text) or (text.strip() if "print(" in text else None)
        if not program:
            last = Harvest(None, reason="the teacher wrote no program", tries=i + 1)
            continue
        run = ctx.student.tools.run(tool, {"code": program})
        value = answer_key(run.output) if not run.error else None
        if value is None:
            last = Harvest(None, program, run.output, "the program failed or printed no result", i + 1)
            continue
        verdict = judge(ctx.task, sc, Attempt(scenario_id=sc.id, answer=f"Answer: {value}"))
        if not verdict.correct:
            last = Harvest(None, program, run.output, f"it printed {value}, not the expected answer", i + 1)
            continue
        example = WorkedExample(question=sc.question, program=program.strip(), output=run.output.strip(),
                                answer=value, solver=ctx.teacher.model, category=sc.category,
                                verification=f"ground truth {sc.answer}: {verdict.reasons or 'accepted'}")
        return Harvest(example, program, run.output, "verified", i + 1)
    return last
