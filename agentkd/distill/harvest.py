"""Harvesting worked examples: a solution the task's ground truth verified, in the form the student uses.

The teacher solves a scenario the student failed as the student would: one short Python program. The
program runs in the student's own sandbox, and only a printed result that the task's check accepts
becomes a candidate ``example`` entry; a first greedy try, a sampled one, then greedy tries at siblings (the
same category, other numbers: the student is shown an example of the kind of problem, so a sibling's
verified program serves as well as the failure's own). A verified solution
filters the teacher's mistakes out, which is how a small student can end up above its teacher. Like
every candidate, an example then has to show a measured effect on fresh siblings before admission.

Where the answer itself is the solution (``Task.example_form`` "answer": BFCL's call, graded as written), the
teacher plays the task's own episode instead, with the student's functions, and a call the check accepts is
the example (``_try_answer``).

When the teacher finds none, the student's own attempts are tried (``student_example``): a few sampled
runs of the failed scenario, decoded as one batch; a run whose answer ground truth accepts gives its
program and output, an example in the student's own words (it solves that problem only *sometimes*, which
is where an example can tip the balance).
"""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from agentkd.distill.context import BuildContext
from agentkd.distill.grading import judge
from agentkd.errors import TeacherError
from agentkd.prompts import render
from agentkd.schema import Attempt, Scenario, WorkedExample
from agentkd.student.agent_loop import code_tool, extract_code
from agentkd.student.voting import answer_key
from agentkd.tasks.base import as_task, run_attempt

STUDENT_SAMPLES = 4  # sampled runs of the student on a failure the teacher could not solve
# the teacher's tries per scenario, the first greedy, the second sampled; more go to siblings (``tries`` > 2).
# Measured in Quickstart builds (session 11): 4 tries (2 on the failure, 2 on siblings) found no example for
# the two templates 2 tries missed and made the build ~30-60 s longer, so the default stays at 2.
TEACHER_TRIES = 2


def example_categories(library: Any, task: str) -> set[str] | None:
    """The categories of ``task`` that have an admitted worked example in ``library`` (None: it cannot list)."""
    if not hasattr(library, "list"):
        return None
    return {e.worked.category for e in library.list(status="admitted", kind="example", task=task)
            if e.worked is not None and e.worked.category}


@dataclass
class Harvest:
    """What one scenario's harvest gave: the verified example, or the last program tried and why it failed."""

    example: WorkedExample | None
    program: str = ""
    output: str = ""
    reason: str = ""
    tries: int = 0
    solved: Scenario | None = None  # the problem the example solves: the failure, or a sibling of it


def harvest_example(ctx: BuildContext, sc: Scenario, *, tries: int = TEACHER_TRIES, temperature: float = 0.7,
                    siblings: bool = True) -> Harvest:
    """The teacher's verified program for ``sc`` or, failing that, for a sibling of it (same category, other
    numbers: an example of the kind of problem is what the student is shown), or why there is none.

    The tries: greedy on ``sc``, one sampled, then greedy on siblings (a problem the 1.5B gets wrong it often
    gets wrong again; other numbers of the same template it often gets right); without siblings, sampled
    tries on ``sc``. What is reported on failure (``program``, ``reason``) is always about ``sc`` itself.
    """
    tool, form = code_tool(ctx.student.tools), as_task(ctx.task).example_form
    if sc.answer is None or (tool is None and form == "program"):
        return Harvest(None, reason="the task has no code tool or no ground truth")
    others = (ctx.task.siblings(sc, tries - 2, ctx.config.seed) or []) if siblings and tries > 2 else []
    plan = [(sc, 0.0), *[(sc, temperature)] * (tries - 1 - len(others)), *[(o, 0.0) for o in others]][:tries]
    last = Harvest(None, reason="no program")
    for i, (problem, temp) in enumerate(plan):
        try:
            found = (_try(ctx, problem, tool, temp, ctx.config.seed + i) if form == "program" and tool
                     else _try_answer(ctx, problem, temp, ctx.config.seed + i))
        except TeacherError as exc:
            return Harvest(None, last.program, last.output, f"teacher failed: {str(exc).splitlines()[0]}", i + 1)
        if isinstance(found, WorkedExample):
            return Harvest(found, found.program, found.output, "verified", i + 1, solved=problem)
        if problem is sc:
            last = Harvest(None, *found, tries=i + 1)
        else:
            last.tries = i + 1
    return last


