"""Writing a strategy or guidance from several failures of one category at once.

An entry written from one failure tends to be about that problem (its names, its numbers); shown several
failures of one kind, each with the teacher's solution and the student's attempt, the teacher has to say
what they share. Which failures a write sees:

- the failure the write was granted for, first;
- then earlier rounds' failures of the same category, newest first, from ``BuildState.outcomes`` (chosen
  by ``peers_from`` when the round fans out), up to ``MAX_FAILURES`` in all.

Why earlier rounds and not the failures of this round "seen so far": a round's branches run in parallel,
so which of them had been judged when a write starts depends on thread timing; the entry (and the teacher
calls a scripted test expects) would change from run to run, and a resumed build would write a different
entry than the one that was interrupted. Earlier rounds are in the checkpointed state, so the same build
writes the same entry, and no branch waits for another. A round's first write of a new category has only
its own failure; the next round's write of that category sees it too.

Each failure's solution is what ``harvest_example`` found (a verified program, or the last wrong one with
why it failed), else the teacher's written solution; a solution is computed once per scenario and kept on
its outcome. The leak check (``leaks.leaks_answer``) holds against every problem the teacher saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel

from agentkd.distill.grading import judge
from agentkd.distill.harvest import Harvest, harvest_example
from agentkd.distill.leaks import leaks_answer
from agentkd.prompts import render
from agentkd.schema import Attempt, Scenario, StrategyDraft
from agentkd.tasks.base import strategy_focus

if TYPE_CHECKING:
    from agentkd.distill.context import BuildContext

MAX_FAILURES = 4  # a 1.5B teacher keeps 4 short problems in view; more mostly adds tokens and copied detail


class Failure(BaseModel):
    """A failure the teacher writes from: the problem, the student's attempt, the teacher's solution if known."""

    scenario: Scenario
    attempt: str  # ``describe_attempt``'s text: what the student ran and answered
    solution: str = ""


def describe_attempt(attempt: Attempt) -> str:
    """The student's attempt as the teacher sees it: its programs, their output, its answer."""
    lines = []
    for call in attempt.tool_calls:
        args = call.arguments.get("code") or call.arguments
        lines.append(f"Called {call.name}:\n{args}\nResult{' (error)' if call.error else ''}: {call.result[:400]}")
    lines.append(f"Final answer: {attempt.answer[:400] or '(none)'}")
    return "\n\n".join(lines)


def harvest_text(harvest: Harvest) -> str:
    """A harvest's program as a solution to show: verified, or the last wrong one and why it failed."""
    if not harvest.program:
        return ""
    verdict = "it is verified correct" if harvest.example is not None else harvest.reason
    if not harvest.output and (harvest.example is None or harvest.example.form == "answer"):  # an answer, not run
        return f"{harvest.program.strip()}\n({verdict})"
    return f"{harvest.program.strip()}\n(it printed {harvest.output.strip()[:200]!r}: {verdict})"


def teacher_solution(ctx: BuildContext, sc: Scenario) -> str:
    """The teacher's written solution, marked with whether it reaches the right answer (may raise TeacherError)."""
    reply = ctx.teacher.complete(
        [{"role": "user", "content": render("solve.md", question=sc.question)}], purpose="solve", max_tokens=400
    )
    text = str(reply.get("content") or "")
    ok = judge(ctx.task, sc, Attempt(scenario_id=sc.id, answer=text)).correct
    return f"{text.strip()}\n({'this reaches the correct answer' if ok else 'this reaches a WRONG answer'})"


def solve(ctx: BuildContext, sc: Scenario, harvest: Harvest | None = None) -> str:
    """The teacher's solution of ``sc`` to show beside the student's attempt ("" when there is none)."""
    if harvest is None and ctx.config.examples:
        harvest = harvest_example(ctx, sc, siblings=False)  # its own solution: what the writer is shown
    text = harvest_text(harvest) if harvest is not None else ""
    if not text and ctx.config.teacher_solves:
        text = teacher_solution(ctx, sc)
    return text


def peers_from(failures: Sequence[tuple[int, Failure]], category: str, iteration: int,
               limit: int = MAX_FAILURES - 1) -> list[Failure]:
    """Earlier rounds' failures of ``category`` (given as (round, failure)), newest round first, at most ``limit``."""
    earlier = [(it, f) for it, f in failures if it < iteration and f.scenario.category == category]
    return [f for _, f in sorted(earlier, key=lambda x: -x[0])][:limit]


def write_draft(ctx: BuildContext, failures: Sequence[Failure], had: Sequence[str]) -> StrategyDraft:
    """The teacher's entry for what ``failures`` share; re-asked while it leaks any of them (may raise TeacherError)."""
    prompt = render("strategy.md", failures=list(failures), focus=strategy_focus(ctx.task), had=list(had))
    scenarios = [f.scenario for f in failures]
    return ctx.teacher.structured(
        [{"role": "user", "content": prompt}], StrategyDraft, purpose="write_strategy",
        check=lambda d: leak_error(d, scenarios),
    )


def leak_error(draft: StrategyDraft, scenarios: Sequence[Scenario]) -> str | None:
    """Why the draft must be rewritten: it leaks the answer or values of one of the problems (None: general)."""
    for i, sc in enumerate(scenarios, start=1):
        reason = leaks_answer(draft, sc)
        if reason is not None:
            which = f" of problem {i}" if len(scenarios) > 1 else ""
            return (f"the entry must be general, but {reason}{which}. Rewrite it in general words, without "
                    "numbers, names or values from any of the problems.")
    return None
