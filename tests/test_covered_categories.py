"""A build that adds to a library aims at the categories it does not cover yet (no model: the round's draw only)."""

from __future__ import annotations

from typing import Any

from agentkd.distill.context import BuildConfig, BuildContext
from agentkd.distill.nodes import BuildState, Nodes
from agentkd.schema import Provenance, Scenario, Strategy, WorkedExample


class Templates:
    """A task source with three categories that can draw by category."""

    name = "toy"

    def _draw(self, category: str, n: int, seed: int) -> list[Scenario]:
        return [Scenario(id=f"{category}-{seed}-{i}", task=self.name, question=f"q {category} {i}", answer="1",
                         category=category) for i in range(n)]

    def scenarios_for(self, category: str, n: int, seed: int, difficulty: int) -> list[Scenario]:
        return self._draw(category, n, seed)

    def categories(self, split: str = "train") -> list[str]:
        return ["t-a", "t-b", "t-c"]

    def scenarios(self, split: str, n: int, seed: int) -> list[Scenario]:
        cats = ["t-a", "t-b", "t-c"]
        return [sc for i in range(n) for sc in self._draw(cats[i % 3], 1, seed + i)][:n]


class Library:
    def __init__(self, entries: list[Strategy]) -> None:
        self.entries = entries

    def list(self, *, status: str | None = None, kind: str | None = None, task: str | None = None,
             **_: Any) -> list[Strategy]:
        return [s for s in self.entries if (status is None or s.status == status) and (kind is None or s.kind == kind)
                and (task is None or task in s.tasks)]

    def get(self, sid: str) -> Strategy | None:
        return next((s for s in self.entries if s.id == sid), None)


def _example(category: str, status: str) -> Strategy:
    worked = WorkedExample(question=f"q {category}", program="print(1)", answer="1", category=category)
    return Strategy.from_example(worked, task="toy", provenance=Provenance()).model_copy(update={"status": status})


def test_categories_with_an_admitted_example_in_the_library_are_not_drawn_again() -> None:
    library = Library([_example("t-a", "admitted"), _example("t-b", "rejected")])
    ctx = BuildContext(teacher=None, student=None, library=library, task=Templates(),  # type: ignore[arg-type]
                       config=BuildConfig(batch_size=6))
    out = Nodes(ctx).generate_scenarios(BuildState(plan={"t-a": 2, "t-b": 2, "t-c": 2}))
    drawn = {sc.category for sc in out["scenarios"]}
    assert out["scenarios"] and "t-a" not in drawn  # covered by the library: a rejected example covers nothing
    assert drawn == {"t-b", "t-c"}
