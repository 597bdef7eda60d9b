"""What an evaluation produces: one record per (arm, item), the summaries with intervals, ``results.json``.

Layout of an output directory::

    results.json               settings, scenario ids, per-arm summaries, comparisons, every item record
    report.md / report.html    the same for people (the HTML embeds the plots)
    plots/*.png                accuracy with CIs, difference vs baseline, per category, latency, item grid
    transcripts/<arm>.jsonl    one line per item: the record plus the question and the full transcript
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agentkd.eval.stats import Interval, PairedDifference, bootstrap_ci, paired_bootstrap

RESULTS_VERSION = 1


class ItemRecord(BaseModel):
    """One arm's outcome on one scenario (its transcript is in ``transcripts/<arm>.jsonl``)."""

    arm: str
    id: str
    category: str = "default"
    difficulty: int = 1
    correct: bool = False
    score: float = 0.0
    expected: str | None = None
    answer: str = ""
    reasons: str = ""
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    tool_calls: int = 0
    strategies: list[str] = Field(default_factory=list)
    error: str = ""
    reused_from: str = ""  # nothing was retrieved, so the prompt was this arm's: its answer stands


class CategoryStats(BaseModel):
    n: int
    accuracy: float
    score: float


class ArmSummary(BaseModel):
    """An arm's metrics over the items, with bootstrap intervals."""

    name: str
    label: str
    who: str
    library: str | None = None
    tools: bool = True
    n: int
    correct: int
    accuracy: Interval
    score: Interval
    prompt_tokens: float  # mean per item
    completion_tokens: float  # mean per item
    seconds_mean: float
    seconds_median: float
    seconds_p90: float
    cost_usd: float  # total
    errors: int
    with_strategies: int  # items where at least one strategy was in the prompt
    categories: dict[str, CategoryStats] = Field(default_factory=dict)


class Comparison(BaseModel):
    """An arm against the baseline on the same items: accuracy and score differences."""

    arm: str
    baseline: str
    accuracy: PairedDifference
    score: PairedDifference


class EvalResult(BaseModel):
    """Everything ``results.json`` holds."""

    version: int = RESULTS_VERSION
    task: str
    split: str
    n: int
    seed: int
    student: str
    teacher: str
    library: str
    collection: str
    pack: str | None = None
    retrieval_task: str | None = None
    accuracy_name: str = "accuracy"  # "pass^1" for tau2
    score_name: str = "mean score"  # "action score" for tau2
    arms: list[str]
    baseline: str
    scenario_ids: list[str]
    started: str
    seconds: float = 0.0
    command: str = ""
    summaries: list[ArmSummary] = Field(default_factory=list)
    comparisons: list[Comparison] = Field(default_factory=list)
    items: list[ItemRecord] = Field(default_factory=list)

    def summary(self, arm: str) -> ArmSummary:
        return next(s for s in self.summaries if s.name == arm)

    def comparison(self, arm: str) -> Comparison | None:
        return next((c for c in self.comparisons if c.arm == arm), None)

    def save(self, out: Path) -> Path:
        path = out / "results.json"
        path.write_text(self.model_dump_json(indent=2), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> EvalResult:
        path = path / "results.json" if path.is_dir() else path
        return cls.model_validate_json(path.read_text(encoding="utf-8"))


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarize(
    name: str, label: str, records: list[ItemRecord], *, who: str, library: str | None, tools: bool,
    resamples: int, seed: int,
) -> ArmSummary:  # fmt: skip
    """Metrics of one arm's records (in scenario order)."""
    n = len(records) or 1
    by_category: dict[str, list[ItemRecord]] = defaultdict(list)
    for r in records:
        by_category[r.category].append(r)
    seconds = [r.seconds for r in records]
    return ArmSummary(
        name=name, label=label, who=who, library=library, tools=tools, n=len(records),
        correct=sum(r.correct for r in records),
        accuracy=bootstrap_ci([float(r.correct) for r in records], resamples=resamples, seed=seed),
        score=bootstrap_ci([r.score for r in records], resamples=resamples, seed=seed),
        prompt_tokens=sum(r.prompt_tokens for r in records) / n,
        completion_tokens=sum(r.completion_tokens for r in records) / n,
        seconds_mean=sum(seconds) / n, seconds_median=_quantile(seconds, 0.5), seconds_p90=_quantile(seconds, 0.9),
        cost_usd=sum(r.cost_usd for r in records), errors=sum(bool(r.error) for r in records),
        with_strategies=sum(bool(r.strategies) for r in records),
        categories={c: CategoryStats(n=len(rs), accuracy=sum(r.correct for r in rs) / len(rs),
                                     score=sum(r.score for r in rs) / len(rs))
                    for c, rs in sorted(by_category.items())},
    )  # fmt: skip


def compare(arm: str, baseline: str, treated: list[ItemRecord], base: list[ItemRecord], *, resamples: int,
            seed: int) -> Comparison:
    """The paired differences of ``arm`` against ``baseline``; records are matched by scenario id."""
    by_id = {r.id: r for r in base}
    pairs = [(by_id[r.id], r) for r in treated if r.id in by_id]
    return Comparison(
        arm=arm, baseline=baseline,
        accuracy=paired_bootstrap([float(b.correct) for b, _ in pairs], [float(t.correct) for _, t in pairs],
                                  resamples=resamples, seed=seed),
        score=paired_bootstrap([b.score for b, _ in pairs], [t.score for _, t in pairs], resamples=resamples,
                               seed=seed),
    )  # fmt: skip


def read_transcripts(path: Path) -> dict[str, dict[str, Any]]:
    """An arm's transcript file by scenario id (the last line wins), for ``--resume`` and for reading failures."""
    out: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                out[str(row["id"])] = row
    return out
