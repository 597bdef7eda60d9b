"""The batched engine from the inside (benchmarks/batching.md §5).

Run: python benchmarks/engine_probe.py turns    (k samples of one prompt after a single-path call: tok/s, ms per decode)
     python benchmarks/engine_probe.py vote     (k = 8 votes on 4 held-out questions: the engine's mean width per vote)
     python benchmarks/engine_probe.py prefill  (the single path's prefill in chunks of 512, 32, 64 tokens: §6's cost)
     python benchmarks/engine_probe.py clients [N]  (1 and 8 client threads answering N held-out questions, as
                                                    `agentkd serve` does: where the engine's time goes, §10)

Qwen2.5-Coder-0.5B, 2 threads, opened through the safe loader (LocalLLM). ``turns`` first makes one single-path
call in the main thread, as a mixed process does (a greedy arm, a request), then k = 1, 2, 8 turns on the engine.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from agentkd.models import llamacpp_batch
from agentkd.models.llamacpp import LocalLLM
from agentkd.models.runlog import RunLog
from agentkd.parts import load_task
from agentkd.student import Student
from agentkd.tools import ToolBox

MODEL = Path.home() / ".agentkd" / "models" / "qwen2.5-coder-0.5b.gguf"


def turns() -> None:
    spent = {"seconds": 0.0, "steps": 0}
    real = llamacpp_batch.BatchEngine._decode

    def timed(self: Any, batch: Any) -> int:
        t0 = time.perf_counter()
        try:
            return real(self, batch)
        finally:
            spent["seconds"] += time.perf_counter() - t0
            spent["steps"] += 1

    llamacpp_batch.BatchEngine._decode = timed  # type: ignore[method-assign]
    llm = LocalLLM(str(MODEL), n_ctx=1024, n_threads=2)
    msgs = [{"role": "user", "content": "Write a long story about a robot."}]
    t0 = time.perf_counter()
    one = llm.chat(msgs, temperature=0.7, max_tokens=48, seed=3)
    print(f"single path: {one.completion_tokens / (time.perf_counter() - t0):.1f} tok/s")
    for k in (1, 2, 8):
        batched = llm.batched(k)
        batched.chat_batch([msgs] * k, seeds=list(range(k)), temperature=0.7, max_tokens=4)  # the prefix, cached
        spent.update(seconds=0.0, steps=0)
        t0 = time.perf_counter()
        results = batched.chat_batch([msgs] * k, seeds=list(range(10, 10 + k)), temperature=0.7, max_tokens=48)
        wall = time.perf_counter() - t0
        n = sum(r.completion_tokens for r in results)
        print(f"engine k={k}: {n} tokens in {wall:.2f} s, {n / wall:.1f} tok/s; "
              f"{1000 * spent['seconds'] / spent['steps']:.1f} ms per decode over {spent['steps']} steps")


def vote() -> None:
    task = load_task("gsm_symbolic")
    student = Student(MODEL, n_threads=2, max_tokens=256, max_steps=3, log=RunLog(), samples=8,
                      vote_early_stop=False)  # fmt: skip
    tool_seconds: list[float] = []
    real = ToolBox.run

    def timed(self: ToolBox, name: str, args: dict[str, Any]) -> Any:
        t0 = time.perf_counter()
        try:
            return real(self, name, args)
        finally:
            tool_seconds.append(time.perf_counter() - t0)

    ToolBox.run = timed  # type: ignore[method-assign,assignment]
    engine = student.llm.batched(8).engine  # type: ignore[attr-defined]  # an in-process model
    for sc in task.scenarios("heldout", 4, seed=5):  # type: ignore[arg-type]
        before, t0 = dataclasses.replace(engine.stats), time.perf_counter()
        student.ask(sc.question, task=sc.task, instructions=task.instructions)
        wall, now = time.perf_counter() - t0, engine.stats
        steps, sampled = now.steps - before.steps, now.sampled - before.sampled
        print(f"{wall:.1f} s, {steps} steps, {sampled} tokens sampled, mean width {sampled / steps:.2f}, "
              f"{1000 * wall / steps:.0f} ms per step; {len(tool_seconds)} tool runs, {sum(tool_seconds):.2f} s")
        tool_seconds.clear()


def prefill() -> None:
    """The single path's prefill of a 600-token prompt in fixed chunks of 512, 32, 64 tokens (best of 3 each)."""
    from agentkd.models import llamacpp

    llm = LocalLLM(str(MODEL), n_ctx=2048, n_threads=2)
    tokens = llm.tokenize("The quick brown fox jumps over the lazy dog. " * 60)[:600]
    for size in (512, 32, 64, 512):
        llamacpp.chunks = lambda a, b, size=size: [(x, min(x + size, b)) for x in range(a, b, size)]  # type: ignore[misc]
        best = float("inf")
        for _ in range(3):
            llm.reset()
            t0 = time.perf_counter()
            llm._prefill(tokens)
            best = min(best, time.perf_counter() - t0)
        print(f"chunks of {size}: {len(tokens)} tokens in {best:.2f} s = {len(tokens) / best:.0f} tok/s")
    llm.close()