def _try(ctx: BuildContext, sc: Scenario, tool: str, temperature: float, seed: int,
         demo: WorkedExample | None = None) -> WorkedExample | tuple[str, str, str]:
    """One teacher try at ``sc``, after ``demo``'s question and program as a prior exchange when given: the
    verified example, or (program, output, why it failed); raises ``TeacherError`` when the teacher failed
    after its retries. The build shows no ``demo``: a related template's program did not help the 1.5B
    teacher (18 of 32 verified with it and without, ``benchmarks/harvest_demo.py``)."""
    shown = [{"role": "user", "content": render("harvest_solve.md", question=demo.question)},
             {"role": "assistant", "content": f"```python\n{demo.program.strip()}\n```"}] if demo else []
    reply = ctx.teacher.complete(
        [*shown, {"role": "user", "content": render("harvest_solve.md", question=sc.question)}],
        purpose="solve_example", max_tokens=400, temperature=temperature, seed=seed,
    )
    text = str(reply.get("content") or "")
    program = extract_code(text) or (text.strip() if "print(" in text else None)
    if not program:
        return "", "", "the teacher wrote no program"
    run = ctx.student.tools.run(tool, {"code": program})
    value = answer_key(run.output) if not run.error else None
    if value is None:
        return program, run.output, "the program failed or printed no result"
    verdict = judge(ctx.task, sc, Attempt(scenario_id=sc.id, answer=f"Answer: {value}"))
    if not verdict.correct:
        return program, run.output, f"it printed {value}, not the expected answer"
    return WorkedExample(question=sc.question, program=program.strip(), output=run.output.strip(), answer=value,
                         solver=ctx.teacher.model, category=sc.category,
                         verification=f"ground truth {sc.answer}: {verdict.reasons or 'accepted'}")


class _TeacherOnTheTask:
    """The teacher, shaped like the student a task's own episode drives (``llm``, ``temperature``, ``retrieve``
    ...): its calls go to the teacher's log, under the purpose ``solve_example``."""

    def __init__(self, teacher: Any, *, temperature: float, seed: int, max_tokens: int = 400) -> None:
        self.teacher, self.llm = teacher, self
        self.temperature, self.seed, self.max_tokens = temperature, seed, max_tokens
        self.log, self.model_spec = None, teacher.model

    def chat_stream(self, messages: Any, **params: Any) -> Any:
        return self.teacher.chat_stream(messages, purpose="solve_example", **params)

    def retrieve(self, question: str, task: str | None = None) -> list[Any]:
        return []


def _try_answer(ctx: BuildContext, sc: Scenario, temperature: float, seed: int
                ) -> WorkedExample | tuple[str, str, str]:
    """One teacher try at ``sc`` on the task's own episode, for tasks whose answer is the solution: the answer
    the check accepts as an example, or (answer, "", why it failed); raises ``TeacherError`` like ``_try``."""
    solver = _TeacherOnTheTask(ctx.teacher, temperature=temperature, seed=seed)
    attempt = run_attempt(ctx.task, solver, sc, strategies=[])
    answer = attempt.answer.strip()
    if not answer:
        return "", "", "the teacher gave no answer"
    verdict = judge(ctx.task, sc, attempt)
    if not verdict.correct:
        return answer, "", f"its answer failed the check ({verdict.reasons[:160]})"
    return WorkedExample(question=sc.question, program=answer, answer=answer, solver=ctx.teacher.model,
                         category=sc.category, form="answer",
                         verification=f"ground truth {sc.answer}: {verdict.reasons or 'accepted'}")


def student_example(ctx: BuildContext, sc: Scenario, *, samples: int = STUDENT_SAMPLES,
                    temperature: float = 0.7) -> WorkedExample | None:
    """A verified solution of ``sc`` from the student's own sampled attempts (run at once), or None."""
    tool, form = code_tool(ctx.student.tools), as_task(ctx.task).example_form
    if sc.answer is None or samples < 1 or (tool is None and form == "program"):
        return None

    def one(i: int) -> WorkedExample | None:
        student = copy.copy(ctx.student)
        student.temperature, student.seed = temperature, ctx.config.seed + 1_000 + i
        with ctx.student_turns:
            attempt = run_attempt(ctx.task, student, sc, strategies=[])
        if not judge(ctx.task, sc, attempt).correct:
            return None
        verification = f"ground truth {sc.answer}: the student's sampled run {i + 1} of {samples}"
        if form == "answer":  # the accepted answer is the example
            return WorkedExample(question=sc.question, program=attempt.answer.strip(), answer=attempt.answer.strip(),
                                 solver=ctx.student.model_spec, category=sc.category, form="answer",
                                 verification=verification)
        ran = [c for c in attempt.tool_calls if c.name == tool and not c.error and c.arguments.get("code")]
        if not ran or answer_key(ran[-1].result) != answer_key(attempt.answer):
            return None  # right, but not by the program it ran: nothing to show
        return WorkedExample(question=sc.question, program=str(ran[-1].arguments["code"]).strip(),
                             output=ran[-1].result.strip(), answer=str(answer_key(attempt.answer)),
                             solver=ctx.student.model_spec, category=sc.category, verification=verification)

    with ThreadPoolExecutor(samples, thread_name_prefix="agentkd-harvest") as pool:
        found = list(pool.map(one, range(samples)))
    return next((e for e in found if e is not None), None)
