"""``agentkd library gate``: the whole library against the student alone on the validation split, per category."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from agentkd.config import Settings, get_settings
from agentkd.errors import ConfigError, GateFailed
from agentkd.eval.gate import GATE_ALPHA, GATE_ITEMS

if TYPE_CHECKING:
    from agentkd.eval.gate import GateReport

console = Console()


def show_gate(report: GateReport) -> None:
    table = Table(box=box.SIMPLE_HEAD,
                  title=f"pack gate: {report.library} vs the student alone ({report.task}, {report.split}, "
                        f"{report.n} items, seed {report.seed}, one-sided sign test at alpha={report.alpha})")
    rows = report.groups()
    table.add_column("category", no_wrap=True, min_width=max((len(c.category) for c in rows), default=8))
    for col in ("items", "alone", "library", "helped", "hurt", "p worse", "verdict"):
        table.add_column(col, justify="left" if col == "verdict" else "right", no_wrap=True)
    for c in rows:
        name = f"[bold]{c.category}[/]" if c is report.overall else c.category
        table.add_row(name, str(c.n), str(c.alone), str(c.with_library), str(c.helped), str(c.hurt),
                      f"{c.p_worse:.3f}", "[red]worse[/]" if c.worse else "ok")
    console.print(table)
    for c in rows:  # below the table, so that a narrow terminal never hides them
        if c.worse:
            console.print(f"[red]worse[/] {c.category}: entries retrieved on its lost items: "
                          f"{', '.join(c.blamed) or '(none)'}")


def gate_pack(settings: Settings, *, task: str, library: str, n: int, alpha: float, out: Path, retire: bool,
              pack: Path | None = None, retrieval_task: str | None = None, resume: bool = False) -> GateReport:
    """Run the gate, show it, retire the blamed entries (unless ``retire`` is off); raise GateFailed if worse."""
    from agentkd.eval.gate import retire_blamed, run_gate
    from agentkd.library import Library

    report = run_gate(settings, task=task, library=library, n=n, alpha=alpha, out=out, retrieval_task=retrieval_task,
                      resume=resume)
    show_gate(report)
    if report.passed:
        console.print(f"[green]✓[/] not worse than the student alone in any of {len(report.categories)} categories, "
                      "nor over all items together")
        return report
    if retire:
        lib = None
        if pack is None:
            collection, _, location = library.partition("@")
            lib = Library.open(location or settings.library_path, collection)
        for sid in retire_blamed(report, pack=pack, lib=lib):
            console.print(f"[yellow]retired[/] {sid}")
    (out / "gate.json").write_text(report.model_dump_json(indent=2), encoding="utf-8")
    retired = f"; retired {', '.join(report.retired)}" if report.retired else ""
    raise GateFailed(f"the library is worse than the student alone on {', '.join(report.worse)}{retired}",
                     hint="run the gate again on what is left before writing the pack or its manifest"
                     if report.retired else "retire the blamed entries (run without --dry-run) and gate again")


def gate_command(
    task: Annotated[str, typer.Option(help="Task source with a validation split (gsm_symbolic, any reasoning-gym "
                                      "name, or a source with validation_split = True).")] = "gsm_symbolic",
    pack: Annotated[Path | None, typer.Option(help="Gate this pack directory (strategies/<pack>); without it, "
                                              "the live --library/--collection.")] = None,
    n: Annotated[int, typer.Option("--n", help="Validation items; both arms answer the same ones.")] = GATE_ITEMS,
    alpha: Annotated[float, typer.Option(help="Level of the one-sided sign test per category: a category is worse "
                                         "when P(that many losses by chance) <= alpha.")] = GATE_ALPHA,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report only; retire nothing.")] = False,
    out: Annotated[Path | None, typer.Option(help="Output directory (default $AGENTKD_HOME/gates/<time>).")] = None,
    student: Annotated[str | None, typer.Option(help="Student model (env AGENTKD_STUDENT).")] = None,
    library: Annotated[str | None, typer.Option(help="Library directory or http://host:port.")] = None,
    collection: Annotated[str | None, typer.Option(help="Collection inside the library.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for the validation items.")] = None,
    retrieval_task: Annotated[str | None, typer.Option(help="Retrieve entries tagged with this task ('any' for "
                                                       "all), as agentkd eval does.")] = None,
) -> None:
    """Measure the whole library against the student alone on the task's validation split, per category.

    Both arms answer the same validation items (neither builds nor held-out evaluation use them). Per
    category, only items one arm got right and the other wrong count: a category is worse when the
    one-sided exact sign test on those pairs says the library hurts at --alpha (0.10: with no wins, 4
    losses fail a category), and the same test runs on all items together (losses spread over many small
    categories fail the whole library). The entries retrieved on the items the library lost in a worse category are
    retired (the student retrieves by the question and does not know its category, so an entry cannot be
    kept out of one category only); exit code 1 until the gate passes. `agentkd eval --write-manifest`
    runs this gate first and writes nothing when it fails.

    Example: agentkd library gate --pack strategies/math --task gsm_symbolic --n 60
    """
    settings = get_settings(student=student, library=library, collection=collection, seed=seed)
    if pack is not None and not pack.is_dir():
        raise ConfigError(f"no pack directory {pack}", hint="pass --pack strategies/<pack>")
    source = str(pack) if pack is not None else f"{settings.collection}@{settings.library_path}"
    out = out or settings.home / "gates" / time.strftime("%Y%m%d-%H%M%S")
    gate_pack(settings, task=task, library=source, n=n, alpha=alpha, out=out, retire=not dry_run, pack=pack,
              retrieval_task=retrieval_task)
