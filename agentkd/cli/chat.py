"""``agentkd chat`` (a streaming REPL) and ``agentkd serve`` (the OpenAI-compatible server), wired from settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel

from agentkd.config import Settings, get_settings

if TYPE_CHECKING:
    from agentkd.student.agent_loop import Answer, Event
    from agentkd.student.student import Student

console = Console()


def _help(field: str) -> str:
    """A setting's description, so --help and the environment never disagree."""
    return str(Settings.model_fields[field].description)


StudentOpt = Annotated[
    str | None,
    typer.Option("--student", help="Student: catalog name, .gguf path or hf:<owner>/<repo>/<file>.gguf "
                 "(env AGENTKD_STUDENT)."),
]  # fmt: skip
LibraryOpt = Annotated[
    str | None,
    typer.Option("--library", help="Library directory or http://host:port of a Chroma server (env AGENTKD_LIBRARY)."),
]
CollectionOpt = Annotated[str | None, typer.Option("--collection", help="Collection inside the library.")]
NoLibraryOpt = Annotated[bool, typer.Option("--no-library", help="Answer without strategies (the bare student).")]
TaskOpt = Annotated[str | None, typer.Option(help="Restrict retrieval to strategies of this task.")]
SamplesOpt = Annotated[int | None, typer.Option(help=Settings.model_fields["samples"].description)]
MaxStepsOpt = Annotated[int | None, typer.Option(help=Settings.model_fields["max_steps"].description)]
FirstThoughtOpt = Annotated[
    bool, typer.Option("--first-thought/--no-first-thought", help="Open each reply with the top strategy's first step.")
]


def open_student(
    settings: Settings, *, use_library: bool = True, samples: int | None = None, first_thought: bool = False,
    max_steps: int | None = None, task: str | None = None,
) -> Student:
    """The student ``build`` and ``eval`` measure (``agentkd.parts.open_student``), with ``task``'s tools."""
    from agentkd.parts import load_task
    from agentkd.parts import open_student as root

    return root(settings, task=load_task(task) if task else None, use_library=use_library, samples=samples,
                first_thought=first_thought, max_steps=max_steps)


def show_turn(out: Console, events: Iterator[Event]) -> Answer | None:
    """Print a turn as it streams: strategies, the model's text, tool calls and their results, a footer."""
    from agentkd.student.agent_loop import Done, StrategiesRetrieved, TextDelta, ToolCallFinished, ToolCallStarted

    answer, step = None, -1
    for event in events:
        if isinstance(event, StrategiesRetrieved):
            if event.strategies:
                used = ", ".join(f"[cyan]{s.id}[/] {s.title} [dim]({score:.2f})[/]" for s, score in event.strategies)
                out.print(f"[dim]strategies:[/] {used}")
            else:
                out.print("[dim]strategies: none retrieved[/]")
        elif isinstance(event, TextDelta):
            if event.step != step and step >= 0:
                out.print()
            step = event.step
            out.print(event.text, end="", markup=False, highlight=False, soft_wrap=True)
        elif isinstance(event, ToolCallStarted) and not event.code:
            out.print(f"\n[yellow]→ {event.name}[/]({_args(event.arguments)})")
        elif isinstance(event, ToolCallFinished):
            rec = event.record
            style, mark = ("red", "✗") if rec.error else ("green", "✓")
            body = rec.result.strip()[:1500] or "(no output)"
            out.print()
            out.print(Panel(body, title=f"{rec.name} {mark}", border_style=style, expand=False), markup=False)
        elif isinstance(event, Done):
            answer = event.answer
            ttft = answer.timings.get("ttft", 0.0)
            out.print(
                f"\n[dim]{answer.completion_tokens} tokens · {answer.seconds:.1f}s · first token {ttft:.2f}s"
                f" · {answer.cached_tokens}/{answer.prompt_tokens} prompt tokens cached[/]"
            )
    return answer


def _args(arguments: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in arguments.items())


