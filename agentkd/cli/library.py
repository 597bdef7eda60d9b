"""``agentkd library ...``: export, import, diff, show, list, review, retrieve and bundle the strategy library."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agentkd.config import get_settings
from agentkd.errors import LibraryError

if TYPE_CHECKING:
    from agentkd.library import Library
    from agentkd.schema import Strategy

console = Console()
library_app = typer.Typer(
    help="The strategy library as reviewable files: export, import, diff, show, list, review; retrieve; bundle.",
    no_args_is_help=True,
)

LibraryOpt = Annotated[
    str | None,
    typer.Option(
        "--library",
        help="Library directory or http://host:port of a Chroma server "
        "(env AGENTKD_LIBRARY; default ~/.agentkd/library).",
    ),
]
CollectionOpt = Annotated[
    str | None, typer.Option("--collection", help="Collection inside the library (env AGENTKD_COLLECTION).")
]
StatusOpt = Annotated[
    str | None, typer.Option("--status", help="Only entries of this status: candidate, admitted, retired.")
]
KindOpt = Annotated[str | None, typer.Option("--kind", help="Only entries of this kind: strategy or guidance.")]
TaskOpt = Annotated[str | None, typer.Option("--task", help="Only entries tagged with this task.")]
LIVE = "live"


_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def term(text: object, *, multiline: bool = True) -> str:
    """``text`` safe to print: control characters (terminal escapes, bidi overrides) dropped, markup escaped.

    Library text comes from imported files and teachers; an ESC in a title would otherwise drive the terminal.
    """
    clean = _UNSAFE.sub("", str(text))
    return escape(clean if multiline else clean.replace("\n", " ").replace("\t", " "))


def _open(library: str | None, collection: str | None, *, create: bool = False) -> Library:
    """The library to work on; only ``import`` may create it, so a mistyped --library is an error."""
    from agentkd.library import Library

    settings = get_settings(library=library, collection=collection)
    return Library.open(settings.library_path, settings.collection, create=create)


def _entries(source: str, library: str | None, collection: str | None) -> dict[str, Strategy]:
    """A strategy directory's entries, or the live library's for the word ``live``."""
    from agentkd.library.files import read_dir

    if source == LIVE:
        return {s.id: s for s in _open(library, collection).list()}
    return read_dir(Path(source))


@library_app.command("export")
def export(
    directory: Annotated[Path | None, typer.Argument(help="Where to write (default strategies/<collection>).")] = None,
    library: LibraryOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Write every entry as a Markdown file with YAML front matter; the directory mirrors the library."""
    from agentkd.library.files import export_library

    lib = _open(library, collection)
    target = directory or Path("strategies") / lib.collection_name
    report = export_library(lib, target)
    kept = f", {len(report.kept)} kept (edited since export: {', '.join(report.kept)})" if report.kept else ""
    console.print(
        f"[green]✓[/] {term(target)}: {len(report.written)} written, {len(report.unchanged)} unchanged, "
        f"{len(report.removed)} removed{kept}"
    )


