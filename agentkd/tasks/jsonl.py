"""A plain JSONL file of questions with answers as a task source (``jsonl:<path>``).

Each line is an object with ``question`` and ``answer``, and optionally ``id``, ``category`` and
``difficulty``. Answers are checked like reasoning-gym's: numerically when the answer is a number,
else by exact (case-insensitive) match. A salted hash of each id puts it in train or held-out.
"""

from __future__ import annotations

import json
import random
from functools import cached_property
from pathlib import Path
from typing import Any

from agentkd.errors import TaskError
from agentkd.schema import Scenario, Verdict, short_id
from agentkd.tasks.base import Split, Task, in_train_split, numeric_match


class JsonlTask(Task):
    """Questions with ground-truth answers from a JSONL file."""

    instructions = "When you know the result, end your reply with a line 'Answer: <answer>'."

    def __init__(self, path: str | Path, *, train_fraction: float = 0.7) -> None:
        self.path, self.train_fraction = Path(path), train_fraction
        self.name = f"jsonl:{self.path.stem}"
        if not self.path.is_file():
            raise TaskError(f"no JSONL file at {self.path}", hint="check the path after 'jsonl:'")

    @cached_property
    def items(self) -> dict[str, dict[str, Any]]:
        items: dict[str, dict[str, Any]] = {}
        for n, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                question, answer = str(item["question"]), str(item["answer"])
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise TaskError(f"{self.path}, line {n}: not an object with 'question' and 'answer' ({exc})",
                                hint='each line must look like {"question": "...", "answer": "..."}') from None
            item_id = str(item.get("id") or short_id(question))
            items[item_id] = {**item, "question": question, "answer": answer}
        return items

    def scenarios(self, split: Split, n: int, seed: int) -> list[Scenario]:
        want = split == "train"
        ids = sorted(i for i in self.items if in_train_split(i, train_fraction=self.train_fraction) == want)
        random.Random(seed).shuffle(ids)
        return [self._scenario(i, split) for i in ids[:n]]

    def _scenario(self, item_id: str, split: str) -> Scenario:
        item = self.items[item_id]
        return Scenario(id=f"{self.name}-{item_id}", task=self.name, question=item["question"], answer=item["answer"],
                        category=str(item.get("category") or self.name), difficulty=int(item.get("difficulty") or 1),
                        metadata={"split": split, "item_id": item_id})

    def check(self, scenario: Scenario, answer: str) -> Verdict:
        assert scenario.answer is not None
        return numeric_match(scenario.answer, answer)
