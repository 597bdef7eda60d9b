"""The pack gate: before a pack is written or its manifest updated, the whole library against the student alone.

Both arms answer the same items of the task's **validation** split (items neither builds nor held-out
evaluation use, so the gate neither leaks into the reported test figures nor re-uses what admission saw).
A task without one refuses the gate (``require_validation``).

The rule, per category, on the paired items: only *discordant* pairs carry evidence, ``helped`` (right
with the library, wrong alone) and ``hurt`` (the reverse). If the library made no difference each would go
either way with probability 1/2, so the category is **worse** when the one-sided exact sign test says it
hurts: ``P(X >= hurt | X ~ Binomial(helped + hurt, 1/2)) <= alpha`` (``agentkd.library.curation.sign_test``,
the admission rule turned round). ``GATE_ALPHA`` is 0.10, not admission's 0.05: a harmful category that
passes the gate ships, a false alarm only retires entries a later build can re-admit, so the gate errs
towards catching harm (with no wins, 4 losses fail a category at 0.10; it would take 5 at 0.05).

The same test runs on **all items together**: a task with many small categories (gsm_symbolic's 64
templates leave two or three validation items each) cannot fail any one of them, but losses spread over many
of them still fail the whole library; there the entries blamed are those retrieved on more of the lost items
than of the won ones.

The entries that cause it: those the library arm retrieved on the worse category's *hurt* items. They are
**retired**, not kept out of the category: at answer time the student retrieves by the question alone and
does not know an item's category (gsm_symbolic's template is not in the question), so no retrieval filter
could keep an entry out of one category and nothing else. In a pack the entry's file is rewritten with
``status: retired`` and the reason; in a live library its status changes. Retiring changes the pack, so
the gate is run again on what is left before a manifest is written (``write_measurement`` checks that the
gate passed on exactly the pack's current files).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentkd.eval.gate_report import CategoryGate, GateReport
from agentkd.eval.packs import entries_digest, is_pack, pack_manifest
from agentkd.library.curation import sign_test
from agentkd.schema import Progress
from agentkd.tasks.base import require_validation

if TYPE_CHECKING:
    from agentkd.config import Settings
    from agentkd.eval.results import EvalResult
    from agentkd.library import Library
    from agentkd.tasks import TaskSource

GATE_ALPHA = 0.10
GATE_ITEMS = 40
BASELINE = "student"
OVERALL = "all items"


def judge_gate(result: EvalResult, arm: str, *, alpha: float = GATE_ALPHA, library: str = "") -> GateReport:
    """The gate's rule applied to an evaluation of ``arm`` (the library) against the student alone."""
    alone = {r.id: r for r in result.items if r.arm == BASELINE}
    pairs: dict[str, list[tuple[Any, Any]]] = defaultdict(list)
    for r in result.items:
        if r.arm == arm and r.id in alone:
            pairs[r.category].append((alone[r.id], r))
    cats = [_judge(category, items, alpha) for category, items in sorted(pairs.items())]
    overall = _judge(OVERALL, [pair for items in pairs.values() for pair in items], alpha, net=True)
    return GateReport(task=result.task, split=result.split, n=result.n, seed=result.seed, alpha=alpha,
                      library=library, categories=cats, overall=overall)


def _judge(category: str, items: list[tuple[Any, Any]], alpha: float, *, net: bool = False) -> CategoryGate:
    """The sign test on one group's (alone, with the library) pairs, and the entries its lost items retrieved
    (with ``net``, only those retrieved on more lost items than won ones: over all items an entry that won its
    own category's items is not to blame for another's losses)."""
    helped_items = [w for a, w in items if w.correct and not a.correct]
    hurt_items = [w for a, w in items if a.correct and not w.correct]
    p = sign_test(len(hurt_items), len(helped_items))
    worse = p <= alpha and bool(hurt_items)
    used = Counter(s for w in hurt_items for s in w.strategies)
    won = Counter(s for w in helped_items for s in w.strategies)
    blamed = [s for s, k in used.most_common() if not net or k > won[s]] if worse else []
    return CategoryGate(category=category, n=len(items), alone=sum(a.correct for a, _ in items),
                        with_library=sum(w.correct for _, w in items), helped=len(helped_items),
                        hurt=len(hurt_items), p_worse=p, worse=worse, blamed=blamed)


def run_gate(settings: Settings, *, task: str, library: str, n: int = GATE_ITEMS, alpha: float = GATE_ALPHA,
             out: Path, parts: Any = None, task_source: TaskSource | None = None, max_tokens: int | None = None,
             retrieval_task: str | None = None, resume: bool = False,
             progress: Progress = lambda event, **data: None) -> GateReport:
    """Measure ``library`` (a pack directory, or ``collection@location``) against the student alone on ``n``
    validation items of ``task`` and judge it; retires nothing (``retire_blamed`` does). ``resume`` keeps the
    finished items of an earlier run in ``out`` (``agentkd eval --resume``)."""
    from agentkd.eval.runner import EvalConfig, run_eval
    from agentkd.parts import load_task

    source = task_source if task_source is not None else load_task(task)
    require_validation(source)
    arm = f"student+library:{library}"
    config = EvalConfig(task=task, split="validation", n=n, seed=settings.seed, arms=f"{BASELINE},{arm}", out=out,
                        max_tokens=max_tokens, retrieval_task=retrieval_task, resume=resume,
                        command=f"agentkd library gate --task {task} --n {n} --alpha {alpha} ({library})")
    result = run_eval(settings, config, parts=parts, task=source, progress=progress)
    report = judge_gate(result, arm, alpha=alpha, library=library)
    report.results = str(out / "results.json")
    if is_pack(Path(library)):
        report.digest = entries_digest(Path(library))
    return report


def retire_blamed(report: GateReport, *, pack: Path | None = None, lib: Library | None = None) -> list[str]:
    """Retire the entries blamed for a worse category, in the pack's files or in a live library."""
    from agentkd.library.fileio import atomic_write
    from agentkd.library.files import parse_file, render_file

    retired = []
    for sid in report.blamed():
        cats = ", ".join(f"{c.category} (hurt {c.hurt}, helped {c.helped}, p={c.p_worse:.3f})"
                         for c in report.categories if sid in c.blamed)
        reason = (f"retired by the pack gate: retrieved where the library was worse than the student alone on "
                  f"{report.split} items of {cats} at alpha={report.alpha}")
        if pack is not None:
            directory = pack / pack_manifest(pack).entries
            path = directory / f"{sid}.md"
            if not path.is_file():
                continue
            entry = parse_file(path.read_text(encoding="utf-8"), path)
            entry = entry.model_copy(update={"status": "retired", "status_reason": reason})
            atomic_write(directory, path.name, render_file(entry).encode("utf-8"))
        elif lib is not None:
            lib.set_status(sid, "retired", reason)
        retired.append(sid)
    report.retired = retired
    return retired
