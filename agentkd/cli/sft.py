"""``agentkd export-sft``: verified teacher tool-use trajectories as fine-tuning data, with progress and a summary."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agentkd.config import get_settings

if TYPE_CHECKING:
    from agentkd.sft.export import ExportReport

console = Console()


class SftFormat(StrEnum):
    openai = "openai"
    sharegpt = "sharegpt"
    hf = "hf"


class GroupBy(StrEnum):
    category = "category"
    scenario = "scenario"


class _Display:
    """A progress bar over the scenarios the teacher works on, fed by the export's events."""

    def __init__(self) -> None:
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console)
        self.job: Any = None
        self.kept = self.dropped = 0

    def __call__(self, event: str, **data: Any) -> None:
        if event == "scenarios":
            console.print(f"scenarios: {data['source']}")
            self.job = self.bar.add_task("teacher trajectories", total=data["n"], info="")
        elif event == "scenario" and self.job is not None:
            self.kept += data["kept"]
            self.dropped += not data["kept"]
            self.bar.update(self.job, advance=1, info=f"verified {self.kept}  dropped {self.dropped}")
        elif event == "write":
            console.print("checking records against the format and the student's chat template…")


def export_sft(
    format: Annotated[SftFormat, typer.Option("--format", help="Record format: openai (chat fine-tuning JSONL), "
                                              "sharegpt (LLaMA-Factory, with tool calls) or hf (messages JSONL).")],
    out: Annotated[Path, typer.Option("--out", help="Directory for train/validation JSONL, the card and provenance.")],
    run: Annotated[str | None, typer.Option("--run", help="Use a build run's scenarios, teacher, student and "
                                            "library: a run id, or 'last'.")] = None,
    task: Annotated[str | None, typer.Option("--task", help="Draw train scenarios from this task instead.")] = None,
    n: Annotated[int | None, typer.Option("--n", help="How many scenarios (with --run: the first N).")] = None,
    trajectories: Annotated[Path | None, typer.Option(
        "--trajectories", help="Write the trajectories.jsonl of an earlier export again, without the teacher.")] = None,
    with_strategies: Annotated[bool, typer.Option(
        "--with-strategies/--no-strategies", help="Put the strategies the student would retrieve in the "
        "teacher's prompt.")] = True,
    conditioned: Annotated[bool | None, typer.Option(
        "--conditioned/--strategy-free", help="Keep those strategies in the records' system prompt, or train the "
        "behaviour without them (default: as --with-strategies).")] = None,
    first_thought: Annotated[bool, typer.Option(
        "--first-thought", help="Open the first assistant turn with the student's first thought (the top "
        "strategy's first step, as Student(first_thought=True) prefills it).")] = False,
    code_blocks: Annotated[bool, typer.Option(
        "--code-blocks", help="Write the code tool as ```python blocks, as agentkd's student uses it.")] = False,
    max_tokens: Annotated[int | None, typer.Option(
        "--max-tokens", help="Drop records longer than this in the student's tokens (default: its n_ctx).")] = None,
    max_steps: Annotated[int, typer.Option(help="Teacher turns per problem before it must answer.")] = 6,
    tool_first: Annotated[bool, typer.Option(help="The teacher's first turn must call a tool (small teachers "
                                             "otherwise often write the call as text).")] = True,
    val_fraction: Annotated[float, typer.Option(help="Share of groups that go to validation.")] = 0.1,
    group_by: Annotated[GroupBy, typer.Option(help="Keep together in one split: a category (for gsm_symbolic, "
                                              "its template) or only a scenario.")] = GroupBy.category,
    workers: Annotated[int, typer.Option(help="Teacher episodes in flight at once (a local teacher runs one at "
                                         "a time anyway).")] = 4,
    student: Annotated[str | None, typer.Option(
        "--student", help="Target student whose chat template and tokens the records are checked with.")] = None,
    teacher: Annotated[str | None, typer.Option(help="Teacher as a litellm model name (default: the run's, "
                                                "else AGENTKD_TEACHER).")] = None,
    library: Annotated[str | None, typer.Option("--library", help="Strategy library (default: the run's).")] = None,
    collection: Annotated[str | None, typer.Option("--collection", help="Collection inside the library.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for drawing scenarios and for the split.")] = None,
) -> None:
    """Export verified teacher tool-use trajectories as fine-tuning data for the student.

    The teacher acts as the agent with the student's tools on a build's scenarios (or a task's); a
    trajectory is kept only when the task's ground truth verifies its answer. Each record is checked
    against its format and rendered with the student's own chat template before it is written.
    """
    from agentkd.sft.export import ExportConfig
    from agentkd.sft.formats import RecordOptions
    from agentkd.sft.pipeline import ExportRequest, run_export

    settings = get_settings()
    overrides = {"student": student, "teacher": teacher, "library": library, "collection": collection, "seed": seed}
    request = ExportRequest(out=out, run=run, task=task, n=n, trajectories=trajectories,
                            with_strategies=with_strategies, max_steps=max_steps, tool_first=tool_first,
                            workers=workers)
    options = RecordOptions(conditioned=with_strategies if conditioned is None else conditioned,
                            first_thought=first_thought, code_blocks=code_blocks)
    config = ExportConfig(format=format.value, options=options, max_tokens=max_tokens,
                          val_fraction=val_fraction, group_by=group_by.value, seed=seed or settings.seed)
    display = _Display()
    with display.bar:
        report = run_export(settings, request, config, overrides=overrides, progress=display)
    print_summary(report)


def print_summary(report: ExportReport) -> None:
    table = Table(title=f"export-sft → {report.out} ({report.format})")
    for col, justify in (("", "left"), ("reason", "left"), ("records", "right"), ("example", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    table.add_row("[green]kept[/]", "train", str(report.count("train")), "")
    table.add_row("[green]kept[/]", "validation", str(report.count("validation")), "")
    for stage, reason, count, detail in report.dropped_by_reason():
        table.add_row(f"[red]dropped[/] ({stage})", reason, str(count), detail[:80])
    console.print(table)
    console.print(f"{report.collected} scenarios → {report.verified} verified → {len(report.written)} written. "
                  f"Card: {report.out / 'README.md'}")
    if not report.written:
        console.print("[yellow]No record was written[/]: the table says why; dropped.jsonl has every reason.")
