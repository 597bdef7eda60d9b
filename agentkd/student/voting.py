"""Self-consistent action generation: of several sampled candidate actions, keep the one whose result is most common.

Candidates are compared by what their execution *returned*, not by their text: two different
programs that print 42 agree. A candidate that fails (an error result) does not vote; a call of a
tool that is not safe to run for voting votes with its name and arguments; a final answer votes
with its normalized text. Ties go to the earliest candidate (the lowest seed), so a vote is
deterministic given the candidates.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from agentkd.tools import ToolBox, ToolResult


@dataclass
class Action:
    """A candidate step: the model's reply, the tool it calls (None for a final answer) and, once run, the output."""

    result: Any  # agentkd.models.llamacpp.ChatResult
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
