"""``report.md`` and ``report.html`` from an ``EvalResult``: the tables, the plots, the items to read.

Both reports are built from the same tables (``tables``), so they never disagree; the HTML embeds the
plots as data URIs and shades each score cell, so it can be mailed or attached as one file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from agentkd.eval.arms import parse_arm, reads_library
from agentkd.eval.results import EvalResult, ItemRecord

Cell = str | tuple[str, float]  # text, or text with a 0..1 value that shades the HTML cell
MAX_EXAMPLES = 5
EXCERPT = 160


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[Cell]]
    note: str = ""
    anchor: str = field(default="")


def _pct(x: float) -> str:
    return f"{x:.0%}"


def headline(r: EvalResult) -> Table:
    base = r.summary(r.baseline)
    rows: list[list[Cell]] = []
    for s in r.summaries:
        c = r.comparison(s.name)
        diff = c.accuracy.diff.fmt(signed=True) if c else "(baseline)"
        split = f"{c.accuracy.wins} / {c.accuracy.losses}" if c else ""
        rows.append([s.label, (s.accuracy.fmt(), s.accuracy.value), diff, split, (s.score.fmt(), s.score.value),
                     f"{s.with_strategies}/{s.n}", f"{s.prompt_tokens:,.0f} / {s.completion_tokens:,.0f}",
                     f"{s.seconds_mean:.1f}"])  # fmt: skip
    reused = {s.name: sum(bool(i.reused_from) for i in r.items if i.arm == s.name) for s in r.summaries}
    same = "".join(f" {r.summary(name).label}: {k} of {r.n} items retrieved nothing, so their prompt was the "
                   f"arm's without the library and that answer stands." for name, k in reused.items() if k)
    return Table(
        "Results",
        ["arm", f"{r.accuracy_name} (95% CI)", f"Δ vs {base.label}", "won / lost", f"{r.score_name} (95% CI)",
         "items with strategies", "tokens/item (prompt / written)", "s/item"],
        rows,
        note=f"Every arm answered the same {r.n} items. Δ is the paired difference in percentage points with a "
        f"paired-bootstrap 95% interval (items resampled together); won / lost count items only that arm / only "
        f"the baseline got right.{same}",
        anchor="results",
    )


def findings(r: EvalResult) -> list[str]:
    """One plain sentence per comparison: how big, and whether this many items can tell."""
    out = []
    base = r.summary(r.baseline).label
    for c in r.comparisons:
        d, label = c.accuracy.diff, r.summary(c.arm).label
        verdict = ("the interval excludes zero" if d.excludes_zero()
                   else "not distinguishable from zero with this many items")
        out.append(f"**{label}** vs {base}: {d.fmt(signed=True)} ({verdict}; {c.accuracy.wins} won, "
                   f"{c.accuracy.losses} lost).")
    return out


def categories(r: EvalResult, limit: int = 20) -> Table | None:
    first = r.summaries[0]
    if len(first.categories) < 2:
        return None
    cats = sorted(first.categories, key=lambda c: (-first.categories[c].n, c))
    rows: list[list[Cell]] = []
    for cat in cats[:limit]:
        row: list[Cell] = [cat, str(first.categories[cat].n)]
        for s in r.summaries:
            cs = s.categories.get(cat)
            row.append((_pct(cs.accuracy), cs.accuracy) if cs else "")
        rows.append(row)
    note = f"{len(cats) - limit} smaller categories left out; all are in results.json." if len(cats) > limit else ""
    return Table("Per category", ["category", "n", *[s.label for s in r.summaries]], rows, note, "categories")


def costs(r: EvalResult) -> Table:
    rows: list[list[Cell]] = [
        [s.label, f"{s.prompt_tokens:,.0f}", f"{s.completion_tokens:,.0f}", f"{s.seconds_mean:.1f}",
         f"{s.seconds_median:.1f}", f"{s.seconds_p90:.1f}", f"${s.cost_usd:.4f}", str(s.errors)]
        for s in r.summaries
    ]  # fmt: skip
    return Table("Tokens and latency per item",
                 ["arm", "prompt tokens", "tokens written", "mean s", "median s", "p90 s", "cost (total)", "errors"],
                 rows, "Latency is wall-clock per item on this machine (tau2 includes the simulated customer).",
                 "costs")


def entries(r: EvalResult, limit: int = 20) -> Table | None:
    """Per library entry, on the items an arm retrieved it for: won and lost against the baseline (worst first)."""
    base = {i.id: i for i in r.items if i.arm == r.baseline}
    rows: list[tuple[str, str, int, int, int]] = []
    for s in r.summaries:
        if s.name == r.baseline:
            continue
        per: dict[str, list[int]] = {}
        for i in (i for i in r.items if i.arm == s.name and i.id in base):
            for sid in i.strategies:
                n_won_lost = per.setdefault(sid, [0, 0, 0])
                n_won_lost[0] += 1
                n_won_lost[1] += i.correct and not base[i.id].correct
                n_won_lost[2] += base[i.id].correct and not i.correct
        rows += [(s.label, sid, n, won, lost) for sid, (n, won, lost) in per.items()]
    if not rows:
        return None
    rows.sort(key=lambda x: (x[3] - x[4], -x[2], x[0], x[1]))
    worse = sum(won < lost for _, _, _, won, lost in rows)
    note = (f"{worse} of {len(rows)} (arm, entry) pairs lost more items than they won. An item that retrieved "
            "several entries counts for each. These are the evaluation's items: read them to audit a pack, but "
            "retire entries on a validation split (the pack gate), or the held-out figures stop being held out.")
    if len(rows) > limit:
        note += f" {len(rows) - limit} more rows are left out; every item's entries are in results.json."
    return Table("Per entry", ["arm", "entry", "items retrieved", "won", "lost"],
                 [[label, sid, str(n), str(won), str(lost)] for label, sid, n, won, lost in rows[:limit]],
                 note, "entries")


@dataclass
class Example:
    arm: str
    kind: str  # "lost" or "won"
    record: ItemRecord
    baseline: ItemRecord
    where: str  # transcripts/<arm>.jsonl:<line>


def _lines(path: Path) -> dict[str, int]:
    if not path.is_file():
        return {}
    out = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            out[str(json.loads(line)["id"])] = n
    return out


def examples(r: EvalResult, out: Path) -> list[Example]:
    """Items where an arm and the baseline disagree, the baseline's wins first: the failures worth reading."""
    base = {x.id: x for x in r.items if x.arm == r.baseline}
    found: list[Example] = []
    for c in r.comparisons:
        rel = f"transcripts/{parse_arm(c.arm).slug}.jsonl"
        lines = _lines(out / rel)
        mine = [x for x in r.items if x.arm == c.arm and x.id in base]
        for kind, keep in (("lost", lambda x: base[x.id].correct and not x.correct),
                           ("won", lambda x: x.correct and not base[x.id].correct)):
            for x in [x for x in mine if keep(x)][:MAX_EXAMPLES]:
                found.append(Example(c.arm, kind, x, base[x.id], f"{rel}:{lines[x.id]}" if x.id in lines else rel))
    return found


