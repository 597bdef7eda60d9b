"""reasoning-gym datasets (``gsm_symbolic`` and any other by name): procedural problems with answers.

``gsm_symbolic`` draws each item from one of its problem templates (the item's category,
``template-NNN``). A fixed quarter of the templates never reaches a build: the ``train`` split and the
``heldout`` split use the other three quarters (new numbers, seen templates: does the library
remember?), and ``heldout-unseen`` uses only the held-back quarter (does it generalize?). Held-out
items also come from a seed range that builds never use. The ``validation`` split (the pack gate's) is
train-template items from a third seed range, far from both: builds draw seeds near their own seed
(rounds step 7,919, admission 104,729 per round), held-out 1,000,003 above it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from agentkd.errors import TaskError
from agentkd.schema import Scenario, Verdict, short_id
from agentkd.tasks.base import Split, Task, numeric_match

HELDOUT_SEED_OFFSET = 1_000_003
VALIDATION_SEED_OFFSET = 500_000_003
UNSEEN_EVERY = 4  # every 4th template (in sorted order) is held back from builds
_OVERSAMPLE = 4  # items drawn per wanted item when a split keeps only some templates


class ReasoningGymTask(Task):
    """A reasoning-gym dataset as a task source; answers are ground truth."""

    instructions = "When you know the result, end your reply with a line 'Answer: <number>'."
    validation_split = True
    # a 0.5B student used written entries of these problems almost never (benchmarks/examples.md: 1 admitted of
    # 30+ tested in the math builds, against 30 verified programs), and each one tested holds the student
    written_entries = False

    def __init__(self, name: str = "gsm_symbolic") -> None:
        import reasoning_gym

        self.name = name
        self._rg = reasoning_gym
        self._probe = reasoning_gym.create_dataset(name, size=1, seed=0)  # fails early on unknown names
        self.templates: list[int] = sorted(set(self._templates_of(reasoning_gym.create_dataset(name, size=2000,
                                                                                              seed=0)) or []))
        self.unseen = set(self.templates[UNSEEN_EVERY - 1 :: UNSEEN_EVERY])
        self.only: set[str] | None = None  # ``restrict``: the categories every split keeps

    def restrict(self, categories: Sequence[str]) -> ReasoningGymTask:
        """The same dataset, every split keeping only ``categories`` (train templates: the unseen ones stay out)."""
        known = set(self.categories("train"))
        if not self.templates or not set(categories) <= known:
            raise TaskError(f"{', '.join(sorted(set(categories) - known)) or self.name}: not a train category of "
                            f"{self.name}.", hint="pick from `agentkd tasks`'s categories, or drop --categories")
        scoped = copy.copy(self)
        scoped.only = set(categories)
        return scoped

    @staticmethod
    def _templates_of(data: Any) -> list[int] | None:
        # gsm_symbolic draws a generator (a problem template) per item: that is the meaningful category.
        # Its ``source_index`` metadata is only the item's position, so it says nothing about the kind.
        return getattr(data, "task_indices", None)

    def categories(self, split: Split = "train") -> list[str]:
        """The categories a split draws from (gsm_symbolic: its templates; others: the dataset's name)."""
        if not self.templates:
            return [self.name]
        keep = self.unseen if split == "heldout-unseen" else set(self.templates) - self.unseen
        return [c for t in sorted(keep) if (c := f"template-{t:03d}") in (self.only or {c})]

    def scenarios(self, split: Split, n: int, seed: int) -> list[Scenario]:
        return self._draw(split, n, seed, None)

    def scenarios_for(self, category: str, n: int, seed: int, difficulty: int = 1) -> list[Scenario]:
        """Train scenarios of one category (the curriculum aims generation at uncovered or failing ones)."""
        return self._draw("train", n, seed, category)

    def siblings(self, scenario: Scenario, k: int, seed: int) -> list[Scenario]:
        """Fresh train scenarios of the same category (template), other numbers."""
        return [s for s in self._draw("train", k + 1, seed, scenario.category) if s.id != scenario.id][:k]

    def _draw(self, split: Split, n: int, seed: int, category: str | None) -> list[Scenario]:
        offset = {"validation": VALIDATION_SEED_OFFSET}.get(split, HELDOUT_SEED_OFFSET if split.startswith("heldout")
                                                             else 0)
        actual_seed = seed + offset
        if not self.templates:
            if split == "heldout-unseen":
                raise TaskError(f"{self.name} has no problem templates, so no 'heldout-unseen' split",
                                hint="use --split heldout")
            data = self._rg.create_dataset(self.name, size=n, seed=actual_seed)
            return [self._scenario(data[i], split, actual_seed, self.name) for i in range(len(data))]
        allowed = set(self.categories(split)) if category is None else {category}
        if category is not None and category not in set(self.categories(split)):
            return []  # a held-back template never reaches a build
        if not allowed:
            return []  # a restricted task has no held-back templates
        wide = category is not None or self.only is not None
        size = n * _OVERSAMPLE * (max(len(self.templates) // len(allowed), 1) if wide else 2)
        out: list[Scenario] = []
        while len(out) < n and size <= 1_000_000:
            data = self._rg.create_dataset(self.name, size=size, seed=actual_seed)
            templates = self._templates_of(data) or []
            out = [self._scenario(data[i], split, actual_seed, cat) for i in range(len(data))
                   if (cat := f"template-{templates[i]:03d}") in allowed][:n]
            size *= 4
        return out

    def _scenario(self, item: dict[str, Any], split: str, seed: int, category: str) -> Scenario:
        meta = item.get("metadata", {})
        return Scenario(
            id=f"{self.name}-{split}-{short_id(item['question'], str(seed))}",
            task=self.name,
            question=item["question"],
            answer=str(item["answer"]),
            category=category,
            difficulty=_difficulty(meta.get("difficulty")),
            metadata={"split": split, "seed": seed},
        )

    def check(self, scenario: Scenario, answer: str) -> Verdict:
        assert scenario.answer is not None
        return numeric_match(scenario.answer, answer)


def _difficulty(value: Any) -> int:
    """reasoning-gym's difficulty is a number for some datasets and a dict of ranges for others."""
    return max(1, int(value)) if isinstance(value, int | float) else 1
