"""What an SFT export is asked to do and what it did: the config, the records written, the report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from agentkd.sft.formats import Record, RecordOptions
from agentkd.sft.hygiene import GroupBy
from agentkd.sft.trajectories import Dropped, Trajectory


@dataclass(frozen=True)
class ExportConfig:
    """How records are written; see ``RecordOptions`` for the conversation options."""

    format: str = "openai"
    options: RecordOptions = field(default_factory=RecordOptions)
    max_tokens: int | None = None  # None: the student's context window (``settings.n_ctx``)
    val_fraction: float = 0.1
    group_by: GroupBy = "category"
    seed: int = 1234
    dedupe_threshold: float = 0.9


@dataclass
class Written:
    """A record that passed every check, with where it goes."""

    traj: Trajectory
    record: Record
    tokens: int
    split: str = "train"


@dataclass
class ExportReport:
    out: Path
    format: str
    collected: int  # scenarios the teacher attempted
    verified: int  # trajectories the judge verified
    written: list[Written]
    dropped: list[Dropped]
    files: list[Path]
    card: str
    groups: tuple[int, int] = (0, 0)  # split groups in validation, in all

    def count(self, split: str) -> int:
        return sum(w.split == split for w in self.written)

    def dropped_by_reason(self) -> list[tuple[str, str, int, str]]:
        """(stage, reason, count, an example's detail), most frequent first."""
        counts = Counter((d.stage, d.reason) for d in self.dropped)
        example = {(d.stage, d.reason): d.detail for d in reversed(self.dropped)}
        return [(s, r, n, example[(s, r)]) for (s, r), n in counts.most_common()]
