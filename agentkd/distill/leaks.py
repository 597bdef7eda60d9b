"""The leak check: an entry must teach the kind of problem, not carry this problem's answer or values."""

from __future__ import annotations

import re

from agentkd.schema import Scenario, StrategyDraft
from agentkd.tasks import extract_number

_NUM = re.compile(r"\d+(?:\.\d+)?")
_QUOTED = re.compile(r"'([^'\n]{3,})'|\"([^\"\n]{3,})\"")


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _answer_values(answer: str) -> set[str]:
    """The text values in an answer: its quoted literals (a function call's arguments), else the whole answer."""
    quoted = {_norm(a or b) for a, b in _QUOTED.findall(answer)}
    whole = _norm(answer)
    if not quoted and whole and _NUM.fullmatch(whole) is None:
        quoted.add(whole)
    return {v for v in quoted if len(v) >= 4 and not _NUM.fullmatch(v)}


def leaks_answer(draft: StrategyDraft, scenario: Scenario) -> str | None:
    """Why ``draft`` leaks this scenario's answer or specifics, or None when it is general.

    Numbers: the answer itself, or two numbers copied from the problem. Text: a value of the answer (an
    argument of the expected call, a short answer) that the draft copies from the problem — one value of
    several words (a name, "suite with queen size bed") or two single words. A value that is not in the
    problem (a fixed phrase every scenario shares, a unit convention) can be general knowledge, so it stays.
    """
    text = f"{draft.title}\n{draft.trigger}\n{draft.body}\n{' '.join(draft.tool_hints)}"
    answer = extract_number(scenario.answer or "")
    small = answer is not None and answer == int(answer) and abs(answer) < 10  # step numbers, "divide by 2"...
    if answer is not None and not small and any(float(n) == answer for n in _NUM.findall(text)):
        return f"it contains the answer {scenario.answer}"
    question_numbers = {n for n in _NUM.findall(scenario.question) if len(n) > 1}
    copied = question_numbers & set(_NUM.findall(text))
    if len(copied) >= 2:
        return f"it copies numbers from the problem ({', '.join(sorted(copied))})"
    question, body = _norm(scenario.question), _norm(text)
    values = sorted(v for v in _answer_values(scenario.answer or "") if v in question and v in body)
    if any(" " in v for v in values) or len(values) >= 2:
        return f"it copies values from the problem ({', '.join(repr(v) for v in values)})"
    return None
