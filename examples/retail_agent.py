"""Retail support agent: the student serves one tau2 retail customer with the retail pack, and tau2 grades it.

    python examples/retail_agent.py                        # a test-split task, the local default models
    python examples/retail_agent.py --task-index 3 --no-pack
    AGENTKD_TEACHER=openai/gpt-4o-mini python examples/retail_agent.py   # a hosted model plays the customer

Offline: the student (Qwen2.5-Coder-0.5B by default) is the agent, with tau2 retail's policy and its 15 tools
on a fresh copy of the store's database; the customer is simulated by the teacher model (the local
Qwen2.5-Coder-1.5B by default), as tau2 does with an LLM. The strategies come from ``strategies/retail``
(built by ``agentkd build --task tau2:retail``, see docs/packs.md). At the end the conversation is graded
the way tau2 grades it: the database's end state and the required outputs, plus the action-level score.
On two CPU cores a conversation takes a few minutes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from agentkd.config import get_settings
from agentkd.eval.packs import has_entries, import_pack
from agentkd.library import Library, MMRRetriever
from agentkd.models.runlog import RunLog
from agentkd.parts import attach_teacher, ensure_models, open_parts
from agentkd.tasks.tau2 import Tau2Task

ROOT = Path(__file__).resolve().parents[1]
console = Console()


def main(
    task_index: Annotated[int, typer.Option(help="Which task of the test split (0-based).")] = 0,
    pack: Annotated[Path, typer.Option(help="The strategy pack.")] = ROOT / "strategies" / "retail",
    no_pack: Annotated[bool, typer.Option("--no-pack", help="Answer without strategies.")] = False,
) -> None:
    settings = get_settings()
    retail = Tau2Task("retail")
    settings = settings.model_copy(update={"n_ctx": max(settings.n_ctx, retail.n_ctx)})  # policy + tools ~4.7k
    ensure_models(settings, lambda event, **data: console.print(f"assembling {data['model']} (once)…"))
    parts = open_parts(settings, RunLog(), retail)
    attach_teacher(retail, parts["teacher"], settings.teacher)
    student = parts["student"]
    if no_pack or not has_entries(pack):
        student.retriever, source = None, "no strategies" + ("" if no_pack else f" ({pack} has no entries yet)")
    else:
        location, collection, manifest = import_pack(pack, settings.home)
        library = Library.open(location, collection)
        student.retriever = MMRRetriever(library, count_tokens=student.llm.count_tokens,
                                         budget_tokens=settings.strategy_tokens)
        source = f"pack {manifest.name}: {library.count()} entries"
    scenario = retail.scenarios("heldout", task_index + 1, seed=settings.seed)[task_index]  # tau2's test split
    console.print(f"[bold]tau2 retail task {scenario.id}[/] · student {settings.student} · customer "
                  f"{settings.teacher} · {source}")
    with console.status("the customer and the agent are talking…"):
        attempt = retail.run(student, scenario)
    for m in attempt.transcript[1:]:
        if m["role"] == "user":
            console.print(f"[cyan]customer[/]: {m['content']}")
        elif m["role"] == "assistant" and m.get("content"):
            console.print(f"[green]agent[/]: {m['content']}")
        for call in m.get("tool_calls") or []:
            console.print(f"[dim]  → {call['function']['name']}({call['function']['arguments']})[/]")
        if m["role"] == "tool":
            console.print(f"[dim]  ← {str(m['content'])[:160]}[/]")
    if attempt.strategy_ids:
        console.print(f"strategies in the prompt: {', '.join(attempt.strategy_ids)}")
    verdict = retail.grade(scenario, attempt)
    console.print(("[green]passed[/]" if verdict.correct else "[red]failed[/]") + f": {verdict.reasons}")


if __name__ == "__main__":
    typer.run(main)
