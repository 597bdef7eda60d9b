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
        return [self._scenario(item, split, actual_seed) for item in data]

    def _scenario(self, item: dict[str, Any], split: str, seed: int) -> Scenario:
        meta = item.get("metadata", {})
        category = f"template-{meta['source_index']}" if "source_index" in meta else self.name
        return Scenario(
            id=f"{self.name}-{split}-{short_id(item['question'], str(seed))}",
            task=self.name,
            question=item["question"],
            answer=str(item["answer"]),
            category=category,
            difficulty=int(meta.get("difficulty", 1) or 1),
            metadata={"split": split, "seed": seed},
        )

    def check(self, scenario: Scenario, answer: str) -> Verdict:
        assert scenario.answer is not None
        return numeric_match(scenario.answer, answer)
