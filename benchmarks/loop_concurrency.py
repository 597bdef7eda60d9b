"""Scenarios per minute through the distillation loop with a slow teacher, at several concurrency levels.

The teacher is scripted with a fixed latency per call (a stand-in for a remote API); the student
(SmolLM2-135M through llama.cpp), the Chroma library and the LangGraph loop are real. Every scenario fails
without a strategy, so each costs two teacher calls (solve + write) plus one student re-run at admission.

    python benchmarks/loop_concurrency.py --latency 2 --levels 1 4 16 --batch 16

``student_busy`` tells which side limits a level: the teacher while it is well below 1.0, the student
(one in-process model on the machine's cores) once it nears 1.0.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agentkd.distill.context import BuildConfig, BuildContext
from agentkd.distill.graph import run
from agentkd.library import Library
from agentkd.models import catalog
from agentkd.models.runlog import RunLog
from agentkd.student.student import Student
from agentkd.testing import fake_teacher
from agentkd.tools import ToolBox
from tests.loopkit import PassPhraseTask, strategy_script


def reply(messages: list[dict[str, str]]) -> str:
    """The scripted teacher: a solution for `solve` calls, the strategy JSON for structured calls."""
    solution, strategy = strategy_script(1)
    return strategy if "single JSON object" in messages[-1]["content"] else solution


def measure(level: int, latency: float, batch: int, model: Path, log_dir: Path | None = None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        log = RunLog(log_dir / f"level-{level}.jsonl" if log_dir else None)
        library = Library.open(str(Path(tmp) / "lib"), f"bench-{level}")
        student = Student(model, tools=ToolBox([]), retriever=None, n_ctx=1024, max_tokens=8, log=log)
        teacher = fake_teacher([reply], latency=latency, repeat_last=True, log=log)
        config = BuildConfig(iterations=1, batch_size=batch, max_strategies_per_iteration=batch, siblings=0,
                             teacher_concurrency=level, seed=level)
        ctx = BuildContext(teacher=teacher, student=student, library=library, task=PassPhraseTask(), config=config,
                           log=log)
        t0 = time.perf_counter()
        state = run(ctx)
        seconds = time.perf_counter() - t0
        return {"concurrency": level, "scenarios": len(state.scenarios), "seconds": round(seconds, 2),
                "per_minute": round(len(state.scenarios) / seconds * 60, 1),
                "teacher_calls": log.totals("teacher").calls, "student_calls": log.totals("student").calls,
                # share of the wall time the (serialized) student was computing: near 1.0, the student is the
                # bottleneck, not the teacher
                "student_busy": round(log.totals("student").seconds / seconds, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--latency", type=float, default=2.0)
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--log-dir", type=Path, help="write each level's call log (role, purpose, seconds, tokens) here")
    args = ap.parse_args()
    model = catalog.pull("smollm2-135m")
    rows = [measure(level, args.latency, args.batch, model, args.log_dir) for level in args.levels]
    base = rows[0]["per_minute"]
    for r in rows:
        r["speedup"] = round(r["per_minute"] / base, 2)
    print(json.dumps({"machine": platform.processor() or platform.machine(), "latency_s": args.latency,
                      "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
