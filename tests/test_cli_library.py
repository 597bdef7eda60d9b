"""`agentkd library ...` on a real on-disk library."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentkd.cli.main import app
from agentkd.library import Library
from agentkd.schema import Effect, Strategy

runner = CliRunner()


def entry(id: str, trigger: str, **fields: object) -> Strategy:
    return Strategy(id=id, title=f"Rule {id}", trigger=trigger, body="Do the thing.\nThen check it.", **fields)  # type: ignore[arg-type]


@pytest.fixture
def lib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Library:
    monkeypatch.setenv("AGENTKD_LIBRARY", str(tmp_path / "lib"))
    monkeypatch.setenv("AGENTKD_COLLECTION", "cli-lib")
    monkeypatch.chdir(tmp_path)
    library = Library.open(str(tmp_path / "lib"), "cli-lib")
    library.restore(
        [
            entry("s-pct", "When a price is reduced by a percentage", status="admitted", tasks=["shop"],
                  effect=Effect(trials=4, wins_with=3, wins_without=1)),
            entry("s-json", "When a tool takes JSON arguments", status="admitted", tasks=["tools"]),
            entry("g-days", "When dates span several months", kind="guidance", tasks=["shop"]),
        ],
        reason="test",
    )
    return library


def run(*args: str) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_export_list_show_and_diff(lib: Library, tmp_path: Path) -> None:
    assert "3 written" in run("library", "export")
    exported = tmp_path / "strategies" / "cli-lib"
    assert sorted(p.name for p in exported.glob("*.md")) == ["g-days.md", "s-json.md", "s-pct.md"]
    table = run("library", "list", "--status", "admitted", "--task", "shop")
    assert "s-pct" in table and "+0.50" in table and "s-json" not in table and "g-days" not in table
    assert "g-days" in run("library", "list", "--kind", "guidance")
    shown = run("library", "show", "s-pct")
    assert shown.startswith("---\nid: s-pct\n") and "imported" in shown
    assert "0 added, 0 removed, 0 changed" in run("library", "diff", str(exported))
    lib.review("s-pct", "edit", changes={"title": "Percent off: multiply by 1 - p"}, by="ana")
    lib.delete("s-json", reason="test")
    out = run("library", "diff", str(exported), "live")
    assert "- s-json" in out and "~ s-pct" in out and "0 added, 1 removed, 1 changed" in out
    assert "title: Rule s-pct → Percent off: multiply by 1 - p" in out and "review: unreviewed → edited" in out
    assert runner.invoke(app, ["library", "diff", str(exported), "--exit-code"]).exit_code == 1


def test_review_flags_and_interactive_review(lib: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "approved s-pct" in run("library", "review", "--approve", "s-pct", "--reason", "reads well")
    assert "retired s-json" in run("library", "review", "--retire", "s-json", "--reason", "duplicate of a tool doc")
    run("library", "review", "--edit", "g-days", "--title", "Count days month by month")
    assert (lib.get("s-pct").review, lib.get("s-json").status) == ("approved", "retired")  # type: ignore[union-attr]
    assert lib.get("g-days").title == "Count days month by month"  # type: ignore[union-attr]
    failed = runner.invoke(app, ["library", "review", "--retire", "s-pct"])
    assert failed.exit_code != 0 and "needs a reason" in str(failed.exception)

    lib.restore([entry("s-a", "When adding fractions"), entry("s-b", "When dividing by zero")], reason="test")
    monkeypatch.setenv("EDITOR", "sed -i 's/Then check it./Then check it twice./'")
    result = runner.invoke(app, ["library", "review"], input="e\n\nr\nwrong advice\n")
    assert result.exit_code == 0, result.output
    assert "2 unreviewed entries" in result.output and "edited s-a" in result.output and "retired s-b" in result.output
    assert lib.get("s-a").body == "Do the thing.\nThen check it twice."  # type: ignore[union-attr]
    assert lib.get("s-b").status_reason.endswith(": wrong advice")  # type: ignore[union-attr]
    decisions = [(r["id"], r["decision"]) for r in lib.history() if r["action"] == "review"]
    assert decisions == [("s-pct", "approve"), ("s-json", "retire"), ("g-days", "edit"), ("s-a", "edit"),
                         ("s-b", "retire")]


def test_retrieve_and_bundle(lib: Library, tmp_path: Path) -> None:
    out = run("library", "retrieve", "15% off a $40 shirt", "--k", "1", "--budget", "400")
    assert "s-pct" in out and "chosen" in out and "below_threshold" in out and "g-days" not in out  # a candidate
    assert "2 entries" in run("library", "bundle", str(tmp_path / "edge"))
    assert (tmp_path / "edge" / "agentkd_bundle.py").is_file() and (tmp_path / "edge" / "minilm.npz").is_file()


def test_a_malformed_import_exits_with_the_file_and_line(lib: Library, tmp_path: Path) -> None:
    run("library", "export", str(tmp_path / "files"))
    bad = tmp_path / "files" / "s-json.md"
    bad.write_text(bad.read_text().replace("status: admitted", "status: [admitted"))
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "agentkd.cli", "library", "import", str(tmp_path / "files")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 5, done.stderr
    message = " ".join(done.stderr.split())
    assert f"1 of 3 strategy files in {tmp_path / 'files'} are malformed" in message
    assert f"{bad}, line" in message and "invalid YAML" in message and "nothing was imported" in message
