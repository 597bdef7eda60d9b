"""``agentkd eval``: arms on the same held-out items → results.json, report.md, report.html, transcripts."""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agentkd.cli.options import setting
from agentkd.config import Settings, get_settings
from agentkd.errors import ConfigError
from agentkd.eval.gate import GATE_ALPHA, GATE_ITEMS
from agentkd.eval.packs import MANIFEST, manifest_path

console = Console()
DEFAULT_ARMS = "student,student+library,teacher"


class EvalDisplay:
    """A progress bar per arm, fed by ``run_eval``'s progress events."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console)
        self.bars: dict[str, Any] = {}
        self.right: dict[str, int] = {}
        self.n = 0

    def __enter__(self) -> EvalDisplay:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def update(self, event: str, **data: Any) -> None:
        if event == "start":
            self.n = data["n"]
            for name in data["arms"]:
                self.bars[name] = self.progress.add_task(name, total=self.n, info="")
                self.right[name] = 0
        elif event == "item":
            self.right[data["arm"]] += int(data["correct"])
            self.progress.update(self.bars[data["arm"]], advance=1, info=f"{self.right[data['arm']]} right")
        elif event == "arm" and data.get("resumed"):
            self.console.print(f"[dim]{data['name']}: {data['resumed']} items already done (resumed)[/]")
        elif event == "pull":
            self.console.print(f"assembling model {data['model']} (once)…")
        elif event == "pack":
            self.console.print(f"pack [bold]{data['name']}[/] imported")
        elif event == "warn":
            self.console.print(f"[yellow]warning:[/] {data['message']}")


def canonical_command(settings: Settings, opts: dict[str, Any]) -> str:
    """The exact command that repeats this evaluation: every setting that matters, spelled out."""
    from agentkd.eval.arms import reads_library

    args = ["agentkd", "eval", "--task", opts["task"], "--split", opts["split"], "--n", str(opts["n"]),
            "--seed", str(settings.seed), "--arms", opts["arms"], "--student", settings.student,
            "--teacher", settings.teacher]  # fmt: skip
    if opts.get("pack"):
        args += ["--pack", str(opts["pack"])]
    elif reads_library(opts["arms"]):
        args += ["--library", settings.library_path, "--collection", settings.collection]
    for flag in ("categories", "baseline", "retrieval_task", "max_tokens", "max_steps"):
        if opts.get(flag) is not None:
            args += [f"--{flag.replace('_', '-')}", str(opts[flag])]
    if not opts["tools"]:
        args.append("--no-tools")
    if settings.n_ctx != Settings.model_fields["n_ctx"].default:
        args += ["--n-ctx", str(settings.n_ctx)]
    args += ["--out", str(opts["out"])]
    return shlex.join(args)


def eval_command(
    task: Annotated[str, typer.Option(help="Task source: gsm_symbolic (or any reasoning-gym name), tau2:retail, "
                                      "bfcl:simple, bfcl:multiple, spec:<file.yaml>, jsonl:<file.jsonl>, "
                                      "or module.path:Class (docs/adapters.md).")] = "gsm_symbolic",
    split: Annotated[str, typer.Option(help="heldout (never used by builds), heldout-unseen (gsm_symbolic: "
                                       "only the templates builds never see), validation (the pack gate's) or "
                                       "train.")] = "heldout",
    n: Annotated[int, typer.Option("--n", help="Items; every arm answers the same ones.")] = 20,
    categories: Annotated[str | None, setting("categories")] = None,
    arms: Annotated[str, typer.Option(help="Comma-separated arms: student, student+library, "
                                      "student+library:<collection|collection@location|pack dir>, teacher; "
                                      "add +cot for no tools (e.g. student+cot), +vote:<k> to vote over k "
                                      "answers (e.g. student+library+vote:5).")] = DEFAULT_ARMS,
    baseline: Annotated[str | None, typer.Option(help="The arm the others are compared with (default: the "
                                                 "student alone).")] = None,
    pack: Annotated[Path | None, typer.Option(help="Evaluate this strategy pack (strategies/<pack>) as the "
                                              "library.")] = None,
    tools: Annotated[bool, typer.Option("--tools/--no-tools", help="--no-tools: every arm answers in chain of "
                                        "thought.")] = True,
    retrieval_task: Annotated[str | None, typer.Option(help="Retrieve strategies tagged with this task ('any' "
                                                       "for all), e.g. a gsm_symbolic pack on another task.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output directory (default $AGENTKD_HOME/evals/<task>-<time>).")
                   ] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --out, keeping finished items "
                                          "(the pack gate's too, in --out/gate).")
                      ] = False,
    write_manifest: Annotated[bool, typer.Option(help="Record the measured effect in the pack manifest "
                                                 "(--manifest, default <pack>/manifest.yaml).")] = False,
    manifest: Annotated[Path | None, typer.Option(help="Pack manifest to write with --write-manifest.")] = None,
    gate_n: Annotated[int, typer.Option(help="With --write-manifest: validation items of the pack gate that runs "
                                        "first (`agentkd library gate --help`).")] = GATE_ITEMS,
    gate_alpha: Annotated[float, typer.Option(help="With --write-manifest: the gate's level per category.")
                          ] = GATE_ALPHA,
    build_run: Annotated[str | None, typer.Option(help="With --write-manifest: fill the manifest's build section "
                                                  "(command, teacher spend, minutes) from this build run id.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="The student's tokens per step.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="The student's model calls per item.")] = None,
    teacher_max_tokens: Annotated[int, typer.Option(help="The teacher arm's tokens per step.")] = 768,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples for the intervals.")] = 2000,
    student: Annotated[str | None, typer.Option(help="Student model (env AGENTKD_STUDENT).")] = None,
    teacher: Annotated[str | None, typer.Option(help="Teacher model (env AGENTKD_TEACHER).")] = None,
    library: Annotated[str | None, typer.Option(help="Library directory or http://host:port.")] = None,
    collection: Annotated[str | None, typer.Option(help="Collection inside the library.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for the items and for sampling.")] = None,
    n_ctx: Annotated[int | None, typer.Option(help="Context window of local models (tau2 needs 8192+).")] = None,
) -> None:
    """Measure arms on the same held-out items: accuracy with bootstrap CIs, per category, tokens, latency.

    Writes results.json, report.md, report.html (plots embedded), plots/*.png and one transcript file per arm.
    With --write-manifest the pack gate runs first on the validation split; a failed gate writes nothing.
    """
    from agentkd.eval import EvalConfig, run_eval
    from agentkd.eval.packs import build_info, write_measurement

    if split not in ("heldout", "heldout-unseen", "validation", "train"):
        raise ConfigError(f"unknown split {split!r}", hint="use --split heldout, heldout-unseen, validation or train")
    if resume and out is None:
        raise ConfigError("--resume needs the run's directory", hint="pass --out DIR of the interrupted run")
    if write_manifest and manifest is None and pack is None:
        raise ConfigError("--write-manifest needs a pack", hint="pass --pack strategies/<pack> or --manifest FILE")
    settings = get_settings(student=student, teacher=teacher, library=library, collection=collection, seed=seed,
                            n_ctx=n_ctx)
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in task.rsplit("/", 1)[-1])
    out = out or settings.home / "evals" / f"{slug}-{time.strftime('%Y%m%d-%H%M%S')}"
    opts = dict(task=task, split=split, n=n, categories=categories or None, arms=arms, pack=pack, tools=tools,
                baseline=baseline,
                retrieval_task=retrieval_task, max_tokens=max_tokens, max_steps=max_steps, out=out)
    command = canonical_command(settings, opts)
    config = EvalConfig(task=task, split=split, n=n, categories=categories or "", seed=settings.seed, arms=arms,
                        out=out, tools=tools,
                        baseline=baseline, pack=pack, retrieval_task=retrieval_task, max_tokens=max_tokens,
                        max_steps=max_steps, teacher_max_tokens=teacher_max_tokens, resamples=resamples,
                        resume=resume, command=command)  # fmt: skip
    built = build_info(settings.runs_dir, build_run) if build_run else None  # fails before the run, not after
    gate = None
    if write_manifest:  # the gate first: it may retire entries, and then the eval measures what ships
        from agentkd.cli.gate import gate_pack

        gated = pack or manifest_path(manifest or Path(MANIFEST)).parent
        gate = gate_pack(settings, task=task, library=str(gated), n=gate_n, alpha=gate_alpha, out=out / "gate",
                         retire=True, pack=gated, retrieval_task=retrieval_task, resume=resume)
    with EvalDisplay(console) as display:
        result = run_eval(settings, config, progress=display.update)
    table = Table(title=f"{result.task} ({result.split}, {result.n} items, seed {result.seed})")
    for col in ("arm", f"{result.accuracy_name} [95% CI]", "Δ vs baseline [95% CI]", result.score_name, "s/item"):
        table.add_column(col, justify="left" if col == "arm" else "right")
    for s in result.summaries:
        c = result.comparison(s.name)
        table.add_row(s.label, s.accuracy.fmt(), c.accuracy.diff.fmt(signed=True) if c else "(baseline)",
                      f"{s.score.value:.2f}", f"{s.seconds_mean:.1f}")
    console.print(table)
    console.print(f"report: {out / 'report.md'}  ·  {out / 'report.html'}  ·  transcripts: {out / 'transcripts'}")
    if write_manifest:
        target = manifest or (pack / "manifest.yaml" if pack else Path("manifest.yaml"))
        report = out / "report.md"
        assert gate is not None
        written = write_measurement(target, result, report=str(report), command=command, gate=gate)
        if built is not None:
            written.build = built
            written.save(target)
        console.print(f"[green]✓[/] measured effect recorded in {target}")
