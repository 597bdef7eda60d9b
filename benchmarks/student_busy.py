"""A build's wall time and ``student_busy`` (the share of the wall time at least one student call was running),
read from its run log.

Run: python benchmarks/student_busy.py ~/.agentkd/runs/<run id>.jsonl [...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def busy(path: Path) -> dict[str, float]:
    calls, first, last = [], float("inf"), 0.0
    for line in path.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        end = float(event.get("time", 0.0))
        start = end - float(event.get("seconds", 0.0))
        first, last = min(first, start), max(last, end)
        if event.get("role") == "student":
            calls.append((start, end))
    covered, reach = 0.0, float("-inf")
    for start, end in sorted(calls):  # the union of the call intervals
        if end > reach:
            covered += end - max(start, reach)
            reach = end
    wall = last - first
    return {"wall_s": wall, "student_calls": len(calls), "student_busy": covered / wall if wall else 0.0,
            "student_call_s": sum(e - s for s, e in calls)}


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        b = busy(Path(arg))
        print(f"{arg}: wall {b['wall_s']:.0f} s, {b['student_calls']:.0f} student calls "
              f"({b['student_call_s']:.0f} s of calls), student_busy {b['student_busy']:.2f}")
