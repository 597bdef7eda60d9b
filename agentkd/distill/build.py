"""One build, end to end: parts from settings → the distillation loop → held-out before/after."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentkd.config import Settings
from agentkd.distill.context import BuildConfig, BuildContext
from agentkd.distill.curriculum import Budget
from agentkd.distill.harvest import example_categories
from agentkd.distill.nodes import BuildState
from agentkd.errors import ConfigError, RunStateError
from agentkd.eval.heldout import ArmResult, run_arm
from agentkd.models.runlog import RunLog, Usage
from agentkd.parts import attach_teacher, ensure_models, load_task, open_parts, open_teacher
from agentkd.schema import Progress, Strategy
from agentkd.tasks import TaskSource
from agentkd.tasks.base import limited

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # a name in the runs directory, never a path


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
    run_id: str = ""
    alpha: float = 0.05  # level of the admission rule, for the chance-admission line
    coverage: tuple[int, int] | None = None  # categories with an admitted worked example, of the task's


def batch_student(student: Any, settings: Settings) -> int:
    """Give an in-process student the batched engine (``batch_width`` sequences); the width it got (1: none)."""
    width = settings.batch_width
    if width <= 1 or settings.student_api_base or not hasattr(student.llm, "batched"):
        return 1
    student.llm = student.llm.batched(width)
    return width


def _run_files(settings: Settings, run_id: str) -> tuple[Path, Path, Path]:
    base = settings.runs_dir / run_id
    return base.with_suffix(".json"), base.with_suffix(".jsonl"), base.with_suffix(".sqlite")


def _read_spec(path: Path) -> dict[str, Any]:
    """A run spec; ``RunStateError`` naming the file when it cannot be read or is not a spec."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise RunStateError(f"the run spec {path} is unreadable ({e}).",
                            hint="delete it, or start a new run with `agentkd build`.") from e
    if not isinstance(data, dict) or not {"task", "heldout", "config", "settings"} <= data.keys():
        raise RunStateError(f"the run spec {path} is not a build run's spec (fields are missing).",
                            hint="delete it, or start a new run with `agentkd build`.")
    return data


