"""Benchmark the strategy library at 1k, 10k and 100k entries; writes benchmarks/library.md.

Run: nice python benchmarks/library_bench.py            (all sizes, a few minutes on 2 cores)
     python benchmarks/library_bench.py --sizes 1000    (a quick look)

The text is synthetic. To keep the run short, a pool of distinct texts is embedded once and each entry
takes a pool vector plus a small random perturbation (re-normalised); the output says so. Each text
belongs to one task (its vocabulary is the task's), so a question about a task lands among that task's
entries, as it does in a real library; the "unrelated task" row is the worst case, where it does not.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from agentkd.library import Library
from agentkd.library.embedder import get_embedder
from agentkd.library.filters import Filter
from agentkd.library.retrieval import retrieve
from agentkd.schema import Strategy

TASKS = {
    "shopping": ["discount", "coupon", "receipt", "price", "sale", "cart"],
    "finance": ["interest", "loan", "deposit", "rate", "savings", "mortgage"],
    "travel": ["train", "flight", "timetable", "layover", "time zone", "ticket"],
    "cooking": ["recipe", "oven", "ingredients", "servings", "grams", "dough"],
    "tools": ["JSON", "API", "arguments", "function call", "schema", "endpoint"],
    "sql": ["table", "join", "orders", "customers", "index", "query"],
    "physics": ["velocity", "falling", "acceleration", "friction", "energy", "mass"],
    "medicine": ["dosage", "body weight", "tablet", "mg", "patient", "schedule"],
    "geometry": ["area", "triangle", "circle", "perimeter", "angle", "plot"],
    "probability": ["cards", "dice", "chance", "draw", "coin", "odds"],
    "calendar": ["days", "months", "weekday", "leap year", "date", "deadline"],
    "retail": ["refund", "return", "damaged item", "warranty", "exchange", "store credit"],
}
ASPECTS = ["a unit change", "several dependent steps", "rounding", "a tool lookup", "percentages", "an edge case",
           "comparing options", "a distractor", "checking the result", "the order of events"]
STATUSES = ["admitted"] * 7 + ["candidate"] * 2 + ["retired"]
K = 8


def pool_texts(n: int, rng: random.Random) -> list[tuple[str, str]]:
    """``n`` distinct (task, trigger) pairs."""
    out, seen = [], set()
    tasks = list(TASKS)
    while len(out) < n:
        task = rng.choice(tasks)
        a, b = rng.sample(TASKS[task], 2)
        text = f"When a {task} question involves {a} and {b} with {rng.choice(ASPECTS)} (case {rng.randrange(10**6)})"
        if text not in seen:
            seen.add(text)
            out.append((task, text))
    return out


def percentiles(ms: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return q[49], q[94]


def timed(fn: object, args: list[object]) -> list[float]:
    out = []
    for a in args:
        t = time.perf_counter()
        fn(a)  # type: ignore[operator]
        out.append((time.perf_counter() - t) * 1000)
    return out


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def machine() -> str:
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return f"nproc {nproc} ({os.cpu_count()} CPUs visible), {cpu}"


def measure(lib: Library, questions: list[tuple[str, str]], qvec: np.ndarray, rng: random.Random) -> dict:
    """Latency percentiles of each kind of query on one library."""
    idx = list(range(len(questions)))
    others = {task: [o for o in TASKS if o != task] for task in TASKS}
    where = Filter.of("admitted", task="finance").where()
    out = {
        "unfiltered": timed(lambda i: lib.neighbours(qvec[i], K), idx),
        "product": timed(lambda i: lib.neighbours(qvec[i], K, where=Filter.of("admitted", task=questions[i][0])), idx),
        "worst": timed(lambda i: lib.neighbours(
            qvec[i], K, where=Filter.of("admitted", task=rng.choice(others[questions[i][0]]))), idx),
        "chroma_where": timed(lambda i: lib._query(qvec[i], K, where), idx[:40]),
        "search": timed(lambda q: lib.search(q[1], k=K, task=q[0]), questions),
        "mmr": timed(lambda q: retrieve(lib, q[1], k=3, task=q[0]), questions),
        "add": timed(lambda i: lib.add(Strategy(id=f"s-new-{i}", title=f"New rule {i}",
                                                trigger=f"When a new question {i}: {questions[i][1]}", body="Do Z.")),
                     idx[:20]),
    }
    return {name: percentiles(ms) for name, ms in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--pool", type=int, default=2000, help="distinct texts embedded (vectors reused beyond)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("library.md"))
    args = parser.parse_args()
    rng, nrng = random.Random(1), np.random.default_rng(1)
    embedder = get_embedder()
    pool = pool_texts(args.pool, rng)
    embedder.embed([t for _, t in pool[:64]])  # warm up
    t = time.perf_counter()
    pool_vectors = embedder.embed([t for _, t in pool])
    batch_rate = len(pool) / (time.perf_counter() - t)
    questions = [(task, f"My {task} problem has {' and '.join(rng.sample(TASKS[task], 2))}: how do I handle "
                  f"{rng.choice(ASPECTS)}?") for task in rng.choices(list(TASKS), k=args.queries)]
    embed_ms = timed(lambda q: embedder.embed([q]), [q for _, q in questions])
    qvec = embedder.embed([q for _, q in questions])
    print(f"pool of {len(pool)} texts embedded at {batch_rate:.0f} texts/s; query embedding p50 "
          f"{percentiles(embed_ms)[0]:.2f} ms", flush=True)
    rows = []
    for n in args.sizes:
        root = Path(tempfile.mkdtemp(prefix=f"bench{n}-"))
        lib = Library.open(str(root / "lib"), "bench", embedder=embedder)
        entries, vectors = [], []
        for i in range(n):
            task, text = pool[i % len(pool)]
            entries.append(Strategy(id=f"s-{i:06d}", title=f"Rule {i}", trigger=text, body="Do X, then check Y.",
                                    tasks=[task], status=rng.choice(STATUSES)))  # type: ignore[arg-type]
            v = pool_vectors[i % len(pool)] + nrng.normal(0, 0.1 / np.sqrt(384), 384).astype(np.float32)
            vectors.append(v / np.linalg.norm(v))
        t = time.perf_counter()
        lib.restore(entries, reason="benchmark", vectors=vectors)
        load_s = time.perf_counter() - t
        rows.append({"n": n, "load_s": load_s, **measure(lib, questions, qvec, rng)})
        rows[-1].update(disk_mb=du(root) / 1e6, rss_mb=rss_mb())
        print(rows[-1], flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    write_report(args, rows, batch_rate, percentiles(embed_ms), peak)


def write_report(args: argparse.Namespace, rows: list[dict], rate: float, embed: tuple[float, float],
                 peak: float) -> None:
    f2 = lambda p: f"{p[0]:.2f} / {p[1]:.2f}"  # noqa: E731
    lines = [
        "# Strategy library benchmark",
        "",
        f"- command: `{' '.join(['nice python benchmarks/library_bench.py', *sys.argv[1:]])}`",
        f"- machine: {machine()}, Python {platform.python_version()}, shared with other work while it ran "
        f"(load average {os.getloadavg()[0]:.1f} at the end)",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- synthetic entries: {args.pool} distinct texts embedded once; entries beyond that reuse a pool vector "
        "plus a small random perturbation (cosine ~0.99 to it), re-normalised",
        f"- {args.queries} held-out questions, {K} results per query; 70% admitted, 20% candidate, 10% retired; "
        f"{len(TASKS)} tasks",
        "",
        f"Query embedding (one text): p50 {embed[0]:.2f} ms, p95 {embed[1]:.2f} ms (target ≤ 5 ms). "
        f"Batch embedding: {rate:.0f} texts/s (target ≥ 350).",
        "",
        "Latencies are p50 / p95 in ms. *admitted + task* is the product's filter (status=admitted, the "
        "question's task): over-fetch without `where`, filter on flat metadata; *unrelated task* forces the "
        "`where` fallback; *Chroma where* is a plain Chroma query with that `where`, for comparison.",
        "",
        "| entries | load (s) | unfiltered | admitted + task | unrelated task (worst) | Chroma where | "
        "search (embed + query) | retrieve (MMR, k=3) | add one | disk (MB) | RSS (MB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {r['load_s']:.1f} | {f2(r['unfiltered'])} | {f2(r['product'])} | {f2(r['worst'])} | "
            f"{f2(r['chroma_where'])} | {f2(r['search'])} | {f2(r['mmr'])} | {f2(r['add'])} | "
            f"{r['disk_mb']:.0f} | {r['rss_mb']:.0f} |"
        )
    lines += ["", f"Peak RSS of the whole run: {peak:.0f} MB (the embedder, Chroma and every size's index).", ""]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
