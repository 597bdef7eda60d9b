"""Batched decoding (#16), measured side by side in one run; prints the markdown tables of benchmarks/batching.md.

Run: nice python benchmarks/batching_bench.py                       (Qwen2.5-Coder-0.5B, 2 threads, a few minutes)
     python benchmarks/batching_bench.py --questions 1 --items 2    (a quick look)

1. The ceiling: a bare low-level loop, one context with n_seq_max = k, the prompt evaluated once and its KV
   copied to the other sequences, one token per sequence per llama_decode, sampled at temperature 0.7.
2. Voting: k = 8 whole episodes as one batch vs one greedy answer (and vs the 8 one by one), same questions;
   --quorum m adds a vote that also stops once m episodes have finished (Student.vote_quorum).
3. Evaluation: items x student arms with batch_width 4 vs 1, same scenarios, temperature 0.

Every context runs on a model the loader opened (agentkd.models.llamacpp_loader, through LocalLLM):
llama.cpp's default load options crash on AMX machines.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import llama_cpp
from llama_cpp import _internals

from agentkd.config import get_settings
from agentkd.eval.heldout import grade
from agentkd.eval.runner import EvalConfig, run_eval
from agentkd.models.llamacpp import LocalLLM, shared
from agentkd.models.llamacpp_core import chain, compute
from agentkd.models.runlog import RunLog
from agentkd.parts import load_task
from agentkd.schema import Attempt
from agentkd.student import Student

MODEL = Path.home() / ".agentkd" / "models" / "qwen2.5-coder-0.5b.gguf"
THREADS = 2


def ceiling(llm: LocalLLM, widths: list[int], steps: int) -> list[str]:
    rows = ["| sequences | total tok/s | per-sequence steps/s | throughput vs 1 |", "|---:|---:|---:|---:|"]
    prompt = llm.tokenize(llm.render([{"role": "user", "content": "Write a long story about a robot."}]))
    base = 0.0
    for k in widths:
        params = llama_cpp.llama_context_params.from_buffer_copy(llm._llm.context_params)
        params.n_ctx, params.n_seq_max, params.kv_unified = 1024 * k, k, False  # as the engine
        ctx = _internals.LlamaContext(model=llm._llm._model, params=params, verbose=False)
        mem = llama_cpp.llama_get_memory(ctx.ctx)
        batch = llama_cpp.llama_batch_init(max(len(prompt), k), 0, 1)
        samplers = [chain(0.7, 100 + i) for i in range(k)]

        def put(n: int, token: int, pos: int, seq: int, logits: bool, b: Any = batch) -> None:
            b.token[n], b.pos[n], b.n_seq_id[n], b.logits[n] = token, pos, 1, logits
            b.seq_id[n][0] = seq

        for i, t in enumerate(prompt):
            put(i, t, i, 0, i == len(prompt) - 1)
        batch.n_tokens = len(prompt)
        assert llama_cpp.llama_decode(ctx.ctx, batch) == 0
        for s in range(1, k):
            llama_cpp.llama_memory_seq_cp(mem, 0, s, -1, -1)
        tokens = [llama_cpp.llama_sampler_sample(samplers[0].sampler, ctx.ctx, -1)] * k
        warm = 4  # a new context's first steps reserve its compute buffers: not timed
        for step in range(warm + steps):
            if step == warm:
                t0 = time.perf_counter()
            for s in range(k):
                put(s, tokens[s], len(prompt) + step, s, True)
            batch.n_tokens = k
            assert llama_cpp.llama_decode(ctx.ctx, batch) == 0
            tokens = [llama_cpp.llama_sampler_sample(samplers[s].sampler, ctx.ctx, s) for s in range(k)]
        dt = time.perf_counter() - t0
        tps = k * steps / dt
        base = base or tps
        rows.append(f"| {k} | {tps:.1f} | {steps / dt:.1f} | {tps / base:.1f}× |")
        for smp in samplers:
            smp.close()
        llama_cpp.llama_batch_free(batch)
        ctx.close()
    return rows


class _OneByOne:
    """The model without ``batched``: a vote's episodes run one after another (as before #16)."""

    def __init__(self, llm: Any) -> None:
        self._llm = llm

    def __getattr__(self, name: str) -> Any:
        if name == "batched":
            raise AttributeError(name)
        return getattr(self._llm, name)


