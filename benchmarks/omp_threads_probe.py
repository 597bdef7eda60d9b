"""Why every llama.cpp evaluation runs on one thread (agentkd.models.llamacpp_core.compute), measured.

Run: python benchmarks/omp_threads_probe.py main|worker|pause|both   (Qwen2.5-Coder-0.5B, 2 threads, ~20 s each;
     benchmarks/batching.md §5). Run each case in a fresh process: an OpenMP team, once made, stays.

One context, one sequence, one token per ``llama_decode``; prints the mean milliseconds of a decode:
  main    from the main thread
  worker  from one worker thread
  pause   from the main thread with 2 ms / 20 ms pauses between steps (as a turn's Python work between steps)
  both    main thread, then a worker thread, then the main thread again: two callers, two OpenMP teams
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import llama_cpp
from llama_cpp import _internals

from agentkd.models.llamacpp import LocalLLM
from agentkd.models.llamacpp_core import chain

MODEL = Path.home() / ".agentkd" / "models" / "qwen2.5-coder-0.5b.gguf"


def main() -> None:
    case = sys.argv[1] if len(sys.argv) > 1 else "both"
    llm = LocalLLM(str(MODEL), n_ctx=1024, n_threads=2)
    prompt = llm.tokenize(llm.render([{"role": "user", "content": "Write a long story about a robot."}]))
    params = llama_cpp.llama_context_params.from_buffer_copy(llm._llm.context_params)
    params.n_ctx, params.n_seq_max, params.kv_unified = 1024, 1, False
    ctx = _internals.LlamaContext(model=llm._llm._model, params=params, verbose=False)
    batch = llama_cpp.llama_batch_init(512, 0, 1)
    sampler = chain(0.7, 5)

    def put(n: int, token: int, pos: int, logits: bool) -> None:
        batch.token[n], batch.pos[n], batch.n_seq_id[n], batch.logits[n] = token, pos, 1, logits
        batch.seq_id[n][0] = 0

    def run(steps: int = 48, pause: float = 0.0) -> float:
        llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(ctx.ctx), -1, -1, -1)
        for i, t in enumerate(prompt):
            put(i, t, i, i == len(prompt) - 1)
        batch.n_tokens = len(prompt)
        llama_cpp.llama_decode(ctx.ctx, batch)
        token, spent = llama_cpp.llama_sampler_sample(sampler.sampler, ctx.ctx, -1), 0.0
        for s in range(steps):
            put(0, token, len(prompt) + s, True)
            batch.n_tokens = 1
            t0 = time.perf_counter()
            llama_cpp.llama_decode(ctx.ctx, batch)
            spent += time.perf_counter() - t0
            token = llama_cpp.llama_sampler_sample(sampler.sampler, ctx.ctx, -1)
            if pause:
                time.sleep(pause)
        return 1000 * spent / steps

    worker = ThreadPoolExecutor(1)
    if case == "main":
        print("main thread, ms per decode:", f"{run():.1f}", f"{run():.1f}")
    elif case == "worker":
        print("worker thread, ms per decode:", f"{worker.submit(run).result():.1f}",
              f"{worker.submit(run).result():.1f}")
    elif case == "pause":
        print("main thread with pauses 2 ms / 20 ms, ms per decode:", f"{run(pause=0.002):.1f}",
              f"{run(pause=0.02):.1f}")
    else:
        print("main thread:", f"{run():.1f}", "then a worker thread:", f"{worker.submit(run).result():.1f}",
              "then the main thread again:", f"{run():.1f}", "ms per decode")
    worker.shutdown()


if __name__ == "__main__":
    main()
