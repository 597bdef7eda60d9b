"""reasoning-gym datasets (``gsm_symbolic`` and any other by name): procedural problems with answers."""

from __future__ import annotations

from typing import Any

from agentkd.schema import Scenario, Verdict, short_id
from agentkd.tasks.base import Split, numeric_match

# Held-out scenarios come from a seed range that builds never use.
HELDOUT_SEED_OFFSET = 1_000_003


class ReasoningGymTask:
    """A reasoning-gym dataset as a task source; answers are ground truth."""

    instructions = "When you know the result, end your reply with a line 'Answer: <number>'."

    def __init__(self, name: str = "gsm_symbolic") -> None:
        import reasoning_gym

        self.name = name
        self._rg = reasoning_gym
        self._probe = reasoning_gym.create_dataset(name, size=1, seed=0)  # fails early on unknown names

    def scenarios(self, split: Split, n: int, seed: int) -> list[Scenario]:
        actual_seed = seed + (HELDOUT_SEED_OFFSET if split == "heldout" else 0)
        data = self._rg.create_dataset(self.name, size=n, seed=actual_seed)
        # gsm_symbolic draws a generator (a problem template) per item: that is the meaningful category.
        # Its ``source_index`` metadata is only the item's position, so it says nothing about the kind.
        templates = getattr(data, "task_indices", None)
        return [
            self._scenario(data[i], split, actual_seed, f"template-{templates[i]:03d}" if templates else self.name)
            for i in range(len(data))
        ]

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
