"""``run_eval``: every arm on the same scenarios, each item graded and written as it finishes.

The scenarios are drawn once (``task.scenarios(split, n, seed)``); every arm answers exactly those,
in that order. Each item's record and full transcript are appended to ``transcripts/<arm>.jsonl`` at
once, so ``resume=True`` continues an interrupted run without redoing finished items.

A student arm on an in-process model runs ``batch_width`` items at once (each in a thread, on its own
copy of the student), their model calls decoded as sequences of one llama.cpp batch (#16): the same
results at temperature 0 as one by one, in a fraction of the time.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentkd.config import Settings
from agentkd.errors import ConfigError, TeacherError
from agentkd.eval.arms import ArmSpec, default_baseline, parse_arms
from agentkd.eval.heldout import grade, in_order
from agentkd.eval.results import EvalResult, ItemRecord, compare, read_transcripts, summarize
from agentkd.eval.resume import add_wall_seconds, record_run
from agentkd.eval.teacher_arm import TeacherSolver
from agentkd.models.runlog import CallRecord, RunLog
from agentkd.parts import OneQueryAtATime
from agentkd.prompts import render
from agentkd.schema import Attempt, Progress, Scenario
from agentkd.tasks import TaskSource, as_task
from agentkd.tasks.base import limited
from agentkd.tools import ToolBox


@dataclass
class EvalConfig:
    """What to evaluate; see ``agentkd eval --help`` for each knob."""

    task: str = "gsm_symbolic"
    split: str = "heldout"
    n: int = 20
    categories: str = ""  # only these of the task's categories (a number N: N drawn with the seed); "": all
    seed: int = 1234
    arms: str | list[str] = "student,student+library,teacher"
    out: Path = field(default_factory=lambda: Path("eval-out"))
    tools: bool = True  # False: every arm answers in chain of thought (as if each had +cot)
    baseline: str | None = None  # default: the student alone
    pack: Path | None = None  # evaluate this pack as the library (instead of --library/--collection)
    retrieval_task: str | None = None  # "any": strategies of every task; a name: that task's; None: the item's
    max_tokens: int | None = None  # the student's tokens per step
    max_steps: int | None = None  # the student's model calls per item
    teacher_max_tokens: int = 768
    resamples: int = 2000
    resume: bool = False
    command: str = ""


class TaskView:
    """A retriever that searches strategies of a fixed task (or of any task), whatever the item's task is."""

    def __init__(self, inner: Any, task: str | None) -> None:
        self.inner, self.task = inner, task

    def search(self, query: str, *, k: int = 3, task: str | None = None) -> Any:
        return self.inner.search(query, k=k, task=self.task)


