"""Dataset hygiene: drop near-identical conversations, and split train/validation by group, deterministically.

Dedupe compares what a model would learn from: the user, assistant and tool turns (not the system prompt,
so the same solution with and without strategies counts once). Two conversations are duplicates when their
normalized text is equal, or when the Jaccard similarity of their word 5-shingles reaches the threshold.

The split never separates a group: a group is a scenario's category (for gsm_symbolic, the problem
template, so sibling problems of one template stay on one side) or the scenario itself. Groups are
ordered by a seeded hash and the first ``ceil(fraction * groups)`` go to validation (at least one when
there are two groups or more), so the same seed always gives the same split.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from typing import Literal

from agentkd.schema import Message

GroupBy = Literal["category", "scenario"]
_WORD = re.compile(r"\w+|[^\w\s]")


def dedupe_text(messages: Sequence[Message]) -> str:
    """The learnable text of a conversation, normalized: lower case, one space, call ids left out."""
    parts = []
    for m in messages:
        if m["role"] == "system":
            continue
        parts.append(str(m.get("content") or ""))
        for c in m.get("tool_calls") or []:
            parts.append(f"{c['function']['name']} {c['function']['arguments']}")
    return " ".join(" ".join(parts).lower().split())


def shingles(text: str, n: int = 5) -> set[str]:
    words = _WORD.findall(text)
    if len(words) <= n:
        return {" ".join(words)}
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def near_duplicates(texts: Sequence[str], threshold: float = 0.9) -> dict[int, tuple[int, float]]:
    """For each text that repeats an earlier one: (index of the earlier text it duplicates, similarity).

    Exact repeats are found by hash; the rest by pairwise shingle Jaccard against the texts kept so far
    (quadratic, which is fine for the thousands of records an export has).
    """
    seen: dict[str, int] = {}
    kept: list[tuple[int, set[str]]] = []
    dupes: dict[int, tuple[int, float]] = {}
    for i, text in enumerate(texts):
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest in seen:
            dupes[i] = (seen[digest], 1.0)
            continue
        seen[digest] = i
        sh = shingles(text)
        best = max(((j, jaccard(sh, other)) for j, other in kept), key=lambda x: x[1], default=None)
        if best is not None and best[1] >= threshold:
            dupes[i] = best
            continue
        kept.append((i, sh))
    return dupes


def validation_groups(groups: Sequence[str], fraction: float, seed: int) -> set[str]:
    """The groups that go to validation: a seeded-hash order, the first ``ceil(fraction * n)`` of it."""
    unique = sorted(set(groups))
    if fraction <= 0 or len(unique) < 2:
        return set()
    order = sorted(unique, key=lambda g: hashlib.sha256(json.dumps([seed, g]).encode()).hexdigest())
    n_val = min(max(1, math.ceil(fraction * len(unique))), len(unique) - 1)
    return set(order[:n_val])


def group_key(category: str, scenario_id: str, task: str, by: GroupBy) -> str:
    """The split group of a scenario; categories that only name the task say nothing, so the scenario decides."""
    if by == "category" and category not in {"default", task, ""}:
        return f"{task}/{category}"
    return scenario_id