def _write_spec(path: Path, spec: dict[str, Any]) -> None:
    """Write the spec whole or not at all: a temporary file renamed over it, so a kill or a full disk never
    leaves half a spec for ``--resume`` to trip on."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            f.write(json.dumps(spec, indent=2, default=str))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def latest_unfinished_run(settings: Settings) -> str | None:
    """The newest run whose spec says it has not finished, for ``agentkd build --resume``.

    An unreadable spec (from a version that wrote them in place, or a damaged disk) is skipped with a warning.
    """
    specs = sorted(settings.runs_dir.glob("*.json"), reverse=True) if settings.runs_dir.is_dir() else []
    for spec in specs:
        try:
            finished = _read_spec(spec).get("finished")
        except RunStateError as e:
            warnings.warn(f"skipping run {spec.stem}: {e}", RuntimeWarning, stacklevel=2)
            continue
        if not finished:
            return spec.stem
    return None


def load_run(settings: Settings, run_id: str) -> dict[str, Any]:
    if not _RUN_ID.fullmatch(run_id):
        raise ConfigError(f"{run_id!r} is not a run id.", hint="run ids look like 20250101-120000-123; or use 'last'.")
    spec, _, _ = _run_files(settings, run_id)
    if not spec.is_file():
        raise ConfigError(
            f"no build run {run_id!r} in {settings.runs_dir}.",
            hint="run `agentkd build` to start one; --resume continues the newest unfinished run.",
        )
    return _read_spec(spec)


def _check_resumable(log_path: Path, ckpt_path: Path, run_id: str) -> None:
    """A resumed run continues from its checkpoint or not at all: starting over quietly would write a run
    record that lists none of the entries the library already holds from it."""
    from agentkd.distill.checkpoints import check_checkpoint

    if not ckpt_path.exists() and not (log_path.is_file() and log_path.stat().st_size):
        return  # killed before its first model call: there is nothing to lose, so it simply starts
    check_checkpoint(ckpt_path, run_id)


def _admitted(state: BuildState, log_path: Path, library: Any) -> list[str]:
    """The entries this run admitted: the final state's, and any its log recorded that the library still
    holds as admitted (an older checkpoint may not know of the latest), so the record matches the library."""
    ids = list(state.admitted)
    try:
        lines = log_path.read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill
        sid = record.get("id") if isinstance(record, dict) and record.get("event") == "admitted" else None
        if isinstance(sid, str) and sid not in ids:
            entry = library.get(sid)
            if entry is not None and entry.status == "admitted":
                ids.append(sid)
    return ids


def run_build(
    settings: Settings,
    *,
    task_name: str = "gsm_symbolic",
    config: BuildConfig | None = None,
    heldout: int | None = None,
    progress: Progress = lambda event, **data: None,
    resume: str | None = None,
    scrub: bool | None = None,
) -> BuildReport:
    """Build a library for ``task_name`` and measure the student on held-out items without and with it.

    Every run writes ``<run>.json`` (what was asked), ``<run>.jsonl`` (every model call) and
    ``<run>.sqlite`` (LangGraph checkpoints); ``resume=<run id>`` continues a killed run where it stopped.
    """
    from agentkd.distill.graph import run, sqlite_checkpointer
    from agentkd.teacher.scrubber import default_scrubber

    t0 = time.perf_counter()
    config = config or BuildConfig.from_settings(settings)
    heldout = settings.heldout if heldout is None else heldout
    if resume:
        saved = load_run(settings, resume)
        settings = settings.model_copy(update=saved["settings"])
        task_name, heldout, config = saved["task"], saved["heldout"], _config_from(saved["config"])
        settings = settings.model_copy(update={"categories": ",".join(saved.get("categories") or [])})
        run_id = resume
    else:
        run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid() % 1000:03d}"
    open_teacher(settings)  # a teacher that cannot work (unknown model, missing script) stops us before any work
    task, chosen = load_scoped(task_name, settings)
    spec_path, log_path, ckpt_path = _run_files(settings, run_id)
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    if resume:
        _check_resumable(log_path, ckpt_path, run_id)
    else:
        _write_spec(spec_path, {
            "run_id": run_id,
            "task": task_name,
            "heldout": heldout,
            "categories": chosen,
            "config": _config_dict(config),
            "settings": {k: getattr(settings, k) for k in _PERSISTED},
            "finished": False,
        })
    if chosen:
        progress("categories", task=task_name, chosen=chosen)
    ensure_models(settings, progress)
    log = RunLog(log_path)
    if task.n_ctx and settings.n_ctx < task.n_ctx:  # e.g. tau2's policy + tools need ~8k
        settings = settings.model_copy(update={"n_ctx": task.n_ctx})
    parts = open_parts(settings, log, task)
    attach_teacher(task, parts["teacher"], settings.teacher)
    parts["teacher"].scrub = default_scrubber(settings.teacher, scrub)
    width = batch_student(parts.student, settings)
    if width > 1:  # the round's branches (attempts, admission trials) decode as sequences of one batch
        config = dataclasses.replace(config, student_concurrency=max(config.student_concurrency, width))
    ctx = BuildContext(
        teacher=parts["teacher"],
        student=parts["student"],
        library=parts["library"],
        task=task,
        config=config,
        log=log,
        progress=progress,
    )
    progress("start", run_id=run_id, iterations=config.iterations, batch_size=config.batch_size, resumed=bool(resume))
    # the student alone first: it does not depend on the library, and its time is what the last arm will need
    scenarios = task.scenarios("heldout", heldout, seed=settings.seed)
    alone = _baseline(spec_path, ctx, scenarios, width)
    ctx.config = dataclasses.replace(config, budget=_loop_budget(config.budget, settings.build_minutes, t0))
    ctx.reserve = _reserve(ctx, alone, settings.seed)
    if ctx.config.budget.max_seconds is not None:
        progress("budget", seconds=ctx.config.budget.max_seconds, arm_seconds=alone.wall)
    with sqlite_checkpointer(ckpt_path) as saver:
        state = run(ctx, checkpointer=saver, thread_id=run_id, resume=bool(resume))

    progress("eval", n=len(scenarios), name="held-out: student + library")
    used = run_arm("student + library", ctx.student, task, scenarios, use_library=True,
                   progress=lambda: progress("eval_item"), width=width, reuse=alone)
    arms = [alone, used]
    spec = _read_spec(spec_path)
    admitted = _admitted(state, log_path, ctx.library)
    spec.update(finished=True, accuracy={a.name: a.accuracy for a in arms}, admitted=admitted,
                with_library=dataclasses.asdict(used))  # per item: which ones the library won or lost
    _write_spec(spec_path, spec)
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
        run_id=run_id,
        alpha=config.alpha,
        coverage=example_coverage(task, ctx.library),
    )


def load_scoped(task_name: str, settings: Settings) -> tuple[TaskSource, list[str]]:
    """The task, limited to ``settings.categories`` when set, and the categories it was limited to."""
    return limited(load_task(task_name), settings.categories, settings.seed)


def _baseline(spec_path: Path, ctx: BuildContext, scenarios: list[Any], width: int) -> ArmResult:
    """The student alone on the held-out items, run once per build: a resumed run reads it from its spec."""
    spec = _read_spec(spec_path)
    saved = spec.get("baseline")
    if isinstance(saved, dict) and [i.get("id") for i in saved.get("items", [])] == [s.id for s in scenarios]:
        return ArmResult(**saved)
    ctx.progress("eval", n=len(scenarios), name="held-out: student alone")
    alone = run_arm("student alone", ctx.student, ctx.task, scenarios, use_library=False,
                    progress=lambda: ctx.progress("eval_item"), width=width)
    spec["baseline"] = dataclasses.asdict(alone)
    _write_spec(spec_path, spec)
    return alone


MARGIN_S = 15.0  # report, plot and closing the models


def _loop_budget(budget: Budget, minutes: float, t0: float) -> Budget:
    """The loop's wall-time budget: what ``minutes`` leaves after the time spent so far (models, the
    student-alone arm); the with-library arm's share is kept back as the loop goes (``_reserve``)."""
    if not minutes:
        return budget
    left = minutes * 60 - (time.perf_counter() - t0) - MARGIN_S
    seconds = max(left, 0.0) if budget.max_seconds is None else min(budget.max_seconds, max(left, 0.0))
    return budget.model_copy(update={"max_seconds": seconds, "started": time.time()})