class _Arena:
    """The parts every arm shares: the task, the student (re-armed per arm), the teacher, the retrievers."""

    def __init__(self, settings: Settings, config: EvalConfig, task: TaskSource, parts: Any) -> None:
        self.settings, self.config, self.task = settings, config, task
        self.student, self.teacher = parts["student"], parts["teacher"]
        self.tools: ToolBox = self.student.tools
        self.main_retriever = self.student.retriever
        self.retrievers: dict[str, Any] = {}
        self.resumed_seconds = 0.0
        if config.max_tokens:
            self.student.max_tokens = config.max_tokens
        if config.max_steps:
            self.student.max_steps = config.max_steps

    def retriever(self, source: str, progress: Progress) -> Any:
        if source not in self.retrievers:
            inner = self.main_retriever if source == "" else self._open(source, progress)
            rt = self.config.retrieval_task
            self.retrievers[source] = inner if rt is None else TaskView(inner, None if rt == "any" else rt)
        return self.retrievers[source]

    def _open(self, source: str, progress: Progress) -> Any:
        from agentkd.eval.packs import import_pack, is_pack
        from agentkd.library import Library, MMRRetriever

        if is_pack(Path(source)):
            location, collection, _ = import_pack(Path(source), self.settings.home)
        else:
            collection, _, location = source.partition("@")
            location = location or self.settings.library_path
        lib = Library.open(location, collection)
        if lib.count() == 0:
            progress("warn", message=f"library {source!r} ({collection} at {location}) is empty")
        return MMRRetriever(lib, count_tokens=self.student.llm.count_tokens,
                            budget_tokens=self.settings.strategy_tokens)

    def solver(self, arm: ArmSpec, progress: Progress) -> Any:
        tools = self.config.tools and arm.tools
        if arm.who == "teacher":
            return TeacherSolver(self.teacher, tools=self.tools if tools else None,
                                 max_steps=max(self.student.max_steps, 4), max_tokens=self.config.teacher_max_tokens)
        self.student.tools = self.tools if tools else ToolBox([])
        self.student.retriever = self.retriever(arm.library, progress) if arm.library is not None else None
        self.student.samples = arm.samples
        return self.student

    def instructions(self, arm: ArmSpec) -> str:
        """The task's answer instructions; without tools, asking for a chain of thought first."""
        if self.config.tools and arm.tools:
            return self.task.instructions
        return render("eval_cot.md", instructions=self.task.instructions)

    def width(self, arm: ArmSpec) -> int:
        """Items of ``arm`` run at once: a student arm on an in-process model batches (``batch_width``)."""
        batchable = arm.who != "teacher" and not self.task.has_own("run")  # an episode drives a teacher
        return max(self.settings.batch_width, 1) if batchable and hasattr(self.student.llm, "batched") else 1

    def item_solver(self, solver: Any, batched: Any, retriever: Any) -> Any:
        """A copy of the student for one item of a batch: the batched model, and a log of its own calls (the
        item's token counts) that also feeds the run's log; ``retriever`` answers one query at a time."""
        item = copy.copy(solver)
        item.llm, item.log, item.retriever = batched, _ItemLog(solver.log), retriever
        return item

    def run_item(self, arm: ArmSpec, solver: Any, scenario: Scenario) -> tuple[ItemRecord, dict[str, Any]]:
        log, role = (solver.teacher.log, "teacher") if arm.who == "teacher" else (solver.log, "student")
        before = replace(log.totals(role))  # a snapshot: the log's totals object keeps counting
        t0 = time.perf_counter()
        error = ""
        strategies: list[Any] | None = None if arm.library is not None else []
        try:
            # an episode of the task's own gets its instructions; one student attempt, the arm's (maybe with CoT)
            instructions = self.task.instructions if self.task.has_own("run") else self.instructions(arm)
            attempt = self.task.run(solver, scenario, instructions=instructions, strategies=strategies)
        except TeacherError as exc:  # the teacher (or tau2's customer) gave up after its retries: a lost item
            attempt, error = Attempt(scenario_id=scenario.id, answer=""), str(exc)
        seconds = time.perf_counter() - t0
        verdict = grade(self.task, scenario, attempt)
        after = log.totals(role)
        record = ItemRecord(
            arm=arm.name, id=scenario.id, category=scenario.category, difficulty=scenario.difficulty,
            correct=verdict.correct and not error, score=verdict.score if not error else 0.0,
            expected=scenario.answer, answer=attempt.answer, reasons=error or verdict.reasons, seconds=seconds,
            prompt_tokens=after.prompt_tokens - before.prompt_tokens,
            completion_tokens=attempt.completion_tokens or after.completion_tokens - before.completion_tokens,
            cost_usd=after.cost_usd - before.cost_usd, tool_calls=len(attempt.tool_calls),
            strategies=attempt.strategy_ids, error=error,
        )  # fmt: skip
        detail = {"question": scenario.question, "tool_call_records": [c.model_dump() for c in attempt.tool_calls],
                  "transcript": attempt.transcript}
        if attempt.votes:  # a vote arm: every candidate's answer, the tally and the choice, beside the winner's
            detail["votes"] = attempt.votes
        return record, detail


