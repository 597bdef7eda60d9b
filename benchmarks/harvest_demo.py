"""Does a verified program of a related problem help the teacher write one? Paired, on train problems of the
categories the library has no worked example for (the ones harvesting keeps failing): the teacher's greedy
program alone, and after the library's closest admitted example of another category as a prior exchange
(``demonstration_for`` below). Each program runs in the student's sandbox and is judged by ground truth.

    AGENTKD_HOME=/tmp/mb AGENTKD_COLLECTION=math python benchmarks/harvest_demo.py --per-category 1 \\
        --out benchmarks/harvest_demo.json

The teacher is the configured one (``local/qwen2.5-coder-1.5b`` by default); ``--concurrency`` calls at once.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

from agentkd.config import get_settings
from agentkd.distill.context import BuildConfig, BuildContext
from agentkd.distill.harvest import _try, example_categories
from agentkd.library.curation import sign_test
from agentkd.library.retrieval import MMRRetriever
from agentkd.models.runlog import RunLog
from agentkd.parts import OneQueryAtATime, load_task, open_library, open_teacher, student_tools
from agentkd.schema import Scenario, WorkedExample
from agentkd.student.agent_loop import code_tool


def demonstration_for(ctx: BuildContext, sc: Scenario) -> WorkedExample | None:
    """The library's closest admitted program-form example of *another* category (None without a match)."""
    assert ctx.student.retriever is not None
    hits = ctx.student.retriever.search(sc.question, k=5, task=ctx.task.name)
    shown = [h for h in hits if h.strategy.kind == "example" and h.strategy.worked is not None
             and h.strategy.worked.form == "program" and h.strategy.worked.category != sc.category]
    return max(shown, key=lambda h: float(h.score)).strategy.worked if shown else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="gsm_symbolic")
    ap.add_argument("--per-category", type=int, default=1, help="train problems per uncovered category")
    ap.add_argument("--concurrency", type=int, default=6)
    ap.add_argument("--seed", type=int, default=555)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    settings = get_settings()
    task, library = load_task(args.task), open_library(settings, create=False)
    covered = example_categories(library, task.name) or set()
    uncovered = [c for c in task.categories("train") if c not in covered]
    items = [sc for c in uncovered for sc in (task.scenarios_for(c, args.per_category, args.seed) or [])]
    log = RunLog()
    student = SimpleNamespace(tools=student_tools(task),
                              retriever=OneQueryAtATime(MMRRetriever(library, budget_tokens=settings.strategy_tokens)))
    ctx = BuildContext(teacher=open_teacher(settings, log), student=student, library=library,  # type: ignore[arg-type]
                       task=task, config=BuildConfig(seed=settings.seed))
    tool = code_tool(student.tools)
    assert tool is not None, "the task has no code tool"
    demos = {sc.id: demonstration_for(ctx, sc) for sc in items}
    print(f"{len(items)} train problems of {len(uncovered)} categories without an example "
          f"({len(covered)} covered); {sum(d is not None for d in demos.values())} have a demonstration")

    def one(job: tuple[int, bool]) -> bool:
        sc = items[job[0]]
        demo = demos[sc.id] if job[1] else None
        if job[1] and demo is None:
            return False
        return isinstance(_try(ctx, sc, tool, 0.0, settings.seed, demo=demo), WorkedExample)

    jobs = [(i, shown) for i in range(len(items)) for shown in (False, True)]
    start = time.perf_counter()
    with ThreadPoolExecutor(args.concurrency) as ex:
        verified = list(ex.map(one, jobs))
    plain, shown = verified[0::2], verified[1::2]
    helped = sum(b and not a for a, b in zip(plain, shown, strict=True))
    hurt = sum(a and not b for a, b in zip(plain, shown, strict=True))
    result = {
        "task": task.name, "teacher": settings.teacher, "items": len(items), "categories": len(uncovered),
        "covered_categories": len(covered), "with_demonstration": sum(d is not None for d in demos.values()),
        "verified_plain": sum(plain), "verified_with_demonstration": sum(shown), "helped": helped, "hurt": hurt,
        "sign_test_p_helps": sign_test(helped, hurt), "seconds": round(time.perf_counter() - start, 1),
        "teacher_calls": len(jobs), "per_item": [
            {"id": sc.id, "category": sc.category, "plain": a, "with_demonstration": b,
             "demonstration": (d.category if (d := demos[sc.id]) else None)}
            for sc, a, b in zip(items, plain, shown, strict=True)],
    }
    print(f"verified: plain {sum(plain)}/{len(items)}, with a demonstration {sum(shown)}/{len(items)}; "
          f"helped {helped}, hurt {hurt} (sign test p={result['sign_test_p_helps']:.3f}); {result['seconds']} s")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