def excerpt(text: str | None, limit: int = EXCERPT) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else "…" + flat[-limit:]


def tables(r: EvalResult) -> list[Table]:
    return [t for t in (headline(r), categories(r), entries(r), costs(r)) if t is not None]


# -- Markdown ---------------------------------------------------------------------------------------------


def _md_cell(cell: Cell) -> str:
    text = cell[0] if isinstance(cell, tuple) else cell
    return text.replace("|", "\\|").replace("\n", " ")


def md_table(t: Table) -> str:
    lines = [f"## {t.title}", "", "| " + " | ".join(t.headers) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(t.headers))) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t.rows]
    if t.note:
        lines += ["", f"_{t.note}_"]
    return "\n".join(lines)


def header_lines(r: EvalResult) -> list[str]:
    lib = ""
    if r.pack:
        lib = f"pack `{r.pack}` · "
    elif reads_library(r.arms):
        lib = f"library `{r.collection}` at `{r.library}` · "
    minutes = f"{r.seconds / 60:.1f} min"
    return [f"student `{r.student}` · teacher `{r.teacher}` · {lib}started {r.started} · {minutes}",
            *([f"strategies retrieved from task `{r.retrieval_task}`"] if r.retrieval_task else [])]


def markdown(r: EvalResult, plots: dict[str, Path], out: Path) -> str:
    parts = [f"# agentkd eval: {r.task} ({r.split}, {r.n} items, seed {r.seed})", "", *header_lines(r), ""]
    parts += [f"- {f}" for f in findings(r)]
    parts += ["", md_table(headline(r)), ""]
    for name in ("accuracy", "differences", "items"):
        if name in plots:
            parts += [f"![{name}]({plots[name].relative_to(out).as_posix()})", ""]
    for t in tables(r)[1:]:
        parts += [md_table(t), ""]
        key = "categories" if t.anchor == "categories" else "latency" if t.anchor == "costs" else ""
        if key in plots:
            parts += [f"![{key}]({plots[key].relative_to(out).as_posix()})", ""]
    exs = examples(r, out)
    if exs:
        parts += ["## Items where the arms disagree", "",
                  "| arm | item | vs baseline | expected | this arm answered | baseline answered | transcript |",
                  "|---|---|---|---|---|---|---|"]
        parts += [f"| {_md_cell(r.summary(e.arm).label)} | `{e.record.id}` | {e.kind} "
                  f"| {_md_cell(excerpt(e.record.expected, 60))} | {_md_cell(excerpt(e.record.answer))} "
                  f"| {_md_cell(excerpt(e.baseline.answer))} | `{e.where}` |" for e in exs]  # fmt: skip
        parts += [""]
    parts += ["## Reproduce", "", "```", r.command or "(run through the Python API)", "```", "",
              "Files: `results.json` (every number here, and every item), `transcripts/<arm>.jsonl` (one line per "
              "item: question, answer, verdict, tool calls, full transcript), `scenarios.jsonl`, `plots/`.", ""]
    return "\n".join(parts)
