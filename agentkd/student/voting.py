"""Self-consistent action generation: of several sampled candidate actions, keep the one whose result is most common.

Candidates are compared by what their execution *returned*, not by their text: two different
programs that print 42 agree. A candidate that fails (an error result) does not vote; a call of a
tool that is not safe to run for voting votes with its name and arguments; a final answer votes
with its normalized text. Ties go to the earliest candidate (the lowest seed), so a vote is
deterministic given the candidates.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from agentkd.chat import ChatResult
from agentkd.tools import ToolBox, ToolResult


@dataclass
class Action:
    """A candidate step: the model's reply, the tool it calls (None for a final answer) and, once run, the output."""

    result: ChatResult
    name: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    call_id: str = ""
    code: bool = False
    output: ToolResult | None = None

    def key(self) -> str | None:
        """What this candidate votes for; None when it does not vote."""
        if self.name is None:
            return "answer:" + " ".join(self.result.content.split()).lower()
        if self.output is None:
            return f"call:{self.name}:{json.dumps(self.arguments, sort_keys=True)}"
        if self.output.error:
            return None
        return "result:" + " ".join(self.output.output.split())


def execute(action: Action, tools: ToolBox, done: list[Action]) -> None:
    """Run ``action``'s tool, reusing the output of an identical call already run among ``done``."""
    for other in done:
        if other is not action and other.output is not None and (other.name, other.arguments) == (
            action.name,
            action.arguments,
        ):
            action.output = other.output
            return
    assert action.name is not None
    action.output = tools.run(action.name, action.arguments)


def vote(candidates: list[Action]) -> tuple[int, dict[str, int]]:
    """The index of the kept candidate, and the votes per result."""
    keys = [c.key() for c in candidates]
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return 0, {}
    best = max(counts.values())
    chosen = next(i for i, k in enumerate(keys) if k is not None and counts[k] == best)
    return chosen, dict(counts)


# -- voting over whole answers ------------------------------------------------------------------
# Per-step votes compare a step's sampled candidates; for a 0.5B student the lever that measurably helps
# is agreement over *final executed answers*: k independent episodes (the first greedy, the rest sampled),
# each ending in an answer, and the most common final answer wins.

_ANSWER = re.compile(r"answer\s*[:=]\s*(.+)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")


def _number(text: str) -> str | None:
    found = _NUMBER.findall(text)
    if not found:
        return None
    raw = found[-1].replace("$", "").replace(",", "")
    try:
        value = float(raw)
    except ValueError:
        return None
    return str(int(value)) if value.is_integer() else f"{value:.6g}"


def answer_key(text: str) -> str | None:
    """What a final answer votes for: its 'Answer:' value (a number normalized: 36.00 → 36), else its last
    number, else its normalized text; None for an empty answer (it does not vote)."""
    text = text.strip()
    if not text:
        return None
    lines = _ANSWER.findall(text)
    value = lines[-1].strip() if lines else text
    number = _number(value)
    if number is not None:
        return number
    words = " ".join(value.lower().split()).strip(" .")
    return words or None


def vote_answers(texts: list[str]) -> tuple[int, dict[str, int]]:
    """The index of the winning answer and the votes per key. Empty answers do not vote; a tie goes to the
    first answer among the tied (the greedy one when it is tied), so a vote is deterministic."""
    keys = [answer_key(t) for t in texts]
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return 0, {}
    best = max(counts.values())
    return next(i for i, k in enumerate(keys) if k is not None and counts[k] == best), dict(counts)


def decided(texts: list[str], unfinished: int) -> bool:
    """Whether the answers ``texts`` decide a vote that ``unfinished`` more answers will join: the leader has
    more votes than the runner-up would have with all of them (a tie could still go either way)."""
    counts = sorted(Counter(k for k in map(answer_key, texts) if k is not None).values(), reverse=True)
    if not counts:
        return False
    runner_up = counts[1] if len(counts) > 1 else 0
    return counts[0] > runner_up + unfinished