def run_eval(
    settings: Settings,
    config: EvalConfig,
    *,
    progress: Progress = lambda event, **data: None,
    parts: Any = None,  # agentkd.parts.Parts (or a dict of the same names)
    task: TaskSource | None = None,
) -> EvalResult:
    """Evaluate every arm on the same scenarios; write results.json, the reports and the transcripts to ``out``.

    ``parts`` (``{"student": ..., "teacher": ...}``) and ``task`` (any source: ``as_task`` adapts one that
    does not inherit ``Task``) replace what the settings would build.
    """
    from agentkd.eval.publish import write_report
    from agentkd.parts import attach_teacher, ensure_models, load_task, open_parts

    arms = parse_arms(config.arms)
    names = [a.name for a in arms]
    baseline = config.baseline or default_baseline(arms).name
    if baseline not in names:
        raise ConfigError(f"baseline {baseline!r} is not one of the arms ({', '.join(names)})",
                          hint="pass --baseline with one of the arm names, or add it to --arms")
    pack_name = None
    if config.pack is not None:
        from agentkd.eval.packs import import_pack

        location, collection, manifest = import_pack(config.pack, settings.home)
        settings = settings.model_copy(update={"library": location, "collection": collection})
        pack_name = str(config.pack)
        progress("pack", name=manifest.name, entries=manifest.build.entries)
    out = config.out
    (out / "transcripts").mkdir(parents=True, exist_ok=True)
    spent = record_run(out, {a.name: _fingerprint(a, config, settings) for a in arms}, resume=config.resume)
    task = as_task(task) if task is not None else load_task(config.task)
    task, _ = limited(task, config.categories, config.seed)
    if parts is None:
        needs_teacher = any(a.who == "teacher" for a in arms) or bool(task.model_roles)
        ensure_models(settings if needs_teacher else settings.model_copy(update={"teacher": settings.student}),
                      progress)
        parts = open_parts(settings, RunLog(out / "calls.jsonl"), task)
    attach_teacher(task, parts["teacher"], settings.teacher)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    scenarios = task.scenarios(config.split, config.n, seed=config.seed)  # type: ignore[arg-type]
    if not scenarios:
        raise ConfigError(f"{task.name} gave no {config.split} scenarios", hint="check --split and --n")
    (out / "scenarios.jsonl").write_text("".join(sc.model_dump_json() + "\n" for sc in scenarios), encoding="utf-8")
    arena = _Arena(settings, config, task, parts)
    progress("start", total=len(arms) * len(scenarios), arms=names, n=len(scenarios))
    records: dict[str, list[ItemRecord]] = {}
    try:
        for arm in arms:
            same = _same_prompt_arm(arm, arms[: arms.index(arm)], task)
            records[arm.name] = _run_arm(arena, arm, scenarios, out / "transcripts" / f"{arm.slug}.jsonl", progress,
                                         reuse=(same.name, records[same.name]) if same is not None else None)
    finally:  # the report's duration covers an interrupted run's part too: its wall time, not its items' sum
        add_wall_seconds(out, time.perf_counter() - t0)
    earlier = spent if spent is not None else arena.resumed_seconds  # a directory older than run.json's clock
    return _finish(config, settings, task, arms, baseline, scenarios, records, started, t0 - earlier, pack_name,
                   write_report)


def _library_identity(source: str, config: EvalConfig, settings: Settings) -> str:
    """The library an arm retrieves from: a pack by its entries' digest, a live library by collection@location."""
    from agentkd.eval.packs import entries_digest, is_pack

    if source == "" and config.pack is not None:  # by its files alone: another path to the same files is the same
        return f"pack with entries {entries_digest(config.pack)}"
    if source and is_pack(Path(source)):
        return f"pack with entries {entries_digest(Path(source))}"
    return source or f"{settings.collection}@{settings.library_path}"


def _fingerprint(arm: ArmSpec, config: EvalConfig, settings: Settings) -> dict[str, Any]:
    """The settings ``arm``'s answers depend on (``run.json``, checked by ``--resume``)."""
    items = {"task": config.task, "split": config.split, "seed": config.seed, "categories": config.categories,
             "tools": config.tools and arm.tools, "retrieval_task": config.retrieval_task}  # fmt: skip
    if arm.who == "teacher":
        return {**items, "teacher": settings.teacher, "teacher_max_tokens": config.teacher_max_tokens,
                "max_steps": config.max_steps or settings.max_steps}  # fmt: skip
    library = _library_identity(arm.library, config, settings) if arm.library is not None else None
    return {**items, "student": settings.student, "temperature": settings.temperature, "n_ctx": settings.n_ctx,
            "max_tokens": config.max_tokens, "max_steps": config.max_steps or settings.max_steps,
            "library": library, "top_k": settings.top_k, "strategy_tokens": settings.strategy_tokens,
            "example_min_score": settings.example_min_score}  # fmt: skip


def _same_prompt_arm(arm: ArmSpec, earlier: list[ArmSpec], task: TaskSource) -> ArmSpec | None:
    """The earlier arm whose prompt ``arm``'s is wherever its library retrieves nothing: the same student,
    tools and votes without a library. Single-turn tasks only (an episode's later turns may retrieve)."""
    if arm.who != "student" or arm.library is None or task.has_own("run"):
        return None
    return next((a for a in earlier if a.who == "student" and a.library is None and a.tools == arm.tools
                 and a.samples == arm.samples), None)


