"""The task-source base class (``Task``), its adapter for sources that do not inherit it, and the
ground-truth answer checks shared by numeric tasks.

A source subclasses ``Task`` and implements ``scenarios`` and ``check``; every other member has a default
that fits a single-turn task the student answers with its own tools. A class that does not inherit
``Task`` (a user's ``module.path:Class`` written against the old protocol) still works: ``as_task`` wraps
it once, where tasks are loaded, in a ``TaskAdapter`` that fills in the defaults, so the rest of the
code uses the members of ``Task`` and never probes for them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import random
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from agentkd.errors import TaskError
from agentkd.schema import Attempt, Scenario, Strategy, Verdict

if TYPE_CHECKING:
    from agentkd.tasks.episode import Customer, StructuredModel, StudentLike
    from agentkd.tools import ToolBox

Split = Literal["train", "validation", "heldout", "heldout-unseen"]
ModelRole = Literal["teacher", "customer"]
# the members a source may define itself or leave to the defaults of ``Task`` (see ``Task.has_own``)
Member = Literal["tools", "run", "grade", "siblings", "scenarios_for", "categories"]

_ANSWER = re.compile(r"answer\s*(?:is|:)?\s*\**\s*\$?\s*(-?[\d,]*\.?\d+)", re.I)
_TEXT_ANSWER = re.compile(r"answer\s*(?:is|:)\s*(.+)", re.I)
_NUMBER = re.compile(r"-?\d[\d,]*\.?\d*|-?\.\d+")

DEFAULT_STRATEGY_FOCUS = (
    "The student solves the problem in writing and can run Python code. Typical mistakes: a misread quantity, a "
    "wrong operation, a missed step, a wrong unit, a bug in its program."
)


class Task(ABC):
    """Where scenarios with ground truth come from, and how the student works on them.

    ``scenarios`` and ``check`` are required. The defaults of the rest: no instructions, the word-problem
    ``strategy_focus``, the student's own context size and tools, one ``Student.attempt`` per scenario
    (``run``), grading by ``check`` on the final answer (``grade``), no sibling or per-category draws
    (``None``: the caller falls back to ``scenarios``), no categories, no validation split, and no model
    roles (``teacher``/``customer`` stay None unless ``model_roles`` names them).
    """

    name: str  # shown in reports, tags the strategies built on it; the class's name unless set
    instructions: str = ""  # how the student should present its final answer
    strategy_focus: str = DEFAULT_STRATEGY_FOCUS  # for the teacher: how the student works here, its typical mistakes
    n_ctx: int | None = None  # the context the student needs (builds raise it to this); None: the configured one
    validation_split: bool = False  # whether scenarios("validation", ...) serves the pack gate's split
    model_roles: tuple[ModelRole, ...] = ()  # the parts a model plays: "teacher" (a spec's), "customer" (tau2's)
    teacher: StructuredModel | None = None  # writes and grades the scenarios ("teacher" in model_roles)
    customer: Customer | None = None  # plays the simulated customer ("customer" in model_roles)
    customer_view: Literal["roles", "transcript"] | None = None  # how the customer sees the talk (None: no customer)
    # a worked example is a verified program ("program": the student runs code) or the verified answer itself
    # ("answer": BFCL's call, graded as written); one example covers its category when categories are problem
    # templates (gsm_symbolic), not when they are broad kinds of item (BFCL's argument shapes)
    example_form: Literal["program", "answer"] = "program"
    example_covers_category: bool = True
    # whether a failure with no verified example gets a written (prose) entry when Settings.prose is "auto"
    written_entries: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not hasattr(cls, "name"):
            cls.name = cls.__name__

    @abstractmethod
    def scenarios(self, split: Split, n: int, seed: int) -> list[Scenario]:
        """``n`` scenarios of ``split``, the same ones (in the same order) for the same arguments."""

    @abstractmethod
    def check(self, scenario: Scenario, answer: str) -> Verdict:
        """The ground-truth verdict on a final answer."""

    def tools(self) -> ToolBox | None:
        """The domain tools the student (and the teacher) may call, a fresh box per call; None: the defaults
        (the Python sandbox)."""
        return None

    def run(
        self,
        student: StudentLike,
        scenario: Scenario,
        *,
        instructions: str = "",
        strategies: Sequence[Strategy] | None = None,
    ) -> Attempt:
        """The student's attempt at ``scenario``. The default is single-turn: one ``Student.attempt``; a source
        with its own episode (multi-turn, per-scenario tools) overrides it."""
        attempt: Attempt = cast(Any, student).attempt(scenario, instructions=instructions, strategies=strategies)
        return attempt

    def grade(self, scenario: Scenario, attempt: Attempt) -> Verdict:
        """The ground-truth grade of an attempt; the default is ``check`` on its final answer. A source whose
        grade needs the tool calls, the database state or the transcript overrides it."""
        return self.check(scenario, attempt.answer)

    def siblings(self, scenario: Scenario, k: int, seed: int) -> list[Scenario] | None:
        """Up to ``k`` fresh train scenarios like ``scenario`` (its category); None: the source cannot."""
        return None

    def scenarios_for(self, category: str, n: int, seed: int, difficulty: int = 1) -> list[Scenario] | None:
        """``n`` train scenarios of ``category`` near ``difficulty`` (the curriculum aims generation at weak
        categories); None: the source cannot draw by category."""
        return None

    def categories(self, split: Split = "train") -> list[str]:
        """The categories ``split`` draws from, when the source knows them ([] when it does not)."""
        return []

    def restrict(self, categories: Sequence[str]) -> Task:
        """This source limited to ``categories``: every split draws only from them (a build for the part of a job
        a user cares about, measured on held-out items of the same kinds). Sources with categories override it."""
        raise TaskError(f"{self.name} cannot be limited to some categories.", hint="drop --categories")

    def has_own(self, member: Member) -> bool:
        """Whether the source defines ``member`` itself rather than keeping the default of ``Task``: an own
        ``run`` is an episode of its own (eval does not batch it), an own ``grade`` grades without ground truth."""
        return getattr(type(self), member) is not getattr(Task, member)


TaskSource = Task  # the name of the interface before it was a base class


def _delegate(attr: str, default: Any) -> Any:
    """A member of ``TaskAdapter`` that reads the source's attribute (``default`` when it has none or None)
    and writes it on the source."""

    def get(self: TaskAdapter) -> Any:
        value = getattr(self.source, attr, None)
        return default if value is None else value

    def put(self: TaskAdapter, value: Any) -> None:
        setattr(self.source, attr, value)

    return property(get, put, doc=f"the source's ``{attr}`` (default {default!r})")


class TaskAdapter(Task):
    """A source that does not inherit ``Task`` (any object with ``name``, ``scenarios`` and ``check``), with
    the defaults of ``Task`` for what it lacks. Members read and write through to the source; other
    attributes read through too."""

    instructions = _delegate("instructions", "")
    strategy_focus = _delegate("strategy_focus", DEFAULT_STRATEGY_FOCUS)
    n_ctx = _delegate("n_ctx", None)
    validation_split = _delegate("validation_split", False)
    teacher = _delegate("teacher", None)
    customer = _delegate("customer", None)
    customer_view = _delegate("customer_view", None)
    example_form = _delegate("example_form", "program")
    example_covers_category = _delegate("example_covers_category", True)
    written_entries = _delegate("written_entries", True)

    def __init__(self, source: object) -> None:
        self.source: Any = source
        # a model role is an attribute the source has (None until ``parts.attach_teacher`` fills it)
        self.model_roles = tuple(r for r in ("teacher", "customer") if hasattr(source, r))

    @property
    def name(self) -> str:
        return str(getattr(self.source, "name", None) or type(self.source).__name__)

    @name.setter
    def name(self, value: str) -> None:
        self.source.name = value

    def __getattr__(self, attr: str) -> Any:  # only for what the adapter itself lacks
        if attr == "source":  # not set yet (a copy being made): no recursion
            raise AttributeError(attr)
        return getattr(self.source, attr)

    def __repr__(self) -> str:
        return f"TaskAdapter({self.source!r})"

    def has_own(self, member: Member) -> bool:
        return callable(getattr(self.source, member, None))

    def scenarios(self, split: Split, n: int, seed: int) -> list[Scenario]:
        return cast(list[Scenario], self.source.scenarios(split, n, seed))

    def check(self, scenario: Scenario, answer: str) -> Verdict:
        return cast(Verdict, self.source.check(scenario, answer))

    def tools(self) -> ToolBox | None:
        return self.source.tools() if self.has_own("tools") else None

    def run(self, student: StudentLike, scenario: Scenario, *, instructions: str = "",
            strategies: Sequence[Strategy] | None = None) -> Attempt:
        if self.has_own("run"):
            return cast(Attempt, self.source.run(student, scenario, instructions=instructions, strategies=strategies))
        return super().run(student, scenario, instructions=instructions, strategies=strategies)

    def grade(self, scenario: Scenario, attempt: Attempt) -> Verdict:
        return cast(Verdict, self.source.grade(scenario, attempt)) if self.has_own("grade") else super().grade(
            scenario, attempt)

    def siblings(self, scenario: Scenario, k: int, seed: int) -> list[Scenario] | None:
        return list(self.source.siblings(scenario, k, seed)) if self.has_own("siblings") else None

    def scenarios_for(self, category: str, n: int, seed: int, difficulty: int = 1) -> list[Scenario] | None:
        if not self.has_own("scenarios_for"):
            return None
        return list(self.source.scenarios_for(category, n, seed, difficulty))

    def categories(self, split: Split = "train") -> list[str]:
        return list(self.source.categories(split)) if self.has_own("categories") else []


def pick_categories(task: Task, spec: str, seed: int) -> list[str]:
    """``--categories``: a comma-separated list of the task's train categories, or a number N for N of them drawn
    with ``seed`` (the same N and seed always give the same ones)."""
    known = task.categories("train")
    if spec.strip().isdigit():
        n = int(spec)
        if not 1 <= n <= len(known):
            raise TaskError(f"{task.name} has {len(known)} train categories; --categories {n} cannot pick from them.",
                            hint=f"pass a number from 1 to {len(known)}" if known else "drop --categories")
        return sorted(random.Random(f"agentkd-categories-{seed}").sample(sorted(known), n))
    wanted = [c.strip() for c in spec.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in known]
    if unknown or not wanted:
        raise TaskError(f"{', '.join(unknown) or spec!r}: not a train category of {task.name}.",
                        hint=f"its train categories: {', '.join(known[:8])}{', ...' if len(known) > 8 else ''}"
                        if known else "this task has no categories: drop --categories")
    return list(dict.fromkeys(wanted))


def limited(task: Task, spec: str, seed: int) -> tuple[Task, list[str]]:
    """``task`` limited to the categories ``spec`` names (``pick_categories``), and those categories; ``spec``
    empty: the task itself, and none."""
    if not spec:
        return task, []
    chosen = pick_categories(task, spec, seed)
    return task.restrict(chosen), chosen


def as_task(source: object) -> Task:
    """``source`` as a ``Task``: itself when it inherits the base class, else in a ``TaskAdapter``."""
    return source if isinstance(source, Task) else TaskAdapter(source)


class _Capability(type):
    """``isinstance(task, EpisodeTask)`` and the like, as before the base class: whether a source has that
    member of its own (``Task.has_own``)."""

    member: Member

    def __instancecheck__(cls, source: object) -> bool:
        return as_task(source).has_own(cls.member)


class ToolTask(metaclass=_Capability):
    """Sources with domain tools of their own (``task.has_own("tools")``), for ``isinstance``."""

    member: Member = "tools"


class EpisodeTask(metaclass=_Capability):
    """Sources that run their own episode instead of ``Student.attempt`` (``task.has_own("run")``)."""

    member: Member = "run"


class AttemptGrader(metaclass=_Capability):
    """Sources that grade the whole attempt, not just the answer (``task.has_own("grade")``)."""

    member: Member = "grade"


def strategy_focus(task: object) -> str:
    """What the teacher should know about a source when it writes an entry: how the student works on it (its
    tools) and the mistakes to look for (``Task.strategy_focus``; the default fits word problems)."""
    return str(as_task(task).strategy_focus or DEFAULT_STRATEGY_FOCUS)


def run_attempt(
    task: object, student: Any, scenario: Scenario, *, strategies: Sequence[Strategy] | None = None
) -> Attempt:
    """The student's attempt at ``scenario`` as the task plays it (``Task.run``), with the task's instructions."""
    source = as_task(task)
    return source.run(student, scenario, instructions=source.instructions, strategies=strategies)


def grade_attempt(task: object, scenario: Scenario, attempt: Attempt) -> Verdict:
    """Ground-truth grade of an attempt: ``Task.grade`` (by default ``check`` on the final answer)."""
    return as_task(task).grade(scenario, attempt)


def require_validation(task: object) -> None:
    """Refuse a source without a ``validation`` split: the pack gate needs items neither builds nor held-out use."""
    source = as_task(task)
    if not source.validation_split:
        raise TaskError(
            f"{source.name} has no validation split, so the pack gate cannot measure a library on it",
            hint="the gate needs items that builds (train) and evaluation (heldout) never use; a task source offers "
            "them by setting validation_split = True and serving scenarios('validation', ...). gsm_symbolic and "
            "the other reasoning-gym tasks have one.",
        )


def in_train_split(item_id: str, *, train_fraction: float = 0.7, salt: str = "agentkd-split-v1") -> bool:
    """A fixed, seed-independent split: a hash of the id decides, so builds never see held-out items."""
    return _hashed(item_id, salt) < train_fraction


def split_of(item_id: str, *, train_fraction: float = 0.7, validation_fraction: float = 0.0,
             salt: str = "agentkd-split-v1") -> Split:
    """``in_train_split`` with a validation split carved from the end of train (the held-out items stay the
    same): the pack gate's items, which neither builds nor held-out evaluations use."""
    h = _hashed(item_id, salt)
    return "train" if h < train_fraction - validation_fraction else "validation" if h < train_fraction else "heldout"


