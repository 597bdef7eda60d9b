"""Write an evaluation's report: the plots, ``report.md`` and ``report.html``."""

from __future__ import annotations

from pathlib import Path

from agentkd.eval.html import html_report
from agentkd.eval.plots import write_plots
from agentkd.eval.report import markdown
from agentkd.eval.results import EvalResult


def write_report(r: EvalResult, out: Path) -> dict[str, Path]:
    """Write the plots, ``report.md`` and ``report.html`` into ``out``."""
    plots = write_plots(r, out / "plots")
    md = out / "report.md"
    md.write_text(markdown(r, plots, out), encoding="utf-8")
    page = out / "report.html"
    page.write_text(html_report(r, plots, out), encoding="utf-8")
    return {"markdown": md, "html": page, **plots}
