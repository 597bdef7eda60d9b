"""The task-source interface and the ground-truth answer checks shared by numeric tasks."""

from __future__ import annotations

import math
import re
from typing import Literal, Protocol

from agentkd.schema import Scenario, Verdict

Split = Literal["train", "heldout"]

_ANSWER = re.compile(r"answer\s*(?:is|:)?\s*\**\s*\$?\s*(-?[\d,]*\.?\d+)", re.I)
_NUMBER = re.compile(r"-?\d[\d,]*\.?\d*|-?\.\d+")


class TaskSource(Protocol):
    """Where scenarios with ground truth come from."""

    name: str
    instructions: str  # how the student should present its final answer

    def scenarios(self, split: Split, n: int, seed: int) -> list[Scenario]: ...

    def check(self, scenario: Scenario, answer: str) -> Verdict: ...


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


def numeric_match(expected: str, answer: str, rel_tol: float = 1e-6) -> Verdict:
    """Ground-truth check for numeric answers."""
    got = extract_number(answer)
    want = extract_number(expected)
    if want is None:
        ok = expected.strip().lower() == answer.strip().lower()
        return Verdict(correct=ok, score=float(ok), reasons=f"expected {expected!r}")
    if got is None:
        return Verdict(correct=False, score=0.0, reasons=f"no number in the answer; expected {expected}")
    ok = math.isclose(got, want, rel_tol=rel_tol, abs_tol=1e-6)
    return Verdict(correct=ok, score=float(ok), reasons=f"expected {expected}, got {got:g}")
