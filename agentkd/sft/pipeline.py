"""``agentkd export-sft`` end to end: settings → scenarios → teacher trajectories → checked records on disk."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentkd.config import Settings
from agentkd.errors import ConfigError
from agentkd.models.runlog import RunLog
from agentkd.schema import Progress
from agentkd.sft.card import CardInfo
from agentkd.sft.export import ExportConfig, ExportReport, read_trajectories, write_dataset
from agentkd.sft.sources import ScenarioSource, run_scenarios, task_scenarios
from agentkd.sft.trajectories import Dropped, Trajectory, TrajectoryCollector


@dataclass
class ExportRequest:
    """Where the scenarios come from and how the teacher works; ``ExportConfig`` says how records are written."""

    out: Path
    run: str | None = None
    task: str | None = None
    n: int | None = None
    trajectories: Path | None = None
    with_strategies: bool = True
    max_steps: int = 6
    tool_first: bool = True
    workers: int = 4


def resolve_settings(settings: Settings, request: ExportRequest, overrides: dict[str, Any]) -> tuple[Settings, str]:
    """The settings of the export (a run's own, then explicit overrides) and the task name."""
    sources = [x for x in (request.run, request.task, request.trajectories) if x]
    if len(sources) != 1:
        raise ConfigError(
            "say where the scenarios come from, once: --run RUN_ID, --task NAME, or --trajectories FILE.",
            hint="e.g. agentkd export-sft --format openai --out sft/ --task gsm_symbolic --n 20",
        )
    task = request.task or ""
    if request.run:
        from agentkd.distill.build import latest_unfinished_run, load_run

        if request.run == "last":
            request.run = latest_unfinished_run(settings) or _newest_run(settings)
        spec = load_run(settings, request.run)
        settings = settings.model_copy(update=spec["settings"])
        task = spec["task"]
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    return settings, task


def _newest_run(settings: Settings) -> str:
    specs = sorted(settings.runs_dir.glob("*.json")) if settings.runs_dir.is_dir() else []
    if not specs:
        raise ConfigError(f"there is no build run in {settings.runs_dir}.", hint="run `agentkd build` first.")
    return specs[-1].stem


def teacher_licence(teacher: str) -> str:
    from agentkd.models import catalog

    name = teacher.removeprefix("local/")
    return catalog.CATALOG[name].source if teacher.startswith("local/") and name in catalog.CATALOG else ""


def run_export(
    settings: Settings,
    request: ExportRequest,
    config: ExportConfig,
    *,
    overrides: dict[str, Any] | None = None,
    progress: Progress = lambda event, **data: None,
) -> ExportReport:
    """Collect (or read) trajectories and write the dataset; ``progress`` gets ``scenarios`` and ``scenario`` events."""
    from agentkd.models import catalog, llamacpp

    settings, task_name = resolve_settings(settings, request, overrides or {})
    config = dataclasses.replace(config, max_tokens=config.max_tokens or settings.n_ctx)
    if request.trajectories is not None:
        trajectories = read_trajectories(request.trajectories)
        if not trajectories:
            raise ConfigError(f"{request.trajectories} holds no trajectories.",
                              hint="point --trajectories at the trajectories.jsonl of an earlier export.")
        task_name = trajectories[0].scenario.task
        renderer = llamacpp.shared(catalog.resolve(settings.student), n_ctx=settings.n_ctx, seed=settings.seed)
        info = CardInfo(task=task_name, teacher=trajectories[0].teacher, student=settings.student,
                        source=f"{len(trajectories)} trajectories read from {request.trajectories}",
                        tools=[t["function"]["name"] for t in trajectories[0].tools],
                        with_strategies=any(t.with_strategies for t in trajectories), max_steps=request.max_steps)
        return write_dataset(request.out, trajectories, [], config, renderer, info, collected=len(trajectories),
                             instructions=_instructions(task_name))
    return _collect_and_write(settings, request, config, task_name, progress)


def _instructions(task_name: str) -> Callable[[str], str]:
    def get(name: str) -> str:
        from agentkd.parts import load_task

        try:
            return str(load_task(name or task_name).instructions)
        except Exception:  # a task that cannot be loaded here only loses the instruction line of code-block turns
            return ""

    return get


def _collect_and_write(
    settings: Settings, request: ExportRequest, config: ExportConfig, task_name: str, progress: Progress
) -> ExportReport:
    from agentkd.parts import load_task, open_parts
    from agentkd.teacher.scrubber import default_scrubber

    task = load_task(task_name)
    source = (run_scenarios(settings, request.run, _run_spec(settings, request.run), task) if request.run
              else task_scenarios(task, request.n or 20, settings.seed))
    if request.n is not None:
        source = ScenarioSource(source.scenarios[: request.n], source.origin, source.description +
                                (f", the first {request.n} used" if len(source.scenarios) > request.n else ""))
    log = RunLog()
    parts = open_parts(settings, log, task)
    teacher, student = parts["teacher"], parts["student"]
    teacher.scrub = default_scrubber(settings.teacher, None)
    collector = TrajectoryCollector(teacher, student, task, with_strategies=request.with_strategies,
                                    max_steps=request.max_steps, tool_first=request.tool_first)
    progress("scenarios", n=len(source.scenarios), source=source.description)
    results = collector.collect_all(
        source.scenarios, workers=request.workers,
        progress=lambda sc, result: progress("scenario", scenario=sc.id, kept=isinstance(result, Trajectory),
                                             reason="" if isinstance(result, Trajectory) else result.reason),
    )
    trajectories = [r for r in results if isinstance(r, Trajectory)]
    dropped = [r for r in results if isinstance(r, Dropped)]
    usage = log.totals("teacher")
    info = CardInfo(
        task=task_name, teacher=settings.teacher, student=settings.student, source=source.description,
        tools=student.tools.names, with_strategies=request.with_strategies,
        library=f"{settings.library_path} [{settings.collection}]", max_steps=request.max_steps,
        tool_first=request.tool_first,
        teacher_temperature=teacher.temperature, scrubbed=teacher.scrub is not None, teacher_calls=usage.calls,
        teacher_tokens=usage.tokens,
        teacher_cost_usd=usage.cost_usd, teacher_licence=teacher_licence(settings.teacher),
    )
    progress("write")
    return write_dataset(request.out, trajectories, dropped, config, student.llm, info,
                         collected=len(source.scenarios), instructions=lambda name: str(task.instructions))


def _run_spec(settings: Settings, run_id: str) -> dict[str, Any]:
    from agentkd.distill.build import load_run

    return load_run(settings, run_id)
