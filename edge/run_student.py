"""Run a student on a laptop or a phone from a library bundle, with only llama-cpp-python and numpy installed.

    python edge/run_student.py --model qwen2.5-coder-0.5b.gguf --bundle ./bundle            # a REPL
    python edge/run_student.py --model M.gguf --bundle ./bundle -q "What is 15% of 80?"    # one question
    python edge/run_student.py --model M.gguf --bundle ./bundle -q "..." --bench           # + timings, RSS

It uses the pieces of agentkd that need nothing else: ``agentkd.models.llamacpp`` and ``agentkd.models.chat_template``
(llama.cpp), ``agentkd.library.bundle_reader`` (numpy retrieval), ``agentkd.prompts`` (jinja2, which
llama-cpp-python installs) and the calculator tool (standard library). No chromadb, onnxruntime,
pydantic, LangGraph or litellm. The prompt has the same layout as the full student's (intro and tools,
then strategies by id, then the question), so llama.cpp's KV cache reuses the strategies from one
question to the next.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from agentkd.library.bundle_reader import BundleRetriever  # noqa: E402
from agentkd.models.chat_template import parse_loose_tool_call  # noqa: E402
from agentkd.models.llamacpp import ChatResult, LocalLLM  # noqa: E402
from agentkd.prompts import render  # noqa: E402
from agentkd.tools.calculator import calculator  # noqa: E402


def field(strategy: Any, name: str) -> Any:
    """A strategy's field, whether the reader returned a dict (edge) or a Strategy model (full install)."""
    return strategy[name] if isinstance(strategy, dict) else getattr(strategy, name)


def render_entry(s: Any) -> str:
    """The same text as ``agentkd.schema.Strategy.render``."""
    hints = "".join(f"\n  - tool: {h}" for h in field(s, "tool_hints") or [])
    return f"[{field(s, 'id')}] {field(s, 'title')}\n  When: {field(s, 'trigger')}\n  Do: {field(s, 'body')}{hints}"


class EdgeStudent:
    """Retrieve → pack → answer with the calculator, streaming text to ``out``."""

    def __init__(
        self, model: Path, bundle: Path, *, threads: int | None, n_ctx: int, k: int, budget: int, batch: int = 128
    ) -> None:
        self.llm = LocalLLM(model, n_ctx=n_ctx, n_threads=threads, n_batch=batch)
        self.retriever = BundleRetriever(bundle)
        self.k, self.budget = k, budget
        self.tools = [calculator.spec()]

    def strategies(self, question: str, task: str | None) -> list[Any]:
        chosen, used = [], 0
        for hit in self.retriever.search(question, k=self.k, task=task):
            cost = self.llm.count_tokens(render_entry(hit.strategy)) + 1
            if used + cost <= self.budget:
                chosen.append(hit.strategy)
                used += cost
        return sorted(chosen, key=lambda s: field(s, "id"))

    def answer(
        self, question: str, *, task: str | None = None, max_steps: int = 3, out: Any = sys.stdout
    ) -> dict[str, Any]:
        t0 = time.perf_counter()
        chosen = self.strategies(question, task)
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": render("student_system.md", tool_names=["calculator"], system="")}
        ]
        if chosen:
            entries = [render_entry(s) for s in chosen]
            messages.append({"role": "system", "content": render("student_strategies.md", strategies=entries)})
        messages.append({"role": "user", "content": question})
        print(f"[strategies: {', '.join(field(s, 'id') for s in chosen) or 'none'}]", file=out)
        t_call = time.perf_counter()
        first: ChatResult | None = None
        outputs: list[str] = []
        result: ChatResult | None = None
        for step in range(max_steps):
            choice = "none" if step == max_steps - 1 else "auto"
            for item in self.llm.chat_stream(messages, tools=self.tools, tool_choice=choice, max_tokens=300):
                if isinstance(item, str):
                    print(item, end="", flush=True, file=out)
                else:
                    result = item
            assert result is not None
            first = first or result
            messages.append(result.message)
            if not result.tool_calls:
                break
            call = result.tool_calls[0]["function"]
            output = calculator.run(call["arguments"]).output
            outputs.append(output)
            print(f"\n[calculator({call['arguments']}) → {output}]", file=out)
            messages.append({"role": "tool", "tool_call_id": result.tool_calls[0]["id"], "content": output})
        print(file=out)
        assert first is not None and result is not None
        text = result.content
        if outputs and (not text or parse_loose_tool_call(text, {"calculator"})):  # out of steps, still calling
            text = outputs[-1]
        return {
            "answer": text,
            "strategies": [field(s, "id") for s in chosen],
            "retrieve_s": round(t_call - t0, 3),
            "first_token_s": round(t_call - t0 + first.timings["ttft"], 3),
            "answer_s": round(time.perf_counter() - t0, 3),
            "cached_tokens": first.cached_tokens,
            "prompt_tokens": first.prompt_tokens,
        }


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: on Linux that keeps the parent's peak across fork and exec."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) / 1024
    except (OSError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, help="the student's .gguf file")
    parser.add_argument("--bundle", required=True, type=Path, help="a bundle from `agentkd library bundle DIR`")
    parser.add_argument("-q", "--question", help="answer this and exit (default: a REPL)")
    parser.add_argument("--task", help="only strategies of this task")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    parser.add_argument("--ctx", type=int, default=2048, help="context window in tokens")
    parser.add_argument("--k", type=int, default=3, help="strategies retrieved per question")
    parser.add_argument("--budget", type=int, default=600, help="token budget for the packed strategies")
    parser.add_argument("--batch", type=int, default=128, help="prompt tokens per evaluation batch (less: less memory)")
    parser.add_argument("--bench", action="store_true", help="print start-up time, timings and peak RSS as JSON")
    args = parser.parse_args()
    student = EdgeStudent(args.model, args.bundle, threads=args.threads, n_ctx=args.ctx, k=args.k, budget=args.budget,
                          batch=args.batch)
    ready = time.perf_counter() - _T0
    if args.question:
        stats = student.answer(args.question, task=args.task)
        if args.bench:
            peak_mb = peak_rss_mb()
            model_mb = args.model.stat().st_size / 2**20
            print(json.dumps({"ready_s": round(ready, 3), **stats, "peak_rss_mb": round(peak_mb, 1),
                              "model_mb": round(model_mb, 1), "rss_over_model_mb": round(peak_mb - model_mb, 1)}))
        return
    print(f"ready in {ready:.1f}s. Ask a question; /exit to leave.")
    while True:
        try:
            line = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return
        if line in {"/exit", "/quit"}:
            return
        if line:
            student.answer(line, task=args.task)


if __name__ == "__main__":
    main()