def _run_arm(arena: _Arena, arm: ArmSpec, scenarios: list[Scenario], path: Path, progress: Progress,
             reuse: tuple[str, list[ItemRecord]] | None = None) -> list[ItemRecord]:
    """Run ``arm`` on the items not done yet; with ``reuse`` (an arm without a library and its records), an item
    for which the library retrieves nothing keeps that arm's answer: its prompt is exactly that arm's."""
    done = read_transcripts(path) if arena.config.resume else {}
    if not arena.config.resume:
        path.write_text("", encoding="utf-8")
    progress("arm", name=arm.name, label=arm.label, resumed=sum(sc.id in done for sc in scenarios))
    solver = arena.solver(arm, progress)
    width = arena.width(arm)
    if reuse is not None:
        source, before = reuse[0], {r.id: r for r in reuse[1]}
        for sc in scenarios:
            if sc.id not in done and sc.id in before and not solver.retrieve(sc.question, sc.task):
                record = before[sc.id].model_copy(update={"arm": arm.name, "reused_from": source})
                done[sc.id] = record.model_dump()
                with path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({**done[sc.id], "transcript": f"the same prompt as {source}: see its "
                                        "transcript"}, ensure_ascii=False, default=str) + "\n")
    todo = [sc for sc in scenarios if sc.id not in done]
    batched = width > 1 and len(todo) > 1  # items run at once as sequences of one batch, written in scenario order
    llm = solver.llm.batched(width) if batched else None
    shared = OneQueryAtATime(solver.retriever) if batched and solver.retriever is not None else None

    def run(sc: Scenario) -> tuple[ItemRecord, dict[str, Any]]:  # batched: each item its own solver and count
        return arena.run_item(arm, arena.item_solver(solver, llm, shared) if batched else solver, sc)

    results = in_order(run, todo, width)
    out: list[ItemRecord] = []
    try:
        for sc in scenarios:
            if sc.id in done:
                record = ItemRecord.model_validate({k: v for k, v in done[sc.id].items()
                                                    if k in ItemRecord.model_fields})  # fmt: skip
                if not record.reused_from:
                    arena.resumed_seconds += record.seconds  # its share, where run.json has no wall clock
            else:
                record, detail = next(results)
                with path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({**record.model_dump(), **detail}, ensure_ascii=False, default=str) + "\n")
            out.append(record)
            progress("item", arm=arm.name, correct=record.correct)
    finally:
        results.close()  # an interrupted arm leaves no items running behind it
    return out


class _ItemLog(RunLog):
    """One item's calls: counted here (the item's tokens) and passed on to the run's log."""

    def __init__(self, parent: RunLog) -> None:
        super().__init__(None)
        self.parent = parent

    def record(self, rec: CallRecord) -> None:
        super().record(rec)
        self.parent.record(rec)

    def event(self, kind: str, **data: Any) -> None:
        self.parent.event(kind, **data)


def _finish(
    config: EvalConfig, settings: Settings, task: TaskSource, arms: list[ArmSpec], baseline: str,
    scenarios: list[Scenario], records: dict[str, list[ItemRecord]], started: str, t0: float,
    pack: str | None, write_report: Callable[[EvalResult, Path], Any],
) -> EvalResult:  # fmt: skip
    tau2 = task.name.startswith("tau2")
    result = EvalResult(
        task=task.name, split=config.split, n=len(scenarios), seed=config.seed, student=settings.student,
        teacher=settings.teacher, library=settings.library_path, collection=settings.collection, pack=pack,
        retrieval_task=config.retrieval_task, accuracy_name="pass^1" if tau2 else "accuracy",
        score_name="action score" if tau2 else "mean score", arms=[a.name for a in arms], baseline=baseline,
        scenario_ids=[sc.id for sc in scenarios], started=started, seconds=time.perf_counter() - t0,
        command=config.command,
    )  # fmt: skip
    seed = config.seed
    for arm in arms:
        library = None if arm.library is None else (arm.library or f"{settings.collection} @ {settings.library_path}")
        result.summaries.append(summarize(arm.name, arm.label, records[arm.name], who=arm.who, library=library,
                                          tools=config.tools and arm.tools, resamples=config.resamples, seed=seed))
        if arm.name != baseline:
            result.comparisons.append(compare(arm.name, baseline, records[arm.name], records[baseline],
                                              resamples=config.resamples, seed=seed))
        result.items.extend(records[arm.name])
    result.save(config.out)
    write_report(result, config.out)
    return result