RESERVE_PROBES = 30  # train questions that estimate where the library retrieves


def _reserve(ctx: BuildContext, alone: ArmResult, seed: int) -> Callable[[], float]:
    """Seconds the with-library arm will take with the library as it is now, and as if every candidate in
    flight were admitted (``ctx.pending``: a late admission must not find the arm's time spent): the
    student-alone arm's time times the share of questions that would retrieve an entry (only those are decoded
    again). The share is estimated on train questions of the same task, never on the held-out ones; a pending
    entry counts where it is close enough to be retrieved (``_would_show``)."""
    questions = [sc.question for sc in ctx.task.scenarios("train", RESERVE_PROBES, seed=seed + 7_777_777)]
    stored: dict[int, list[bool]] = {}  # per library size: which questions retrieve an entry
    shown: dict[str, list[bool]] = {}  # per pending candidate: which questions it would be shown for
    count = getattr(ctx.library, "count", None)

    def reserve() -> float:
        size = count() if count is not None else -1
        if size not in stored:
            stored[size] = [size != 0 and bool(ctx.student.retrieve(q, ctx.task.name)) for q in questions]
        hits = stored[size]
        for cid, entry in list(ctx.pending.items()):
            if cid not in shown:
                shown[cid] = _would_show(ctx.student, entry, questions)
            hits = [h or w for h, w in zip(hits, shown[cid], strict=True)]
        return alone.wall * sum(hits) / max(len(questions), 1)

    return reserve


def _would_show(student: Any, entry: Strategy, questions: list[str]) -> list[bool]:
    """Which questions an entry not yet in the library would be shown for: those as close to it as retrieval
    requires (``example_min_score`` for a worked example, the retriever's relevance floor for a written one)."""
    from agentkd.library.embedder import get_embedder
    from agentkd.library.retrieval import DEFAULT_MIN_SCORE

    floor = student.example_min_score if entry.kind == "example" else DEFAULT_MIN_SCORE
    vectors = get_embedder().embed([entry.embedding_text(), *questions])
    return [float(x) >= floor for x in vectors[1:] @ vectors[0]]


def example_coverage(task: TaskSource, library: Any) -> tuple[int, int] | None:
    """How many of the task's (train) categories have an admitted worked example in the library."""
    covered = example_categories(library, task.name)
    known = set(task.categories("train"))
    if covered is None or len(known) <= 1:
        return None
    return len(covered & known), len(known)


_PERSISTED = (
    "teacher",
    "teacher_api_base",
    "student",
    "student_api_base",
    "library",
    "collection",
    "seed",
    "n_ctx",
    "top_k",
    "strategy_tokens",
    "temperature",
)


def _config_dict(config: BuildConfig) -> dict[str, Any]:
    data = dataclasses.asdict(config)
    data["budget"] = config.budget.model_dump(exclude={"started"})
    return data


def _config_from(data: dict[str, Any]) -> BuildConfig:
    return BuildConfig(**{**data, "budget": Budget(**data.get("budget", {}))})
