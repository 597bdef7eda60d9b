"""Student runtime benchmarks: decode speed, time to first token with strategies, retrieval overhead, server, edge.

    nice python benchmarks/student_bench.py decode   --model ~/.agentkd/models/qwen2.5-coder-0.5b.gguf
    nice python benchmarks/student_bench.py ttft     --model ...
    nice python benchmarks/student_bench.py overhead --model ...
    nice python benchmarks/student_bench.py server   --model ... --levels 1 4 8
    nice python benchmarks/student_bench.py edge     --model ...
    nice python benchmarks/student_bench.py all      --model ... --out benchmarks/student_results.json

Every run records ``uptime`` load before and after: other processes that share the cores slow llama.cpp
down a lot, so a number is only comparable with numbers taken under the same load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "A shop sells 17 boxes of 23 pens and 5 loose pens. How many pens does it sell?",
    "A train travels for 45 minutes at 80 km/h. How far does it go in km?",
    "What is 15% of 240?",
    "Tom has 3 times as many apples as Ann, who has 14. How many do they have together?",
    "A rectangle is 12 m by 7.5 m. What is its area?",
    "If 8 workers build a wall in 6 days, how many days do 12 workers take?",
    "A price of 80 dollars rises by 25%. What is the new price?",
    "How many seconds are there in 3 hours and 20 minutes?",
    "A car uses 6.5 litres per 100 km. How many litres for 340 km?",
    "Sara reads 24 pages a day. How many days to read a 300-page book?",
]


def load() -> str:
    return open("/proc/loadavg").read().split()[0] if Path("/proc/loadavg").exists() else "?"


def strategies(n: int = 6) -> list[Any]:
    """Entries of about 80 tokens each, like the teacher writes (three of them are ~250 tokens)."""
    from agentkd.schema import Strategy

    topics = ["totals of groups", "unit conversions", "percent changes", "rates and work", "areas", "ratios"]
    return [
        Strategy(
            id=f"s-{i}{t[:3]}", status="admitted", title=f"Solve {t} with a short program",
            trigger=f"word problems about {t}, where several quantities must be combined step by step",
            body=f"1. Name every quantity about {t} as a Python variable with its unit. "
            "2. Write each step as its own line, converting units first. "
            "3. Print only the final value and reply with that number.",
        )
        for i, t in enumerate(topics[:n])
    ]  # fmt: skip


@dataclass
class Hit:
    strategy: Any
    score: float


class FixedRetriever:
    """Returns the entries named by ``plan`` for each successive question (to control what is shared)."""

    def __init__(self, entries: list[Any], plan: list[list[int]]) -> None:
        self.entries, self.plan, self.n = entries, plan, 0

    def search(self, query: str, *, k: int = 3, task: str | None = None) -> list[Hit]:
        ids = self.plan[self.n % len(self.plan)]
        self.n += 1
        return [Hit(self.entries[i], 0.9 - 0.05 * j) for j, i in enumerate(ids)]


# -- decode ------------------------------------------------------------------------------------------
def bench_decode(model: str, threads: int, tokens: int, rounds: int) -> dict[str, Any]:
    """Decode tok/s through agentkd vs raw llama-cpp-python: same model, prompt, sampler and threads."""
    import llama_cpp

    from agentkd.models.llamacpp import LocalLLM, tool_call_schema

    msgs = [{"role": "user", "content": "Write a long, detailed story about a lighthouse keeper and a storm."}]
    from agentkd.models import llamacpp_loader as loader

    ours = LocalLLM(model, n_ctx=2048, n_threads=threads)  # the safe options the loader chose for this machine
    # raw llama-cpp-python with its own defaults, unless they crash here (an AMX machine): then the same raw
    # loop with only llama.cpp's extra buffer types off, which is all agentkd's safe options change
    defaults_crash = loader.run_child(Path(model), True).returncode < 0
    raw_bufts = not defaults_crash
    if raw_bufts:
        raw = llama_cpp.Llama(model, n_ctx=2048, n_threads=threads, verbose=False)
    else:
        raw = loader.open_llama(model, loader.LoadOptions(False, "raw baseline"), n_ctx=2048, n_threads=threads,
                                verbose=False)
    prompt = ours.tokenize(ours.render(msgs))

    def raw_run(grammar: Any = None, toks: list[int] = prompt) -> tuple[float, float]:
        raw.reset()
        n, first, last, cpu0 = 0, 0.0, 0.0, 0.0
        vocab = raw._model.vocab
        for tok in raw.generate(toks, temp=0.0, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0, grammar=grammar):
            if llama_cpp.llama_token_is_eog(vocab, tok):
                break
            n += 1
            last = time.perf_counter()
            if not first:
                first, cpu0 = last, time.process_time()
            if n >= tokens:
                break
        return (n - 1) / (last - first), 1000 * (time.process_time() - cpu0) / (n - 1)

    def ours_run(**kw: Any) -> tuple[float, float]:
        ours.reset()
        cpu: list[float] = []
        n = 0
        for item in ours.chat_stream(msgs, max_tokens=tokens, **kw):
            if isinstance(item, str) and not cpu:
                cpu.append(time.process_time())
            elif not isinstance(item, str):
                n = item.completion_tokens
                tps = item.timings["decode_tps"]
        cpu0 = cpu[0] if cpu else time.process_time()
        return tps, 1000 * (time.process_time() - cpu0) / max(n - 1, 1)

    calc = {"type": "function", "function": {"name": "report", "description": "File a report.", "parameters": {
        "type": "object", "properties": {"title": {"type": "string"}, "summary": {"type": "string"},
                                         "severity": {"enum": ["low", "high"]}, "count": {"type": "integer"}},
        "required": ["title", "summary", "severity", "count"]}}}  # fmt: skip
    free_ours, free_raw, gram_ours, gram_raw = [], [], [], []
    grammar = llama_cpp.LlamaGrammar.from_json_schema(json.dumps(tool_call_schema([calc])), verbose=False)
    head = ours.tokenize(ours.render(msgs, [calc]) + "<tool_call>\n")
    for _ in range(rounds):  # interleaved, so drifting load hits both alike
        free_raw.append(raw_run())
        free_ours.append(ours_run())
        gram_raw.append(raw_run(grammar, head))
        gram_ours.append(ours_run(tools=[calc], tool_choice="required"))

    def med(runs: list[tuple[float, float]], i: int) -> float:
        return statistics.median(r[i] for r in runs)

    # CPU milliseconds per token are steadier than wall time when other processes share the cores
    return {
        "tokens": tokens, "rounds": rounds, "threads": threads, "system_info": loader.system_info(),
        "raw_defaults_crash": defaults_crash, "raw_extra_bufts": raw_bufts,
        "agentkd_extra_bufts": ours.options.extra_bufts,
        "raw_tps": med(free_raw, 0), "agentkd_tps": med(free_ours, 0), "ratio": med(free_ours, 0) / med(free_raw, 0),
        "raw_cpu_ms_per_token": med(free_raw, 1), "agentkd_cpu_ms_per_token": med(free_ours, 1),
        "cpu_ratio": med(free_raw, 1) / med(free_ours, 1),
        "grammar_raw_tps": med(gram_raw, 0), "grammar_agentkd_tps": med(gram_ours, 0),
        "grammar_speedup": med(gram_ours, 0) / med(gram_raw, 0),
        "grammar_raw_cpu_ms_per_token": med(gram_raw, 1), "grammar_agentkd_cpu_ms_per_token": med(gram_ours, 1),
    }  # fmt: skip


# -- time to first token -------------------------------------------------------------------------------
def bench_ttft(model: str, threads: int, n: int) -> dict[str, Any]:
    """TTFT from the second question on: bare prompt, 3 packed strategies (same / partly different)."""
    from agentkd.student.student import Student

    entries = strategies()
    plans = {
        "bare (no strategies)": None,
        "3 strategies, same entries": [[0, 1, 2]],
        "3 strategies, 1 of 3 changes (id order)": [[0, 1, 2], [0, 1, 3], [0, 4, 1], [2, 0, 5]],
        "3 strategies, 1 of 3 changes (reuse order)": [[0, 1, 2], [0, 1, 3], [0, 4, 1], [2, 0, 5]],
        "3 strategies, all change": [[0, 1, 2], [3, 4, 5]],
    }
    out: dict[str, Any] = {}
    for name, plan in plans.items():
        retriever = FixedRetriever(entries, plan) if plan else None
        st = Student(model, retriever=retriever, n_ctx=4096, n_threads=threads, max_steps=1, max_tokens=1,
                     reuse_order="reuse" in name)  # fmt: skip
        st.llm.reset()
        ttfts, cached, prompt = [], [], []
        for i in range(n + 1):
            a = st.ask(QUESTIONS[i % len(QUESTIONS)])
            if i:  # second question onwards
                ttfts.append(a.timings["ttft"])
                cached.append(a.cached_tokens)
                prompt.append(a.prompt_tokens)
        pack = st.llm.count_tokens(st.system_prompt([entries[i] for i in plan[0]])) if plan else 0
        out[name] = {"ttft_median_s": statistics.median(ttfts), "ttft_p90_s": sorted(ttfts)[int(0.9 * len(ttfts))],
                     "cached_tokens": statistics.median(cached), "prompt_tokens": statistics.median(prompt),
                     "system_tokens": pack}  # fmt: skip
    bare = out["bare (no strategies)"]["ttft_median_s"]
    for v in out.values():
        v["vs_bare"] = v["ttft_median_s"] / bare
    return out


# -- retrieval and packing overhead --------------------------------------------------------------------
def bench_overhead(model: str, threads: int, n: int) -> dict[str, Any]:
    """Retrieval (Chroma + ONNX embedder) and packing time as a share of whole answers."""
    from agentkd.library import Library
    from agentkd.student.student import Student

    with tempfile.TemporaryDirectory() as tmp:
        lib = Library.open(tmp)
        for s in strategies():
            lib.add(s)
        st = Student(model, retriever=lib, n_ctx=4096, n_threads=threads)
        st.ask(QUESTIONS[-1])  # warm the embedder and the cache
        rows = []
        for q in QUESTIONS[:n]:
            a = st.ask(q)
            rows.append((a.timings["retrieve"], a.seconds, a.steps))
    shares = [r / s for r, s, _ in rows]
    return {"answers": n, "retrieve_median_s": statistics.median(r for r, _, _ in rows),
            "answer_median_s": statistics.median(s for _, s, _ in rows), "share_median": statistics.median(shares),
            "share_max": max(shares), "steps_mean": statistics.mean(s for _, _, s in rows)}  # fmt: skip


# -- server ----------------------------------------------------------------------------------------------
def bench_server(model: str, threads: int, levels: list[int], per_level: int) -> dict[str, Any]:
    """Requests per minute and latency p50/p95 at each concurrency level, through `agentkd serve`."""
    import openai

    from agentkd.library import Library

    with tempfile.TemporaryDirectory() as home:
        lib = Library.open(str(Path(home) / "library"))
        for s in strategies():
            lib.add(s)
        del lib
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "AGENTKD_HOME": home, "AGENTKD_STUDENT": model, "AGENTKD_N_THREADS": str(threads)}
        proc = subprocess.Popen([sys.executable, "-m", "agentkd.cli", "serve", "--port", str(port), "--max-steps", "2"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        base = f"http://127.0.0.1:{port}/v1"
        try:
            client = openai.OpenAI(base_url=base, api_key="-", max_retries=0)
            for _ in range(300):
                try:
                    client.models.list()
                    break
                except openai.APIConnectionError:
                    time.sleep(0.2)
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": QUESTIONS[0]}],
                                           max_tokens=8)  # warm  # fmt: skip
            return {str(c): asyncio.run(_server_level(base, c, max(per_level, c))) for c in levels}
        finally:
            proc.terminate()
            proc.wait(timeout=30)


async def _server_level(base: str, concurrency: int, total: int) -> dict[str, Any]:
    import openai

    client = openai.AsyncOpenAI(base_url=base, api_key="-", max_retries=0, timeout=600)
    latencies: list[float] = []
    failures = 0
    queue = list(range(total))

    async def worker() -> None:
        nonlocal failures
        while queue:
            i = queue.pop()
            t0 = time.perf_counter()
            try:
                stream = await client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
                    max_tokens=96, stream=True,
                )  # fmt: skip
                async for _ in stream:
                    pass
                latencies.append(time.perf_counter() - t0)
            except openai.OpenAIError:
                failures += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    lat = sorted(latencies)
    return {"requests": total, "failures": failures, "per_minute": 60 * len(lat) / wall,
            "p50_s": lat[len(lat) // 2], "p95_s": lat[min(len(lat) - 1, int(0.95 * len(lat)))]}  # fmt: skip


# -- edge ------------------------------------------------------------------------------------------------
def bench_edge(model: str) -> dict[str, Any]:
    """Cold start and peak RSS of edge/run_student.py on one core (taskset -c 0, one thread)."""
    from agentkd.library import Library
    from agentkd.library.bundle import write_bundle

    with tempfile.TemporaryDirectory() as tmp:
        lib = Library.open(str(Path(tmp) / "lib"))
        for s in strategies():
            lib.add(s)
        write_bundle(lib, Path(tmp) / "bundle")
        cmd = ["taskset", "-c", "0", sys.executable, str(ROOT / "edge" / "run_student.py"), "--model", model,
               "--bundle", str(Path(tmp) / "bundle"), "--threads", "1", "-q", QUESTIONS[2], "--bench"]  # fmt: skip
        runs = []
        # the first run reads the model file into the page cache (a device's first start); then one per batch size
        for batch in (512, 512, 128):
            t0 = time.perf_counter()
            out = subprocess.run([*cmd, "--batch", str(batch)], capture_output=True, text=True, check=True)
            stats = json.loads(out.stdout.strip().splitlines()[-1])
            stats["process_s"], stats["batch"] = time.perf_counter() - t0, batch
            runs.append(stats)
    return {"runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["decode", "ttft", "overhead", "server", "edge", "all"])
    parser.add_argument("--model", default=str(Path.home() / ".agentkd" / "models" / "qwen2.5-coder-0.5b.gguf"))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results: dict[str, Any] = {"model": Path(args.model).name, "threads": args.threads, "load_before": load()}
    steps = ["decode", "ttft", "overhead", "server", "edge"] if args.what == "all" else [args.what]
    for step in steps:
        t0 = time.perf_counter()
        if step == "decode":
            results[step] = bench_decode(args.model, args.threads, tokens=128, rounds=5)
        elif step == "ttft":
            results[step] = bench_ttft(args.model, args.threads, n=12)
        elif step == "overhead":
            results[step] = bench_overhead(args.model, args.threads, n=6)
        elif step == "server":
            results[step] = bench_server(args.model, args.threads, args.levels, per_level=8)
        else:
            results[step] = bench_edge(args.model)
        results[step]["wall_s"] = time.perf_counter() - t0
        results[step]["load_after"] = load()
        print(json.dumps({step: results[step]}, indent=1), flush=True)
    results["load_after"] = load()
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
