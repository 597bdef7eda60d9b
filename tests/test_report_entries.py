"""The eval report's per-entry table, on a committed real evaluation (200 held-out items, the 21-example pack)."""

from __future__ import annotations

from pathlib import Path

from agentkd.eval.report import entries, markdown
from agentkd.eval.results import EvalResult

RUN = Path(__file__).parent.parent / "benchmarks" / "eval" / "math-heldout-200-pack21"


def test_each_entry_s_won_and_lost_items_are_counted_against_the_baseline_worst_first(tmp_path: Path) -> None:
    r = EvalResult.load(RUN)
    table = entries(r)
    assert table is not None and table.headers == ["arm", "entry", "items retrieved", "won", "lost"]
    assert table.rows[0] == ["student + library", "e-da2c9a578d", "4", "0", "3"], "the one that hurt comes first"
    base = {i.id: i.correct for i in r.items if i.arm == "student"}
    hits = [i for i in r.items if i.arm == "student+library" and "e-43c1faefed" in i.strategies]
    row = next(x for x in table.rows if x[1] == "e-43c1faefed")
    assert row[2:] == [str(len(hits)), str(sum(i.correct and not base[i.id] for i in hits)),
                       str(sum(base[i.id] and not i.correct for i in hits))]
    assert "1 of 21 (arm, entry) pairs lost more items than they won" in table.note and len(table.rows) == 20
    assert "## Per entry" in markdown(r, {}, tmp_path)
    alone = r.model_copy(update={"items": [i for i in r.items if i.arm == "student"], "summaries": r.summaries[:1]})
    assert entries(alone) is None, "no library arm: no table"
