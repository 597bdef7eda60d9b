"""The composition root: every command gets its teacher, library, student and task from these functions.

``agentkd build``, ``eval``, ``ask``, ``chat``, ``serve`` and ``export-sft`` all call ``open_student`` with the
same settings, so the student a build and an evaluation measured is the one a user talks to: the same
tools (the task's, or the Python sandbox), the same retrieval (score threshold, MMR diversity, a token
budget counted by the student's own tokenizer) and the same prompt. Heavy SDKs are imported inside the
functions so that ``agentkd --help`` stays fast.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentkd.config import Settings
from agentkd.errors import ConfigError, ModelNotFoundError
from agentkd.models import catalog
from agentkd.models.runlog import RunLog

if TYPE_CHECKING:
    from agentkd.library import Library
    from agentkd.student.student import Student
    from agentkd.tasks import TaskSource
    from agentkd.teacher.teacher import Teacher
    from agentkd.tools import ToolBox

log = logging.getLogger("agentkd")
BUILTIN_PREFIXES = {"tau2", "bfcl", "spec", "jsonl"}


def load_task(name: str) -> TaskSource:
    """A task by name, or any adapter class given as ``module.path:ClassName`` (instantiated without arguments).

    A class that does not inherit ``agentkd.tasks.Task`` is wrapped here, once (``as_task``), so every
    caller can rely on the members and defaults of ``Task``."""
    from agentkd.tasks import as_task, get_task

    module, _, attr = name.partition(":")
    if attr and module not in BUILTIN_PREFIXES:
        import importlib

        try:
            source = getattr(importlib.import_module(module), attr)()
        except (ImportError, AttributeError) as exc:
            raise ConfigError(
                f"cannot load task adapter {name!r}: {exc}",
                hint="pass module.path:ClassName of a class implementing agentkd.tasks.Task",
            ) from exc
        return as_task(source)
    return get_task(name)


def open_teacher(settings: Settings, log: RunLog | None = None) -> Teacher:
    """The configured teacher: a litellm model name, ``local/<catalog name>``, or ``script:<file.json>``."""
    from agentkd.teacher.teacher import Teacher

    scripted = settings.teacher.startswith("script:")
    if settings.teacher.startswith("local/"):
        name = settings.teacher.removeprefix("local/")
        model = catalog.CATALOG.get(name)
        if model is None or catalog.is_present(model, settings.models_dir):
            # an unknown name or a bad file fails here, as a configuration error, not as a "connection
            # failed" on every teacher call of a build that then ends with "0 admitted"
            check_model(catalog.resolve(name, root=settings.models_dir), settings)
        elif not catalog.sources_installed(model):
            raise ModelNotFoundError(f"the teacher {name!r} is not installed.",
                                     hint=f"{model.install_hint}, then agentkd models pull {name}")
    transport: Any
    if scripted:  # a scripted teacher for offline pipeline runs
        from agentkd.teacher.scripted import load_script

        script = settings.teacher.removeprefix("script:")
        try:
            transport = load_script(script)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
            raise ConfigError(f"cannot read the teacher script {script!r}: {why}.",
                              hint='give a JSON file like {"steps": ["a reply", {"raise": "timeout"}]}') from exc
    else:
        from agentkd.models.litellm_transport import LitellmTransport

        key = settings.teacher_api_key.get_secret_value() if settings.teacher_api_key else None
        transport = LitellmTransport(api_base=settings.teacher_api_base, api_key=key, timeout=settings.teacher_timeout,
                                     n_ctx=settings.n_ctx, n_threads=settings.n_threads)
    return Teacher(settings.teacher, transport=transport, json_mode=False if scripted else None,
                   retries=settings.teacher_retries, max_reasks=settings.max_reasks, seed=settings.seed,
                   log=log or RunLog())


def check_model(path: Any, settings: Settings) -> dict[str, Any]:
    """Before a model's first use on this machine, the canary: it loads and decodes in a child process, so a
    native llama.cpp crash falls back to safe load options or stops with a clear error (cached per machine)."""
    from agentkd.models.llamacpp_loader import canary

    return canary(path, settings.home)


def open_library(settings: Settings, *, create: bool = True) -> Library:
    """The configured library (a directory or a Chroma server) and collection. ``create=False`` for commands
    that only read it: a mistyped path is then an error, not a new empty library."""
    from agentkd.library import Library

    return Library.open(settings.library_path, settings.collection, create=create)


def student_tools(task: TaskSource | None) -> ToolBox:
    """What the student may call: the task's own tools, else the Python sandbox (used as ```python blocks)."""
    from agentkd.tools import code_tools

    own = task.tools() if task is not None else None
    return own if own is not None else code_tools()


