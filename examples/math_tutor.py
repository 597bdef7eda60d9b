"""Math tutor: the student, with the math strategy pack, answers a word problem, showing the strategies it
retrieved and the Python it ran.

    python examples/math_tutor.py                                  # a held-out gsm_symbolic problem, checked
    python examples/math_tutor.py "A baker bakes 4 trays of 12 rolls and sells 30. How many are left?"
    python examples/math_tutor.py --student smollm2-135m --pack strategies/math

Offline: the student is a local GGUF (assembled once from the installed model packages), the pack's
strategy files are imported into a local library, and the Python runs in agentkd's sandbox. Until
``strategies/math`` is built (see docs/packs.md), three starter strategies written below stand in for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from agentkd.cli.display import print_answer
from agentkd.config import get_settings
from agentkd.eval.packs import has_entries, import_pack
from agentkd.library import Library, MMRRetriever
from agentkd.models import catalog
from agentkd.schema import Strategy
from agentkd.student.student import Student
from agentkd.tasks import get_task
from agentkd.tools import ToolBox, python_tool

ROOT = Path(__file__).resolve().parents[1]
console = Console()

STARTER = [
    Strategy(id="s-starter-variables", status="admitted", tasks=["gsm_symbolic"],
             title="Name every quantity, then compute in Python",
             trigger="word problems that combine several quantities, prices, counts or rates",
             body="1. Assign each number in the problem to a named variable.\n2. Write the arithmetic with those "
                  "names, one step per line.\n3. print() the final value."),
    Strategy(id="s-starter-percent", status="admitted", tasks=["gsm_symbolic"],
             title="Percentages as fractions of the right whole",
             trigger="problems with a percent discount, increase, tax or share of a total",
             body="1. Decide which amount the percent is of.\n2. Multiply that amount by p/100.\n3. Add or subtract "
                  "it as the problem says."),
    Strategy(id="s-starter-remaining", status="admitted", tasks=["gsm_symbolic"],
             title="What is left after several uses",
             trigger="problems asking how many remain after items are given away, eaten, sold or used",
             body="1. Start from the total.\n2. Subtract each use in order (a fraction of what is left is taken of "
                  "the current amount, not the start).\n3. print() what remains."),
]  # fmt: skip


def open_library(pack: Path, home: Path) -> tuple[Library, str]:
    """The pack as a library, or the starter strategies when the pack is not built yet."""
    if has_entries(pack):
        location, collection, manifest = import_pack(pack, home)
        return Library.open(location, collection), f"pack {manifest.name} ({pack})"
    lib = Library.open(str(home / "examples" / "math-tutor"), "math-starter")
    if lib.count() == 0:
        for s in STARTER:
            lib.add(s)
    return lib, "starter strategies (build strategies/math for the real pack)"


def main(
    question: Annotated[str | None, typer.Argument(help="A word problem (default: a held-out gsm_symbolic one).")]
    = None,
    pack: Annotated[Path, typer.Option(help="The strategy pack.")] = ROOT / "strategies" / "math",
    student: Annotated[str | None, typer.Option(help="Student model (default: AGENTKD_STUDENT).")] = None,
    seed: Annotated[int, typer.Option(help="Which held-out problem.")] = 1234,
) -> None:
    settings = get_settings(student=student)
    if settings.student in catalog.CATALOG and not catalog.is_present(catalog.CATALOG[settings.student],
                                                                    settings.models_dir):
        console.print(f"assembling {settings.student} (once)…")
        catalog.pull(settings.student, root=settings.models_dir)
    library, source = open_library(pack, settings.home)
    task = get_task("gsm_symbolic")
    scenario = task.scenarios("heldout", 1, seed=seed)[0] if question is None else None
    text = scenario.question if scenario else str(question)
    tutor = Student(settings.student, tools=ToolBox([python_tool()]), n_ctx=settings.n_ctx, seed=settings.seed)
    tutor.retriever = MMRRetriever(library, count_tokens=tutor.llm.count_tokens, budget_tokens=settings.strategy_tokens)
    console.print(f"[bold]problem[/]: {text}\n[dim]student {settings.student} · {source}[/]")
    with console.status("thinking…"):
        answer = tutor.ask(text, task="gsm_symbolic", instructions=task.instructions)
    print_answer(console, answer)
    if scenario is not None:
        verdict = task.check(scenario, answer.text)
        console.print(("[green]right[/]" if verdict.correct else "[red]wrong[/]") + f" ({verdict.reasons})")


if __name__ == "__main__":
    typer.run(main)
