"""`agentkd serve` under 1, 4 and 8 concurrent `openai` clients (#16): requests/min, p50/p95 latency, failures.

Run: nice python benchmarks/serve_bench.py                              (Qwen2.5-Coder-0.5B, width 8, 1/4/8 clients)
     python benchmarks/serve_bench.py --widths 1,8                      (the same sweep, batching off and on)
     python benchmarks/serve_bench.py --student smollm2-135m --clients 1,2 --requests 4 --max-tokens 32

The goal (#16): at 8 clients, >= 2.5x the requests/min of 1 client, and no failed request.

Each width starts its own server (`python -m agentkd.cli serve --no-library --task <task>` on a free local port,
AGENTKD_BATCH_WIDTH=<width>, a random API key), waits for /v1/models, sends one untimed warm-up request, then
runs the client sweep. A client is a thread with its own `openai.OpenAI` (max_retries=0, so no failure is hidden
behind a retry) sending its requests one after another. Questions are gsm_symbolic held-out items (seed
1234): every row (client count) and every width answers the same --requests questions, shared round-robin
among its clients, so rows differ only in how many requests are in flight.
The message is the bare question: with --task the server adds the task's instructions, the prompt `eval` measures.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import openai

from agentkd.parts import load_task


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`agentkd serve` as a subprocess, its output in a temporary file; ``stop`` terminates, then kills."""

    def __init__(self, args: argparse.Namespace, width: int) -> None:
        self.port, self.key = free_port(), secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}/v1"
        env = {**os.environ, "AGENTKD_BATCH_WIDTH": str(width), "AGENTKD_API_KEY": self.key}
        if args.threads:
            env["AGENTKD_N_THREADS"] = str(args.threads)
        cmd = [sys.executable, "-m", "agentkd.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--student", args.student, "--no-library", "--task", args.task]  # fmt: skip
        self.log = tempfile.NamedTemporaryFile("w+", prefix=f"serve-bench-{width}-", suffix=".log")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        req = urllib.request.Request(f"{self.base}/models", headers={"Authorization": f"Bearer {self.key}"})
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"agentkd serve exited with {self.proc.returncode} before it was ready:\n{self.output()}")
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        sys.exit(f"agentkd serve was not ready after {timeout:.0f} s:\n{self.output()}")

    def stop(self) -> str:
        """Stop the server; its output."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        out = self.output()
        self.log.close()
        return out


def ask(client: openai.OpenAI, question: str, args: argparse.Namespace) -> dict[str, Any]:
    """One chat completion; its latency (and time to first token when streaming), tokens, or the error."""
    rec: dict[str, Any] = {"ok": False, "error": None, "ttft_s": None, "completion_tokens": 0, "prompt_tokens": 0,
                           "started": time.time()}  # fmt: skip
    t0 = time.perf_counter()
    try:
        kw: dict[str, Any] = {"model": "student", "messages": [{"role": "user", "content": question}],
                              "temperature": 0, "max_tokens": args.max_tokens, "seed": args.seed}  # fmt: skip
        if args.stream:
            text, usage = [], None
            for chunk in client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}):
                if chunk.choices and chunk.choices[0].delta.content:
                    rec["ttft_s"] = rec["ttft_s"] or time.perf_counter() - t0
                    text.append(chunk.choices[0].delta.content)
                usage = chunk.usage or usage
            content = "".join(text)
        else:
            resp = client.chat.completions.create(**kw)
            content, usage = resp.choices[0].message.content or "", resp.usage
        rec.update(ok=True, answer=content)
        if usage is not None:
            rec.update(completion_tokens=usage.completion_tokens, prompt_tokens=usage.prompt_tokens)
    except Exception as exc:  # a failed request is a result, not a crash
        rec["error"] = f"{type(exc).__name__}: {exc}"
    rec["latency_s"] = time.perf_counter() - t0
    return rec


def sweep_run(server: Server, clients: int, questions: list[Any], args: argparse.Namespace) -> tuple[float, list]:
    """``clients`` threads sharing ``questions`` round-robin (client c sends c, c + clients, ...) one after another;
    every row gets the same questions, so rows differ only in how many requests are in flight."""
    records: list[dict[str, Any]] = []
    lock, start = threading.Lock(), threading.Barrier(clients + 1)

    def client_thread(c: int) -> None:
        client = openai.OpenAI(base_url=server.base, api_key=server.key, timeout=args.timeout, max_retries=0)
        start.wait()
        for i, sc in enumerate(questions[c::clients]):
            rec = {"clients": clients, "client": c, "index": i, "scenario": sc.id, **ask(client, sc.question, args)}
            with lock:
                records.append(rec)

    threads = [threading.Thread(target=client_thread, args=(c,), daemon=True) for c in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, records


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default); nan for no values."""
    if not values:
        return float("nan")
    xs, pos = sorted(values), (len(values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", default="qwen2.5-coder-0.5b", help="catalog name or .gguf path")
    parser.add_argument("--task", default="gsm_symbolic", help="the server's --task and the questions' source")
    parser.add_argument("--clients", default="1,4,8", help="comma list of concurrent client counts")
    parser.add_argument("--requests", type=int, default=16, help="requests per row: the same questions in every row")
    parser.add_argument("--widths", default="8", help="comma list of AGENTKD_BATCH_WIDTH values, a server each")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--seed", type=int, default=1234, help="every request's sampling seed")
    parser.add_argument("--stream", action="store_true", help="stream the replies and measure time to first token")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (AGENTKD_N_THREADS)")
    parser.add_argument("--timeout", type=float, default=900, help="per-request client timeout, s")
    parser.add_argument("--startup-timeout", type=float, default=600, help="seconds to wait for the server")
    parser.add_argument("--out", type=Path, help="append the markdown to this file")
    parser.add_argument("--json", type=Path, help="write every request's record to this file")
    args = parser.parse_args()
    counts, widths = [int(c) for c in args.clients.split(",")], [int(w) for w in args.widths.split(",")]
    per_server = 1 + args.requests
    items = load_task(args.task).scenarios("heldout", per_server, seed=1234)  # type: ignore[arg-type]
    if len({sc.question for sc in items}) < per_server:
        sys.exit(f"{args.task} held-out gave fewer than {per_server} distinct questions")
    command = shlex.join(["python3", *sys.argv])
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"{command}\ncores: {os.cpu_count()}, openai {openai.__version__}, uptime: {uptime}\n", flush=True)
    rows = [
        "| width | clients | requests | failed | wall s | requests/min | p50 latency s | p95 latency s "
        + ("| p50 TTFT s " if args.stream else "")
        + "| completion tok/s | req/min vs 1 client |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if args.stream else "") + "---:|---:|",
    ]
    raw: list[dict[str, Any]] = []
    errors: list[str] = []
    for width in widths:
        server = Server(args, width)
        try:
            t0 = time.perf_counter()
            server.wait_ready(args.startup_timeout)
            ready = time.perf_counter() - t0
            warm = ask(openai.OpenAI(base_url=server.base, api_key=server.key, timeout=args.timeout,
                                     max_retries=0), items[0].question, args)  # fmt: skip
            if not warm.get("ok"):
                errors.append(f"width {width} warm-up: {warm['error']}")
            print(f"width {width}: ready in {ready:.1f} s, warm-up {warm['latency_s']:.1f} s", flush=True)
            base = 0.0
            for clients in counts:
                wall, recs = sweep_run(server, clients, items[1:], args)
                ok = [r for r in recs if r["ok"]]
                rpm = len(ok) / wall * 60
                if clients == 1 or not base:
                    base = rpm
                lat = [r["latency_s"] for r in ok]
                ttft = [r["ttft_s"] for r in ok if r["ttft_s"] is not None]
                tps = sum(r["completion_tokens"] for r in ok) / wall
                rows.append(
                    f"| {width} | {clients} | {len(recs)} | {len(recs) - len(ok)} | {wall:.1f} | {rpm:.1f} "
                    f"| {percentile(lat, 0.5):.2f} | {percentile(lat, 0.95):.2f} "
                    + (f"| {percentile(ttft, 0.5):.2f} " if args.stream else "")
                    + f"| {tps:.1f} | {rpm / base if base else float('nan'):.2f}× |"
                )
                print(rows[-1], flush=True)
                errors += [f"width {width}, {clients} clients: {r['error']}" for r in recs if not r["ok"]]
                raw += [{"width": width, **r} for r in recs]
        finally:
            log = server.stop()
        if server.proc.returncode not in (0, -15):
            errors.append(f"width {width}: the server exited with {server.proc.returncode}")
        if errors or "error" in log.lower():
            print(f"--- agentkd serve output (width {width}) ---\n{log.strip()}\n---", flush=True)
    md = "\n".join([f"`{command}`", "", f"cores: {os.cpu_count()}, student {args.student}, max_tokens "
                    f"{args.max_tokens}, {'streaming' if args.stream else 'non-streaming'}; uptime: {uptime}",
                    "", *rows, "", *(f"- failed: {e}" for e in errors)])  # fmt: skip
    print("\n" + md)
    if args.out:
        with args.out.open("a") as f:
            f.write(md + "\n\n")
    if args.json:
        args.json.write_text(json.dumps({"command": command, "requests": raw}, indent=1))
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the server is stopped already (finally)
        sys.exit(130)