def voting(questions: int, k: int, one_by_one: bool, quorum: int = 0, all_finish: bool = True) -> list[str]:
    task = load_task("gsm_symbolic")
    items = task.scenarios("heldout", questions, seed=5)  # type: ignore[arg-type]
    student = Student(MODEL, n_threads=THREADS, max_tokens=256, max_steps=3, log=RunLog())
    runs: list[tuple[str, int, Any, bool, int]] = [("one greedy answer", 1, student.llm, False, 0)]
    if all_finish:
        runs.append((f"vote k={k}, one batch, all {k} finish", k, student.llm, False, 0))
    runs.append((f"vote k={k}, one batch, stops once decided", k, student.llm, True, 0))
    if quorum:
        runs.append((f"vote k={k}, one batch, stops once decided or {quorum} finished", k, student.llm, True, quorum))
    if one_by_one:
        runs.append((f"vote k={k}, one by one, all {k} finish", k, _OneByOne(student.llm), False, 0))
    rows = ["| run | wall s | s / question | vs greedy | correct | completion tokens | episodes finished |",
            "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    base = 0.0
    for label, samples, llm, early, m in runs:
        student.samples, student.llm, student.vote_early_stop, student.vote_quorum = samples, llm, early, m
        t0, correct, tokens, finished = time.perf_counter(), 0, 0, 0
        for sc in items:
            ans = student.ask(sc.question, task=sc.task, instructions=task.instructions)
            correct += grade(task, sc, Attempt(scenario_id=sc.id, answer=ans.text)).correct
            tokens += ans.completion_tokens
            finished += ans.votes[0]["finished"] if ans.votes else 1
        dt = time.perf_counter() - t0
        base = base or dt
        rows.append(f"| {label} | {dt:.1f} | {dt / len(items):.1f} | {dt / base:.2f}× | {correct}/{len(items)} "
                    f"| {tokens} | {finished / len(items):.1f} |")
    return rows


def evaluation(items: int, width: int) -> list[str]:
    rows = ["| run | wall s | items × arms | accuracy per arm | mean width |", "|---|---:|---:|---|---:|"]
    results = {}
    for w in (1, width):
        student = Student(MODEL, n_threads=THREADS, max_tokens=160, max_steps=2, log=RunLog())
        settings = get_settings(batch_width=w, student=str(MODEL))
        out = Path(tempfile.mkdtemp(prefix=f"batch-eval-{w}-"))
        config = EvalConfig(task="gsm_symbolic", n=items, seed=3, arms="student,student+cot", out=out, resamples=50)
        engine = student.llm._engine
        before = (engine.stats.steps, engine.stats.sampled) if engine else (0, 0)
        t0 = time.perf_counter()
        result = run_eval(settings, config, parts={"student": student, "teacher": None}, task=load_task("gsm_symbolic"))
        dt = time.perf_counter() - t0
        engine = student.llm._engine
        width_seen = 0.0
        if engine and w > 1:
            steps, sampled = engine.stats.steps - before[0], engine.stats.sampled - before[1]
            width_seen = sampled / steps if steps else 0.0
        acc = ", ".join(f"{s.name} {s.correct}/{s.n}" for s in result.summaries)
        results[w] = (dt, [(i.arm, i.id, i.answer, i.correct) for i in result.items])
        rows.append(f"| batch_width {w} | {dt:.1f} | {len(result.items)} | {acc} | {width_seen:.2f} |")
    same = results[1][1] == results[width][1]
    rows.append(f"\nwall-time ratio sequential / batched: {results[1][0] / results[width][0]:.2f}×; "
                f"every item's answer and grade identical: {same}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="1,2,4,8")
    parser.add_argument("--steps", type=int, default=48)
    parser.add_argument("--questions", type=int, default=3)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--no-one-by-one", action="store_true", help="skip the k episodes one by one")
    parser.add_argument("--quorum", type=int, default=0, help="also a vote that stops once this many finished")
    parser.add_argument("--no-all-finish", action="store_true", help="skip the vote whose k episodes all finish")
    parser.add_argument("--items", type=int, default=6)
    parser.add_argument("--width", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads (1 where the cores are shared)")
    parser.add_argument("--skip", default="", help="comma list of parts to skip: ceiling,voting,eval")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    print(f"uptime before: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print(f"cores: {os.cpu_count()}, threads: {args.threads}, model: {MODEL.name}, "
          f"llama-cpp-python {llama_cpp.__version__}\n", flush=True)
    global THREADS
    THREADS = args.threads
    llm = shared(MODEL, n_threads=THREADS)
    llm.chat([{"role": "user", "content": "Hi"}], max_tokens=4)  # page the weights in before timing anything
    if "ceiling" not in skip:
        # on the llama.cpp thread the engine uses too: a second calling thread would slow both (llamacpp_core.compute)
        widths = [int(w) for w in args.widths.split(",")]
        print("\n".join(compute(ceiling, llm, widths, args.steps)), "\n", flush=True)
    if "voting" not in skip:
        rows = voting(args.questions, args.k, not args.no_one_by_one, args.quorum, not args.no_all_finish)
        print("\n".join(rows), "\n", flush=True)
    if "eval" not in skip:
        print("\n".join(evaluation(args.items, args.width)), "\n")
    print(f"uptime after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()