def open_student(
    settings: Settings,
    *,
    task: TaskSource | None = None,
    library: Library | None = None,
    use_library: bool = True,
    log: RunLog | None = None,
    samples: int | None = None,
    first_thought: bool = False,
    max_steps: int | None = None,
) -> Student:
    """The student every command runs: the task's tools and the library behind the measured retriever.

    ``library``: an open library to retrieve from (else the configured one is opened, unless
    ``use_library`` is False and the student answers bare). ``task`` may be any source (``as_task``).
    """
    from agentkd.student.student import Student
    from agentkd.tasks import as_task

    task = as_task(task) if task is not None else None

    if not settings.student_api_base:
        check_model(catalog.resolve(settings.student, root=settings.models_dir), settings)
    student = Student(
        settings.student,
        tools=student_tools(task),
        k=settings.top_k,
        strategy_tokens=settings.strategy_tokens,
        n_ctx=settings.n_ctx,
        n_threads=settings.n_threads,
        temperature=settings.temperature,
        seed=settings.seed,
        samples=samples if samples is not None else settings.samples,
        first_thought=first_thought,
        max_steps=max_steps if max_steps is not None else settings.max_steps,
        log=log,
        api_base=settings.student_api_base,
        vote_early_stop=settings.vote_early_stop,
        vote_quorum=settings.vote_quorum,
    )
    student.example_min_score = settings.example_min_score
    if task is not None:
        student.task, student.instructions = task.name, task.instructions
    options = getattr(student.llm, "options", None)
    if options is not None and log is not None:
        log.event("llama_load", model=settings.student, extra_bufts=options.extra_bufts, reason=options.reason)
    if use_library:
        lib = library if library is not None else _existing_library(settings)
        if lib is not None:
            student.retriever = retriever_for(student, lib, settings)
    return student


def _existing_library(settings: Settings) -> Library | None:
    """The configured library for answering; none yet (a first ``agentkd ask``) means answering without one."""
    from agentkd.errors import LibraryError

    try:
        return open_library(settings, create=False)
    except LibraryError as exc:
        if settings.library or settings.collection != "default":  # named by the user: a typo must not pass
            raise
        log.warning("no library yet at %s (%s): answering without one; `agentkd build` makes one",
                    settings.library_path, str(exc).splitlines()[0])
        return None


def load_student(task: str | None = None, **overrides: Any) -> Student:
    """The student ``agentkd ask --task`` runs and ``agentkd eval`` measures, for an app to embed.

    ``overrides`` are settings (``library``, ``collection``, ``student``, ``samples``, ...); the rest come
    from the environment (``AGENTKD_*``), as for the CLI.
    """
    from agentkd.config import get_settings

    return open_student(get_settings(**overrides), task=load_task(task) if task else None)


def retriever_for(student: Student, library: Any, settings: Settings) -> Any:
    """The measured retrieval over ``library``: score threshold, MMR diversity, packing in the student's tokens."""
    from agentkd.library.retrieval import MMRRetriever

    return OneQueryAtATime(MMRRetriever(library, count_tokens=student.llm.count_tokens,
                                        budget_tokens=settings.strategy_tokens))


class OneQueryAtATime:
    """A retriever that answers one query at a time: batched episodes run in threads, and a query is
    milliseconds (the embedder and Chroma's client are not made to be shared between threads)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self._lock = inner, threading.Lock()

    def search(self, query: str, **kwargs: Any) -> Any:
        with self._lock:
            return self.inner.search(query, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def attach_teacher(task: TaskSource, teacher: Any, name: str) -> None:
    """Give a task that needs a model (``model_roles``: a spec's scenario writer and grader, tau2's customer)
    the teacher, where none is set yet."""
    if "teacher" in task.model_roles and task.teacher is None:
        task.teacher = teacher
    if "customer" in task.model_roles and task.customer is None:
        task.customer = teacher
    if task.customer_view is not None and name.startswith("local/"):
        task.customer_view = "transcript"  # small local simulators answer as the agent when roles are flipped


@dataclass
class Parts:
    teacher: Teacher
    student: Student
    library: Library

    def __getitem__(self, name: str) -> Any:  # parts["student"], as callers of the old dict wrote it
        return getattr(self, name)


def open_parts(settings: Settings, log: RunLog, task: TaskSource | None = None) -> Parts:
    """Teacher, student and library as configured, the student with the task's tools and the library."""
    library = open_library(settings)
    return Parts(teacher=open_teacher(settings, log), library=library,
                 student=open_student(settings, task=task, library=library, log=log))


def ensure_models(settings: Settings, progress: Callable[..., None]) -> None:
    """Assemble the catalog models this build needs before the loop starts (verified, once)."""
    for spec in (settings.student, settings.teacher):
        name = spec.removeprefix("local/")
        local = spec.startswith("local/") or (spec == settings.student and not settings.student_api_base)
        if local and name in catalog.CATALOG and not catalog.is_present(catalog.CATALOG[name], settings.models_dir):
            progress("pull", model=name)
            catalog.pull(name, root=settings.models_dir)