def _hashed(item_id: str, salt: str) -> float:
    digest = hashlib.sha256(f"{salt}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def package_dir(package: str, install: str) -> Path:
    """Where an installed package's files are, without importing it (its runtime may lack dependencies)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise TaskError(f"the {package!r} package is not installed",
                        hint=f"install it: pip install --no-deps {install}")
    return Path(next(iter(spec.submodule_search_locations)))


def extract_number(text: str) -> float | None:
    """The final numeric answer in a reply: after 'Answer:' if present, else the last number."""
    text = text.replace("**", "")
    found = _ANSWER.findall(text) or _NUMBER.findall(text)
    for raw in reversed(found):
        try:
            return float(raw.replace(",", "").rstrip("."))
        except ValueError:
            continue
    return None


def _final_text(text: str) -> str:
    """A text answer for comparison: what follows the last 'Answer:' if present, trimmed and lower-cased."""
    text = text.replace("**", "")
    found = _TEXT_ANSWER.findall(text)
    return (found[-1] if found else text).strip().strip(".").strip().lower()


def numeric_match(expected: str, answer: str, rel_tol: float = 1e-6) -> Verdict:
    """Ground-truth check for numeric answers."""
    got = extract_number(answer)
    want = extract_number(expected)
    if want is None:
        ok = _final_text(expected) == _final_text(answer)
        return Verdict(correct=ok, score=float(ok), reasons=f"expected {expected!r}")
    if got is None:
        return Verdict(correct=False, score=0.0, reasons=f"no number in the answer; expected {expected}")
    ok = math.isclose(got, want, rel_tol=rel_tol, abs_tol=1e-6)
    return Verdict(correct=ok, score=float(ok), reasons=f"expected {expected}, got {got:g}")
