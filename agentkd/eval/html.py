"""``report.html``: one self-contained page (plots as data URIs), score cells shaded, items to click open."""

from __future__ import annotations

import base64
import re
from html import escape
from pathlib import Path

from agentkd.eval.report import EXCERPT, Cell, Table, examples, excerpt, findings, header_lines, tables
from agentkd.eval.results import EvalResult

CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}
.meta{color:#666;font-size:.9em}table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{padding:.3em .6em;border:1px solid #e3e3e3;text-align:right}th{background:#f6f6f6}
td:first-child,th:first-child{text-align:left}.note{color:#666;font-size:.85em}
img{max-width:100%;margin:.5em 0}.findings li{margin:.25em 0}
details{margin:.3em 0;border:1px solid #e3e3e3;border-radius:4px;padding:.3em .6em}
summary{cursor:pointer}.lost{color:#b52b27}.won{color:#2d7a2d}
pre{white-space:pre-wrap;background:#f8f8f8;padding:.5em;font-size:.85em;max-height:20em;overflow:auto}
code{font-size:.9em}
"""


def _shade(value: float) -> str:
    """A background from red (0) through amber to green (1), light enough to read text on."""
    red, green = (0xF4, 0xC7, 0xC3), (0xC8, 0xE6, 0xC9)
    mix = [round(a + (b - a) * max(0.0, min(1.0, value))) for a, b in zip(red, green, strict=True)]
    return "#" + "".join(f"{c:02x}" for c in mix)


def _cell(cell: Cell) -> str:
    if isinstance(cell, tuple):
        return f'<td style="background:{_shade(cell[1])}">{escape(cell[0])}</td>'
    return f"<td>{escape(cell)}</td>"


def html_table(t: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in t.headers)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in t.rows)
    note = f'<p class="note">{escape(t.note)}</p>' if t.note else ""
    return f'<h2 id="{t.anchor}">{escape(t.title)}</h2><table><tr>{head}</tr>{body}</table>{note}'


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _inline_md(text: str) -> str:
    """The little Markdown the findings use: **bold** and `code`."""
    text = escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def html_report(r: EvalResult, plots: dict[str, Path], out: Path) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>agentkd eval: {escape(r.task)}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>agentkd eval: {escape(r.task)} <small>({escape(r.split)}, {r.n} items, seed {r.seed})</small></h1>",
             *[f'<p class="meta">{_inline_md(line)}</p>' for line in header_lines(r)],
             '<ul class="findings">' + "".join(f"<li>{_inline_md(f)}</li>" for f in findings(r)) + "</ul>"]
    all_tables = tables(r)
    parts.append(html_table(all_tables[0]))
    parts += [_img(plots[k], k) for k in ("accuracy", "differences") if k in plots]
    if "items" in plots:
        parts += ["<h2>Every item</h2>", _img(plots["items"], "items")]
    for t in all_tables[1:]:
        parts.append(html_table(t))
        key = "categories" if t.anchor == "categories" else "latency"
        if key in plots:
            parts.append(_img(plots[key], key))
    exs = examples(r, out)
    if exs:
        parts.append("<h2>Items where the arms disagree</h2><p class='note'>Baseline wins first: these are the "
                     "failures to read. The full transcript is the line shown.</p>")
        for e in exs:
            label = r.summary(e.arm).label
            parts.append(
                f"<details><summary><span class='{e.kind}'>{e.kind}</span> · {escape(label)} · "
                f"<code>{escape(e.record.id)}</code> · {escape(e.record.category)}</summary>"
                f"<p><b>expected</b>: {escape(excerpt(e.record.expected, 400))}</p>"
                f"<p><b>{escape(label)}</b> ({'right' if e.record.correct else 'wrong'}):</p>"
                f"<pre>{escape(e.record.answer[-1500:])}</pre><p class='note'>{escape(e.record.reasons)}</p>"
                f"<p><b>baseline</b> ({'right' if e.baseline.correct else 'wrong'}):</p>"
                f"<pre>{escape(e.baseline.answer[-1500:])}</pre>"
                f"<p class='note'>transcript: <code>{escape(e.where)}</code>"
                f"{' · strategies: ' + escape(', '.join(e.record.strategies)) if e.record.strategies else ''}</p>"
                "</details>"
            )
    parts += ["<h2>Reproduce</h2>", f"<pre>{escape(r.command or '(run through the Python API)')}</pre>",
              "<p class='note'>results.json holds every number and item; transcripts/&lt;arm&gt;.jsonl one line per "
              f"item with the full transcript. Excerpts above are cut to {EXCERPT} characters in "
              "report.md.</p>",
              "</body></html>"]
    return "\n".join(parts)
