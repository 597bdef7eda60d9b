"""What a person sees: live build progress, the before/after table, and an answer with its sources."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agentkd.build import BuildReport
from agentkd.student import Answer


class BuildDisplay:
    """A rich progress display fed by the build's progress events."""

    def __init__(self, console: Console, *, iterations: int, batch_size: int) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.build = self.progress.add_task("build: attempts", total=iterations * batch_size, info="")
        self.eval: Any = None
        self.passed = self.total = self.admitted = 0

    def __enter__(self) -> BuildDisplay:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def _info(self) -> str:
        return f"pass {self.passed}/{self.total}  admitted {self.admitted}"

    def update(self, event: str, **data: Any) -> None:
        if event == "pull":
            self.console.print(f"assembling model {data['model']} (once)…")
        elif event == "attempt":
            self.progress.advance(self.build)
        elif event == "judged":
            self.passed += data["passed"]
            self.total += data["total"]
        elif event == "admitted":
            self.admitted += 1
            self.console.print(f"  [green]+ admitted[/] {data['title']}")
        elif event == "rejected":
            self.console.print(f"  [dim]- rejected {data['title']}: {data['reason']}[/]")
        elif event == "skipped":
            self.console.print(f"  [yellow]! skipped {data['scenario']}: {data['reason']}[/]")
        elif event == "eval":
            self.eval = self.progress.add_task("held-out eval", total=data["n"], info="")
        elif event == "eval_item" and self.eval is not None:
            self.progress.advance(self.eval)
        self.progress.update(self.build, info=self._info())


def print_report(console: Console, report: BuildReport) -> None:
    state = report.state
    table = Table(title=f"Held-out accuracy on {report.task} (same {report.arms[0].total} items, same seed)")
    table.add_column("arm")
    table.add_column("accuracy", justify="right")
    table.add_column("correct", justify="right")
    table.add_column("s/item", justify="right")
    for arm in report.arms:
        table.add_row(
            arm.name, f"{arm.accuracy:.0%}", f"{arm.correct}/{arm.total}", f"{arm.seconds / max(arm.total, 1):.1f}"
        )
    console.print(table)
    tu = report.teacher_usage
    console.print(
        f"teacher {report.teacher}: {tu.calls} calls, {tu.tokens} tokens, "
        f"${tu.cost_usd:.4f}; student {report.student}; library {report.library}: "
        f"{len(state.admitted)} admitted, {len(state.rejected)} rejected; {report.seconds:.0f}s; log {report.runlog}"
    )


def print_answer(console: Console, answer: Answer) -> None:
    if answer.strategies:
        table = Table(title="strategies used", show_lines=False)
        table.add_column("id")
        table.add_column("score", justify="right")
        table.add_column("title")
        for s, score in answer.strategies:
            table.add_row(s.id, f"{score:.2f}", s.title)
        console.print(table)
    else:
        console.print("[dim]no strategies retrieved[/]")
    for call in answer.tool_calls:
        arg = call.arguments.get("code") or call.arguments
        console.print(Panel(f"{arg}\n[dim]→ {call.result[:300]}[/]", title=f"tool: {call.name}", expand=False))
    console.print(Panel(answer.text or "(no answer)", title="answer", border_style="green", expand=False))
    console.print(f"[dim]{answer.completion_tokens} tokens, {answer.seconds:.1f}s[/]")
