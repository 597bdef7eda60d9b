"""What an arm is: who answers (the student or the teacher), with which strategies, with or without tools.

Arm names, as given to ``agentkd eval --arms`` (comma-separated)::

    student                      the student alone: no strategies at all
    student+library              the student with the library being evaluated (--library/--collection/--pack)
    student+library:<source>     the student with another library: a collection name in the same location,
                                 <collection>@<location> (a directory or http://host:port), or a pack
                                 directory (strategies/<pack>, with manifest.yaml and entries/)
    teacher                      the teacher alone, with the task's tools (the Python sandbox for math)
    <any of these>+cot           the same without tools: chain of thought only (tasks that run their own
                                 episode with their own tools, tau2 and BFCL, keep them)
    <a student arm>+vote:<k>     the student votes over k whole answers (the first greedy, the rest sampled);
                                 e.g. student+library+vote:5

Every arm answers the same scenarios, drawn once from the task with the same seed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from agentkd.errors import ConfigError
from agentkd.schema import short_id

_NO_TOOLS = ("+cot", "+notools")
_HINT = "arms look like student, student+library, student+library:<collection>, teacher, teacher+cot"


@dataclass(frozen=True)
class ArmSpec:
    """One arm: ``library`` is None for no strategies, "" for the evaluated library, else another source."""

    name: str
    who: Literal["student", "teacher"]
    library: str | None = None
    tools: bool = True
    samples: int = 1  # +vote:<k>

    @property
    def slug(self) -> str:
        """A file-name-safe form of the name (for the arm's transcript file); another library adds a hash."""
        text = self.name
        if self.library:
            text = f"{self.who}_library_{_short_source(self.library)}_{short_id(self.library, n=6)}"
            text += "" if self.tools else "_cot"
        return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "arm"

    @property
    def label(self) -> str:
        """A short human label for tables and plots."""
        parts: list[str] = [self.who]
        if self.library == "":
            parts.append("library")
        elif self.library:
            parts.append(f"library: {_short_source(self.library)}")
        if self.samples > 1:
            parts.append(f"vote {self.samples}")
        text = " + ".join(parts)
        return text if self.tools else f"{text} (no tools)"

    @property
    def uses_library(self) -> bool:
        return self.library is not None


def _short_source(source: str) -> str:
    collection, _, location = source.partition("@")
    if location:
        return collection
    return source.rstrip("/").rsplit("/", 1)[-1]


def parse_arm(text: str) -> ArmSpec:
    """An ``ArmSpec`` from its name (see the module docstring); raises ``ConfigError`` with the grammar."""
    name = text.strip()
    rest, tools, samples = name, True, 1
    voted = re.search(r"\+vote:(\d+)", rest)
    if voted:
        samples = int(voted.group(1))
        if samples < 1:
            raise ConfigError(f"arm {name!r}: vote needs at least 1 sample", hint="e.g. student+vote:5")
        rest = rest[: voted.start()] + rest[voted.end():]
    while rest.endswith(_NO_TOOLS):
        tools = False
        rest = rest[: rest.rfind("+")]
    who, _, library_part = rest.partition("+")
    if who not in ("student", "teacher"):
        raise ConfigError(f"unknown arm {name!r}: it must start with 'student' or 'teacher'", hint=_HINT)
    library: str | None = None
    if library_part:
        if library_part == "library":
            library = ""
        elif library_part.startswith("library:") and library_part[len("library:"):].strip():
            library = library_part[len("library:"):].strip()
        else:
            raise ConfigError(f"cannot read arm {name!r}: after '{who}+' comes 'library' or 'library:<source>'",
                              hint=_HINT)
    if who == "teacher" and library is not None:
        raise ConfigError(f"arm {name!r}: the teacher arm answers alone, without a library",
                          hint="use 'teacher' (with tools) or 'teacher+cot' (chain of thought only)")
    if samples > 1 and who != "student":
        raise ConfigError(f"arm {name!r}: only the student votes", hint="e.g. student+library+vote:5")
    return ArmSpec(name=name, who=who, library=library, tools=tools, samples=samples)  # type: ignore[arg-type]


def parse_arms(text: str | list[str]) -> list[ArmSpec]:
    """Arms from a comma-separated list (or a list of names), in order, each once."""
    names = [p for p in (text.split(",") if isinstance(text, str) else text) if p.strip()]
    if not names:
        raise ConfigError("no arms to evaluate", hint=_HINT)
    arms = [parse_arm(n) for n in names]
    seen: set[str] = set()
    for arm in arms:
        if arm.name in seen:
            raise ConfigError(f"arm {arm.name!r} is listed twice", hint="list each arm once")
        seen.add(arm.name)
    return arms


def reads_library(arms: str | list[str]) -> bool:
    """Whether an arm answers with the evaluated library (``+library``; ``+library:<x>`` names its own)."""
    return any(arm.library == "" for arm in parse_arms(arms))


def default_baseline(arms: list[ArmSpec]) -> ArmSpec:
    """The arm the others are compared with: the student alone (with tools if there is one), else the first."""
    alone = [a for a in arms if a.who == "student" and a.library is None]
    return next((a for a in alone if a.tools), alone[0] if alone else arms[0])
