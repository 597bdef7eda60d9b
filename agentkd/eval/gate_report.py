"""What the pack gate found (``agentkd.eval.gate``): data only, so a pack manifest can keep the gate it passed."""

from __future__ import annotations

from pydantic import BaseModel, Field


class CategoryGate(BaseModel):
    """One category's paired comparison: the library against the student alone."""

    category: str
    n: int
    alone: int  # items right alone
    with_library: int  # items right with the library
    helped: int
    hurt: int
    p_worse: float  # one-sided exact sign test that the library hurts this category
    worse: bool
    blamed: list[str] = Field(default_factory=list)  # entries retrieved on its hurt items, most often first


class GateReport(BaseModel):
    """The gate's verdict on a library, per category, and what it retired."""

    task: str
    split: str = "validation"
    n: int
    seed: int
    alpha: float
    library: str  # the pack directory or collection@location measured
    digest: str = ""  # a pack's file digest when measured (a manifest accepts the gate only for the same files)
    categories: list[CategoryGate] = Field(default_factory=list)
    overall: CategoryGate | None = None  # every item together: harm spread thinly over many small categories
    retired: list[str] = Field(default_factory=list)
    results: str = ""  # the run's results.json

    @property
    def worse(self) -> list[str]:
        return [c.category for c in self.groups() if c.worse]

    @property
    def passed(self) -> bool:
        return not self.worse

    def blamed(self) -> list[str]:
        """Every entry blamed in a worse category, once."""
        return list(dict.fromkeys(s for c in self.groups() if c.worse for s in c.blamed))

    def groups(self) -> list[CategoryGate]:
        """Every judged group: the categories, then all items together."""
        return self.categories + ([self.overall] if self.overall is not None else [])
