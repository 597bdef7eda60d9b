"""What a person sees: live build progress, the before/after table, and an answer with its sources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agentkd.distill.build import BuildReport
from agentkd.student.student import Answer


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
        self.build = self.progress.add_task("build: attempts", total=None, info="")
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
        elif event == "scenarios":
            total = self.progress.tasks[self.build].total or 0
            self.progress.update(self.build, total=total + data["n"])
        elif event == "categories":
            self.console.print(f"job: {len(data['chosen'])} categories of {data['task']} "
                               f"(--categories): {', '.join(data['chosen'])}", highlight=False)
        elif event == "budget":
            self.console.print(f"time budget: {data['seconds'] / 60:.1f} min for the loop (the student-alone arm took "
                               f"{data['arm_seconds']:.0f}s; the with-library arm's share is kept back as entries "
                               "are written)")
        elif event == "plan":
            self.progress.update(self.build, description=f"build: round {data['iteration'] + 1}")
        elif event == "stop":
            self.console.print(f"[yellow]loop ends:[/] {data['reason']}")
        elif event == "harmful":
            self.console.print(f"  [red]! entries {', '.join(data['ids'])} were in the way on {data['scenario']}[/]")
        elif event == "difficulty":
            self.console.print(f"  [cyan]difficulty raised for {', '.join(data['raised'])}[/]")
        elif event == "start" and data.get("resumed"):
            self.console.print(f"resuming run {data['run_id']}")
        elif event == "eval":
            if self.eval is not None:
                self.progress.update(self.eval, visible=False)
            self.eval = self.progress.add_task(data.get("name", "held-out eval"), total=data["n"], info="")
        elif event == "eval_item" and self.eval is not None:
            self.progress.advance(self.eval)
        self.progress.update(self.build, info=self._info())


def plot_report(report: BuildReport, path: Path) -> Path | None:
    """Per-round pass rate and cumulative admitted entries, plus held-out accuracy by arm, as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    stats = report.state.stats
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    rounds = [s.iteration + 1 for s in stats]
    left.plot(rounds, [s.passed / max(s.total, 1) for s in stats], marker="o", label="pass rate (train batch)")
    cumulative, total = [], 0
    for s in stats:
        total += s.admitted
        cumulative.append(total)
    twin = left.twinx()
    twin.bar(rounds, cumulative, alpha=0.25, color="tab:green", label="admitted (cumulative)")
    left.set_xlabel("round")
    left.set_xticks(rounds)
    left.set_ylim(0, 1)
    left.set_title("build")
    left.legend(loc="upper left", fontsize=8)
    twin.legend(loc="upper right", fontsize=8)
    names = [a.name for a in report.arms]
    right.bar(names, [a.accuracy for a in report.arms], color=["tab:gray", "tab:blue"][: len(names)])
    right.set_ylim(0, 1)
    right.set_title(f"held-out accuracy ({report.arms[0].total if report.arms else 0} items)")
    for i, a in enumerate(report.arms):
        right.text(i, a.accuracy + 0.02, f"{a.accuracy:.0%}", ha="center")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def print_report(console: Console, report: BuildReport) -> None:
    state = report.state
    rounds = Table(title=f"Build {report.run_id}: rounds")
    for col in ("round", "pass", "candidates", "admitted", "teacher tokens", "spend"):
        rounds.add_column(col, justify="right")
    for s in state.stats:
        rounds.add_row(
            str(s.iteration + 1),
            f"{s.passed}/{s.total}",
            str(s.candidates),
            str(s.admitted),
            f"{s.teacher_tokens:,}",
            f"${s.cost_usd:.4f}",
        )
    console.print(rounds)
    if state.stop_reason:
        console.print(f"[yellow]loop ended: {state.stop_reason}[/]")
    if report.arms and report.arms[0].total:
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
    else:
        console.print("no held-out measurement (--heldout 0): measure the library with `agentkd eval --arms "
                      "student,student+library`", highlight=False)
    if len(report.arms) == 2 and report.arms[1].reused:
        last = report.arms[1]
        console.print(f"{last.reused} of {last.total} items retrieved no entry: their prompt is the student-alone "
                      "prompt, so that answer stands", highlight=False)
    if len(report.arms) == 2 and report.arms[0].total:
        from agentkd.eval.stats import paired_bootstrap

        alone, used = ([float(bool(i["correct"])) for i in arm.items] for arm in report.arms)
        d = paired_bootstrap(alone, used, seed=0)
        console.print(f"library vs alone: {d.diff.value * 100:+.0f} pp, paired 95% CI [{d.diff.low * 100:+.0f}, "
                      f"{d.diff.high * 100:+.0f}]; {d.wins} items won, {d.losses} lost"
                      + (" (the interval spans zero: not a measured lift)" if d.diff.low <= 0 <= d.diff.high else ""),
                      highlight=False)
    coverage = report.coverage
    if coverage is not None:
        covered, total = coverage
        console.print(f"worked examples: {covered} of {total} categories have an admitted one", highlight=False)
    tu = report.teacher_usage
    plot = plot_report(report, Path(report.runlog).with_suffix(".png")) if report.runlog else None
    console.print(
        f"teacher {report.teacher}: {tu.calls} calls, {tu.tokens} tokens, "
        f"${tu.cost_usd:.4f}; student {report.student}; library {report.library}: "
        f"{len(state.admitted)} admitted, {len(state.rejected)} rejected; {report.seconds:.0f}s; log {report.runlog}"
        + (f"; plot {plot}" if plot else "")
    )
    tested = sum(bool(o.candidate) for o in state.outcomes)
    console.print(
        f"admission rule: one-sided sign test on paired items at alpha={report.alpha}; {tested} candidates tested, "
        f"so up to {report.alpha * tested:.2f} admissions expected by chance (alpha x candidates tested)",
        highlight=False,
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