@library_app.command("import")
def import_(
    directory: Annotated[Path, typer.Argument(help="A directory of strategy files.")],
    library: LibraryOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Validate every file, then write them all (same ids are replaced); a malformed file imports nothing."""
    from agentkd.library.files import import_library

    report = import_library(_open(library, collection, create=True), directory)
    console.print(f"[green]✓[/] {term(directory)}: {len(report.written)} imported, {len(report.unchanged)} unchanged")


def _show_value(value: Any) -> str:
    return term(repr(value) if not isinstance(value, str) else value)


@library_app.command("diff")
def diff(
    a: Annotated[str, typer.Argument(help="A strategy directory, or 'live' for the library.")],
    b: Annotated[str, typer.Argument(help="Another directory, or 'live' (the default).")] = LIVE,
    exit_code: Annotated[bool, typer.Option("--exit-code", help="Exit with 1 when there are differences.")] = False,
    library: LibraryOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Entries added, removed and changed from A to B, field by field (text fields as a line diff)."""
    from agentkd.library.diff import diff_entries

    before, after = _entries(a, library, collection), _entries(b, library, collection)
    changes = diff_entries(before, after)
    for d in changes:
        if d.change == "added":
            console.print(f"[green]+ {d.id}[/]  {term(after[d.id].title, multiline=False)}")
        elif d.change == "removed":
            console.print(f"[red]- {d.id}[/]  {term(before[d.id].title, multiline=False)}")
        else:
            console.print(f"[yellow]~ {d.id}[/]  {term(after[d.id].title, multiline=False)}")
        for f in d.fields:
            if isinstance(f.before, str) and isinstance(f.after, str) and "\n" in f.before + f.after:
                lines = difflib.unified_diff(f.before.splitlines(), f.after.splitlines(), lineterm="", n=1)
                console.print(f"    {f.name}:")
                for line in list(lines)[2:]:
                    colour = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
                    console.print(f"      [{colour}]{term(line)}[/]")
            else:
                console.print(f"    {f.name}: [red]{_show_value(f.before)}[/] → [green]{_show_value(f.after)}[/]")
    counts = {kind: sum(d.change == kind for d in changes) for kind in ("added", "removed", "changed")}
    console.print(f"{a} → {b}: " + ", ".join(f"{n} {kind}" for kind, n in counts.items()))
    if exit_code and changes:
        raise typer.Exit(1)


@library_app.command("show")
def show(
    id: Annotated[str, typer.Argument(help="Entry id.")],
    library: LibraryOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Print an entry as its strategy file, then its history."""
    from agentkd.library.files import render_file

    lib = _open(library, collection)
    s = lib.get(id)
    if s is None:
        raise LibraryError(f"no entry {id!r} in this collection.", hint="`agentkd library list` shows the ids.")
    console.print(term(render_file(s)), highlight=False)
    for r in lib.history(id):
        change = term(f"{r.get('before')} → {r.get('after')}", multiline=False)
        console.print(f"[dim]{term(r['time'])}[/] {term(r['action']):8} {change}  {term(r['reason'])}")


@library_app.command("list")
def list_(
    status: StatusOpt = None,
    kind: KindOpt = None,
    task: TaskOpt = None,
    library: LibraryOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """A table of the entries that pass the filters, oldest first."""
    entries = _open(library, collection).list(status=status, kind=kind, task=task)
    table = Table(title=f"{len(entries)} entries")
    for col in ("id", "kind", "status", "review", "tasks", "trials", "lift", "uses", "title"):
        table.add_column(col, justify="right" if col in ("trials", "lift", "uses") else "left")
    for s in entries:
        lift = f"{s.effect.lift:+.2f}" if s.effect.trials else "-"
        table.add_row(term(s.id), s.kind, s.status, s.review, term(",".join(s.tasks), multiline=False),
                      str(s.effect.trials), lift, str(s.uses), term(s.title, multiline=False))
    console.print(table)


def _edit_in_editor(s: Strategy) -> dict[str, Any] | None:
    """Open the entry's file in $EDITOR; the fields the person changed, or None if the file came back unchanged."""
    from agentkd.library.curation import EDITABLE
    from agentkd.library.files import parse_file, render_file

    text = click.edit(render_file(s), extension=".md", require_save=True)
    if text is None:
        return None
    edited = parse_file(text, f"{s.id}.md")
    changed = {k for k in type(s).model_fields if getattr(edited, k) != getattr(s, k)}
    return {k: getattr(edited, k) for k in changed if k in EDITABLE} | {k: None for k in changed - set(EDITABLE)}


@library_app.command("review")
def review(
    approve: Annotated[list[str] | None, typer.Option("--approve", help="Approve this entry (repeatable).")] = None,
    retire: Annotated[list[str] | None, typer.Option("--retire", help="Retire this entry (needs --reason).")] = None,
    edit: Annotated[str | None, typer.Option("--edit", help="Edit this entry with --title/--trigger/--body.")] = None,
    title: Annotated[str | None, typer.Option(help="New title for --edit.")] = None,
    trigger: Annotated[str | None, typer.Option(help="New trigger for --edit.")] = None,
    body: Annotated[str | None, typer.Option(help="New body for --edit.")] = None,
    reason: Annotated[str, typer.Option(help="Why (required to retire; logged with every action).")] = "",
    status: StatusOpt = None,
    task: TaskOpt = None,
    library: LibraryOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Approve, edit or retire entries; with no action flags, walk through the unreviewed ones interactively.

    The interactive walk covers unreviewed candidate and admitted entries (or those of --status / --task).
    """
    lib = _open(library, collection)
    if approve or retire or edit:
        for id in approve or []:
            lib.review(id, "approve", reason=reason)
            console.print(f"[green]approved[/] {id}")
        for id in retire or []:
            lib.review(id, "retire", reason=reason)
            console.print(f"[red]retired[/] {id}")
        if edit:
            changes = {k: v for k, v in {"title": title, "trigger": trigger, "body": body}.items() if v is not None}
            if not changes:
                raise LibraryError("--edit needs --title, --trigger or --body.", hint='e.g. --edit ID --title "..."')
            lib.review(edit, "edit", reason=reason, changes=changes)
            console.print(f"[yellow]edited[/] {edit}")
        return
    statuses = status or ("candidate", "admitted")
    _interactive(lib, [s for s in lib.list(status=statuses, task=task) if s.review == "unreviewed"])


def _interactive(lib: Library, queue: list[Strategy]) -> None:
    from agentkd.library.files import render_file

    console.print(f"{len(queue)} unreviewed entries")
    for n, s in enumerate(queue, start=1):
        console.rule(f"{n}/{len(queue)}  {term(s.id)}")
        console.print(term(render_file(s)), highlight=False)
        choice = typer.prompt("[a]pprove, [e]dit, [r]etire, [s]kip, [q]uit", default="s").strip().lower()[:1]
        if choice == "q":
            break
        if choice == "a":
            lib.review(s.id, "approve")
            console.print(f"[green]approved[/] {s.id}")
        elif choice == "r":
            lib.review(s.id, "retire", reason=typer.prompt("reason"))
            console.print(f"[red]retired[/] {s.id}")
        elif choice == "e":
            changes = _edit_in_editor(s)
            if changes:
                lib.review(s.id, "edit", changes=changes, reason=typer.prompt("reason", default="edited in review"))
                console.print(f"[yellow]edited[/] {s.id}")
            else:
                console.print("unchanged")


@library_app.command("retrieve")
def retrieve(
    query: Annotated[str, typer.Argument(help="A question, as the student would get it.")],
    k: Annotated[int, typer.Option(help="Entries to choose at most.")] = 3,
    budget: Annotated[int, typer.Option(help="Token budget for the chosen entries (approximate count).")] = 600,
    task: TaskOpt = None,
    library: LibraryOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Show what retrieval chooses for a question, with scores, and what it dropped and why."""
    from agentkd.library.retrieval import retrieve as run

    got = run(_open(library, collection), query, k=k, task=task, budget_tokens=budget)
    table = Table(title=f"{len(got.chosen)} chosen, {got.tokens}/{budget} tokens")
    for col in ("id", "score", "outcome", "title"):
        table.add_column(col)
    for c in got.chosen:
        outcome = f"[green]chosen[/] ({c.tokens} tokens)"
        table.add_row(term(c.strategy.id), f"{c.score:.3f}", outcome, term(c.strategy.title, multiline=False))
    for d in got.dropped:
        outcome = f"[dim]{term(d.reason)}[/] {term(d.detail)}"
        table.add_row(term(d.strategy.id), f"{d.score:.3f}", outcome, term(d.strategy.title, multiline=False))
    console.print(table)


@library_app.command("bundle")
def bundle(
    out: Annotated[Path, typer.Argument(help="Directory to write the bundle to.")],
    weights: Annotated[str, typer.Option(help="Embedder weights: int8 (default, exact), float32 or float16.")] = "int8",
    library: LibraryOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Write an edge bundle of the admitted entries that retrieves with numpy alone (see agentkd_bundle.py)."""
    from agentkd.library.bundle import write_bundle

    if weights not in ("int8", "float32", "float16"):
        raise LibraryError(f"unknown weight type {weights!r}.", hint="use int8, float32 or float16.")
    settings = get_settings(library=library, collection=collection)
    info = write_bundle(_open(library, collection), out, weights=weights, library_name=settings.library_path)  # type: ignore[arg-type]
    console.print(f"[green]✓[/] {out}: {info.count} entries, {info.bytes / 1e6:.1f} MB")