def repl(student: Student, *, task: str | None = None, instructions: str = "", out: Console = console) -> None:
    """Read a message, stream the student's turn, repeat. ``/reset`` forgets the conversation, ``/exit`` leaves."""
    out.print(f"[bold]agentkd chat[/] with {student.model_spec}. Commands: /reset, /exit.")
    history: list[dict[str, Any]] = []
    while True:
        try:
            line = out.input("[bold cyan]you>[/] ").strip()
        except (EOFError, KeyboardInterrupt):
            out.print()
            return
        if not line:
            continue
        if line in ("/exit", "/quit"):
            return
        if line == "/reset":
            history.clear()
            out.print("[dim]conversation reset[/]")
            continue
        if line.startswith("/"):
            out.print("[yellow]unknown command[/]; use /reset or /exit")
            continue
        history.append({"role": "user", "content": line})
        events = student.chat(history, stream=True, task=task, instructions=instructions)
        try:
            answer = show_turn(out, events)
        except KeyboardInterrupt:
            events.close()  # type: ignore[attr-defined]
            history.pop()
            out.print("\n[yellow]interrupted[/]")
            continue
        history.append({"role": "assistant", "content": answer.text if answer else ""})


def chat_command(
    task: TaskOpt = None,
    student: StudentOpt = None,
    library: LibraryOpt = None,
    collection: CollectionOpt = None,
    no_library: NoLibraryOpt = False,
    samples: SamplesOpt = None,
    first_thought: FirstThoughtOpt = False,
    max_steps: MaxStepsOpt = None,
) -> None:
    """Talk with the student: a streaming REPL that shows the strategies and tool calls it used (/reset, /exit)."""
    settings = get_settings(student=student, library=library, collection=collection)
    instructions = ""
    if task:
        from agentkd.tasks import get_task

        instructions = get_task(task).instructions
    stu = open_student(settings, use_library=not no_library, samples=samples, first_thought=first_thought,
                       max_steps=max_steps, task=task)  # fmt: skip
    repl(stu, task=task, instructions=instructions)


def serve_command(
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0 for every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    task: TaskOpt = None,
    student: StudentOpt = None,
    library: LibraryOpt = None,
    collection: CollectionOpt = None,
    no_library: NoLibraryOpt = False,
    samples: SamplesOpt = None,
    first_thought: FirstThoughtOpt = False,
    max_steps: MaxStepsOpt = None,
    queue_limit: Annotated[int, typer.Option(help="Requests that may wait for the model before 503.")] = 64,
    api_key: Annotated[str | None, typer.Option(help=_help("api_key") + " (env AGENTKD_API_KEY)")] = None,
    allowed_host: Annotated[list[str] | None, typer.Option(help=_help("allowed_hosts") + " Repeatable "
                                                           "(env AGENTKD_ALLOWED_HOSTS).")] = None,
    max_request_mb: Annotated[float | None, typer.Option(help=_help("max_request_mb"))] = None,
) -> None:
    """Serve the student as an OpenAI-compatible API: /v1/chat/completions (streaming, tools) and /v1/models."""
    import uvicorn

    from agentkd.server import create_app
    from agentkd.server.access import allowed_hosts

    settings = get_settings(student=student, library=library, collection=collection, api_key=api_key,
                            max_request_mb=max_request_mb)
    hosts = allowed_hosts(host, [*settings.allowed_hosts.split(","), *(allowed_host or [])])
    stu = open_student(settings, use_library=not no_library, samples=samples, first_thought=first_thought,
                       max_steps=max_steps, task=task)  # fmt: skip
    where = "no library" if no_library else f"library {settings.library_path} ({settings.collection})"
    key = settings.api_key.get_secret_value() if settings.api_key else None
    console.print(f"agentkd serving {stu.model_spec} ({where}) on http://{host}:{port}/v1"
                  + (" (API key required)" if key else ""), highlight=False)
    # an in-process student serves batch_width requests at once as sequences of one batch (continuous batching)
    width = settings.batch_width if not settings.student_api_base and hasattr(stu.llm, "batched") else 1
    app = create_app(stu, queue_limit=queue_limit, api_key=key, allowed_hosts=hosts,
                     max_request_bytes=int(settings.max_request_mb * (1 << 20)), width=width)
    uvicorn.run(app, host=host, port=port, log_level="warning")
