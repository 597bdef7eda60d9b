"""A tiny task whose outcome a strategy really changes, so the loop can be tested with a real model.

The student (SmolLM2) cannot know the "pass phrase" of a fictional club; a strategy that says which
phrase to use makes it answer correctly. The teacher is scripted (the one part we fake), the student,
the library and the graph are real.
"""

from __future__ import annotations

import json
from pathlib import Path

from agentkd.schema import Scenario, Verdict, short_id
from agentkd.tasks import Task
from agentkd.tools import ToolBox

PHRASE = "blue lantern"
STRATEGY = {
    "kind": "strategy",
    "title": "Club pass phrase",
    "trigger": "Someone asks for the pass phrase of the Orchid Club",
    "body": f"Reply with exactly these two words: {PHRASE}.",
    "tool_hints": [],
}
CLUBS = ["Orchid Club"]


class PassPhraseTask(Task):
    name = "passphrase"
    instructions = "Reply in one short line."
    strategy_focus = "The student answers visitors in one line; it does not know the club's secrets."

    def scenarios(self, split: str, n: int, seed: int) -> list[Scenario]:
        out = []
        for i in range(n):
            q = f"Visitor #{seed % 97 + i} asks: what is the pass phrase of the Orchid Club?"
            out.append(Scenario(id=f"pp-{split}-{short_id(q, str(seed))}", task=self.name, question=q, answer=PHRASE,
                                category="orchid"))
        return out

    def check(self, scenario: Scenario, answer: str) -> Verdict:
        ok = PHRASE in answer.lower()
        return Verdict(correct=ok, score=float(ok), reasons=f"expected {PHRASE!r}")

    def tools(self) -> ToolBox:
        return ToolBox([])


def strategy_script(n: int) -> list[str]:
    """Teacher replies for n failures: a solution, then the strategy JSON."""
    return [f"Answer: {PHRASE}", json.dumps(STRATEGY)] * n


def write_script(path: Path, *, failures: int, latency: float = 0.0) -> Path:
    """A teacher script file for ``--teacher script:<file>``."""
    path.write_text(json.dumps({"latency": latency, "steps": strategy_script(failures)}))
    return path