def clients() -> None:
    """Client threads each asking its share of N questions on one 8-wide engine, as the server runs requests
    (a shallow copy of one Student per request, its model the batched one): wall, and the engine's decodes split
    into decoding steps and prompt chunks, with the prompt tokens evaluated and those copied from held cells."""
    import copy
    from concurrent.futures import ThreadPoolExecutor

    n = int(sys.argv[2]) if len(sys.argv) > 2 else 24
    task = load_task("gsm_symbolic")
    items = task.scenarios("heldout", n, seed=1234)  # type: ignore[arg-type]  # serve_bench.py's questions
    student = Student(MODEL, n_threads=2, max_tokens=256, log=RunLog())
    batched = student.llm.batched(8)  # type: ignore[attr-defined]
    engine = batched.engine
    spent = {"decode_s": 0.0, "prompt_s": 0.0, "prompt_tokens": 0, "decode_steps": 0}
    real = llamacpp_batch.BatchEngine._run

    def timed(self: Any, rows: Any) -> int:
        t0 = time.perf_counter()
        try:
            return real(self, rows)  # type: ignore[no-any-return]
        finally:
            if rows and rows[0][0].prompt:
                spent["prompt_s"] += time.perf_counter() - t0
                spent["prompt_tokens"] += sum(len(take) for _, take, _ in rows)
            else:
                spent["decode_s"] += time.perf_counter() - t0
                spent["decode_steps"] += 1

    llamacpp_batch.BatchEngine._run = timed  # type: ignore[method-assign]

    def ask(sc: Any) -> None:
        stu = copy.copy(student)
        stu.llm = batched
        stu.ask(sc.question, task=sc.task, instructions=task.instructions)

    ask(items[0])  # warm-up, as serve_bench.py does
    for c in (1, 8):
        for key in spent:
            spent[key] = 0
        before, t0 = dataclasses.replace(engine.stats), time.perf_counter()
        with ThreadPoolExecutor(c) as pool:
            list(pool.map(ask, items))
        wall, now = time.perf_counter() - t0, engine.stats
        sampled = now.sampled - before.sampled
        print(f"{c} clients: {n} requests in {wall:.1f} s ({60 * n / wall:.1f}/min); {sampled} tokens sampled; "
              f"decoding steps {spent['decode_steps']} in {spent['decode_s']:.1f} s "
              f"(mean width {sampled / max(spent['decode_steps'], 1):.2f}); prompt chunks: "
              f"{spent['prompt_tokens']} tokens in {spent['prompt_s']:.1f} s; "
              f"prompt tokens copied from held cells {now.reused - before.reused}; "
              f"engine idle {wall - spent['decode_s'] - spent['prompt_s']:.1f} s", flush=True)


if __name__ == "__main__":
    modes = {"turns": turns, "vote": vote, "prefill": prefill, "clients": clients}
    modes[sys.argv[1] if len(sys.argv) > 1 else "turns"]()
