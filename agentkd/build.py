"""One build, end to end: parts from settings → the distillation loop → held-out before/after."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentkd import models
from agentkd.config import Settings
from agentkd.evaluate import ArmResult, run_arm
from agentkd.nodes import BuildConfig, BuildContext, BuildState
from agentkd.runlog import RunLog, Usage
from agentkd.tasks import get_task

Progress = Callable[..., None]


@dataclass
class BuildReport:
    task: str
    teacher: str
    student: str
    library: str
    state: BuildState
    arms: list[ArmResult] = field(default_factory=list)
    teacher_usage: Usage = field(default_factory=Usage)
    student_usage: Usage = field(default_factory=Usage)
    seconds: float = 0.0
    runlog: str = ""


def make_parts(settings: Settings, log: RunLog) -> dict[str, Any]:
    """Teacher, student and library as configured (imported here so `agentkd --help` stays fast)."""
    from agentkd.library import Library
    from agentkd.providers import LitellmTransport
    from agentkd.student import Student
    from agentkd.teacher import Teacher

    key = settings.teacher_api_key.get_secret_value() if settings.teacher_api_key else None
    transport = LitellmTransport(
        api_base=settings.teacher_api_base,
        api_key=key,
        timeout=settings.teacher_timeout,
        n_ctx=settings.n_ctx,
        n_threads=settings.n_threads,
    )
    teacher = Teacher(
        settings.teacher,
        transport=transport,
        retries=settings.teacher_retries,
        max_reasks=settings.max_reasks,
        seed=settings.seed,
        log=log,
    )
    library = Library.open(settings.library_path, settings.collection)
    student = Student(
        settings.student,
        retriever=library,
        k=settings.top_k,
        strategy_tokens=settings.strategy_tokens,
        n_ctx=settings.n_ctx,
        n_threads=settings.n_threads,
        temperature=settings.temperature,
        seed=settings.seed,
        log=log,
    )
    return {"teacher": teacher, "student": student, "library": library}


def ensure_models(settings: Settings, progress: Progress) -> None:
    """Assemble the catalog models this build needs before the loop starts (verified, once)."""
    for spec in (settings.student, settings.teacher):
        name = spec.removeprefix("local/")
        local = spec.startswith("local/") or spec == settings.student
        if local and name in models.CATALOG and not models.is_present(models.CATALOG[name], settings.models_dir):
            progress("pull", model=name)
            models.pull(name, root=settings.models_dir)


def run_build(
    settings: Settings,
    *,
    task_name: str = "gsm_symbolic",
    config: BuildConfig | None = None,
    heldout: int = 20,
    progress: Progress = lambda event, **data: None,
) -> BuildReport:
    """Build a library for ``task_name`` and measure the student on held-out items without and with it."""
    from agentkd.graph import run, sqlite_checkpointer

    t0 = time.perf_counter()
    config = config or BuildConfig(seed=settings.seed)
    task = get_task(task_name)
    ensure_models(settings, progress)
    run_id = time.strftime("%Y%m%d-%H%M%S")
    log = RunLog(settings.runs_dir / f"{run_id}.jsonl")
    parts = make_parts(settings, log)
    ctx = BuildContext(
        teacher=parts["teacher"],
        student=parts["student"],
        library=parts["library"],
        task=task,
        config=config,
        log=log,
        progress=progress,
    )
    progress("start", iterations=config.iterations, batch_size=config.batch_size)
    with sqlite_checkpointer(settings.runs_dir / f"{run_id}.sqlite") as saver:
        state = run(ctx, checkpointer=saver, thread_id=run_id)

    scenarios = task.scenarios("heldout", heldout, seed=settings.seed)
    progress("eval", n=len(scenarios) * 2)
    tick = lambda: progress("eval_item")  # noqa: E731
    arms = [
        run_arm("student alone", ctx.student, task, scenarios, use_library=False, progress=tick),
        run_arm("student + library", ctx.student, task, scenarios, use_library=True, progress=tick),
    ]
    return BuildReport(
        task=task_name,
        teacher=settings.teacher,
        student=settings.student,
        library=f"{settings.library_path} [{settings.collection}]",
        state=state,
        arms=arms,
        teacher_usage=log.totals("teacher"),
        student_usage=log.totals("student"),
        seconds=time.perf_counter() - t0,
        runlog=str(log.path),
    )
