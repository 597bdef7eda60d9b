"""The paired difference between two arms' transcripts on the items they share, with the interval `agentkd eval`
reports (``agentkd.eval.stats.paired_bootstrap``): for arms of different runs, e.g. one student with the pack
against another student alone on the same held-out items.

Run: python benchmarks/paired_arms.py BASELINE.jsonl TREATMENT.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from agentkd.eval.stats import paired_bootstrap


def correct(path: Path) -> dict[str, bool]:
    return {r["id"]: bool(r["correct"]) for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def main() -> None:
    base, treat = correct(Path(sys.argv[1])), correct(Path(sys.argv[2]))
    ids = [i for i in base if i in treat]
    d = paired_bootstrap([float(base[i]) for i in ids], [float(treat[i]) for i in ids])
    print(f"{len(ids)} items: {sum(base[i] for i in ids)} -> {sum(treat[i] for i in ids)} right; "
          f"{d.diff.value * 100:+.0f} pp [{d.diff.low * 100:+.0f}, {d.diff.high * 100:+.0f}], "
          f"won {d.wins}, lost {d.losses}")


if __name__ == "__main__":
    main()
