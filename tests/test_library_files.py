"""Strategy files: the exact format, export → import → export round trip, and refusal of malformed files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentkd.errors import LibraryFormatError
from agentkd.library import Library
from agentkd.library.diff import diff_entries
from agentkd.library.files import export_library, import_library, parse_file, read_dir, render_file
from agentkd.schema import Effect, Provenance, Strategy

SNAPSHOT = Path(__file__).parent / "snapshots" / "strategy_file.md"

FIXED = Strategy(
    id="s-percent",
    kind="strategy",
    title="Convert percents to fractions first",
    trigger="When a word problem asks for a percentage of a total: 'x% of y'",
    body="1. Write the percent as a fraction over 100.\n2. Multiply it by the total.\n\n"
    "- Check: is the part smaller than the total?",
    tool_hints=["calculator: write 15% of 80 as 15/100*80"],
    tasks=["gsm_symbolic"],
    domains=["arithmetic", "finance"],
    provenance=Provenance(
        teacher="openai/gpt-4o-mini",
        student="qwen2.5-coder-0.5b",
        student_quantization="Q4_K_M",
        source_scenarios=["gsm-17", "gsm-17-sib1"],
        created=datetime(2025, 3, 1, 9, 30, 0, tzinfo=UTC),
        updated=datetime(2025, 3, 2, 10, 0, 5, tzinfo=UTC),
        version=3,
    ),
    effect=Effect(trials=8, wins_with=6, wins_without=2),
    status="admitted",
    review="approved",
    status_reason="measured lift +0.50",
    uses=12,
    successes=9,
)


def entries() -> list[Strategy]:
    """Entries that exercise the format: unicode, quotes, colons, multi-line and trailing-newline bodies."""
    base = FIXED.model_copy(update={"review": "unreviewed"})
    return [
        FIXED,
        base.model_copy(update={"id": "g-dates", "kind": "guidance", "title": "Count days month by month",
                                "trigger": "When dates span months: «Jan → Mar»", "body": "List months.\n",
                                "tasks": []}),
        base.model_copy(update={"id": "s-json", "title": "Validate JSON: before calling", "trigger": "When a tool "
                                "takes JSON arguments, e.g. {\"a\": 1}", "body": "  Indented first line\n\n\nend",
                                "status": "retired", "status_reason": "retired by ana: superseded"}),
        base.model_copy(update={"id": "s-empty-hints", "title": "Plan the steps", "trigger": "# When many steps",
                                "body": "---\nnot front matter\n---", "tool_hints": [], "effect": Effect()}),
    ]


@pytest.fixture
def lib(tmp_path: Path) -> Library:
    library = Library.open(str(tmp_path / "lib"), "files-lib")
    library.restore(entries(), reason="test")
    return library


def test_a_strategy_file_has_this_exact_format() -> None:
    text = render_file(FIXED)
    assert text == SNAPSHOT.read_text(encoding="utf-8")
    assert parse_file(text, "s-percent.md") == FIXED


def test_export_import_export_is_byte_identical(lib: Library, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    assert sorted(export_library(lib, first).written) == sorted(s.id for s in entries())
    fresh = Library.open(str(tmp_path / "fresh"), "files-lib")
    assert len(import_library(fresh, first).written) == 4
    assert fresh.get("s-json") == lib.get("s-json")  # timestamps, versions, status kept exactly
    export_library(fresh, second)
    files = sorted(p.name for p in first.glob("*.md"))
    assert files == sorted(p.name for p in second.glob("*.md")) == sorted(f"{s.id}.md" for s in entries())
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    again = import_library(lib, first)  # importing what is already there changes nothing
    assert again.written == [] and len(again.unchanged) == 4
    assert len(export_library(lib, first).unchanged) == 4
    assert [r["action"] for r in fresh.history("s-percent")] == ["imported"]


def test_a_malformed_file_is_refused_with_its_line_and_nothing_is_imported(lib: Library, tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_library(lib, out)
    good = (out / "s-percent.md").read_text()
    (out / "s-percent.md").write_text(good.replace("trials: 8", "trials: eight"))
    (out / "g-dates.md").write_text((out / "g-dates.md").read_text().replace("tasks: []", "tasks: [gsm"))
    fresh = Library.open(str(tmp_path / "fresh"), "files-lib")
    with pytest.raises(LibraryFormatError) as info:
        import_library(fresh, out)
    message = str(info.value)
    assert "2 of 4 strategy files" in message
    assert f"{out / 's-percent.md'}, line 24, field effect.trials: input should be a valid integer" in message
    assert (
        f"{out / 'g-dates.md'}, line 9: invalid YAML: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence that starts on line 8)" in message
    )
    assert "nothing was imported" in message
    assert fresh.count() == 0 and fresh.history() == []


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace("id: s-percent", "id: s-other"), "line 2, field id: 's-other' must match the file name"),
        (lambda t: t.replace("uses: 12", "uses: 12\ntitel: typo"), "field titel: unknown"),
        (lambda t: t.replace("uses: 12", "uses: 12\nuses: 13"), "field uses: given twice"),
        (lambda t: t.replace("status: admitted", "status: admited"), "line 29, field status: input should be"),
        (lambda t: t.replace("  version: 3\n", ""), "s-percent.md"),  # a default fills it: valid
        (lambda t: t[: t.rindex("---")] + "---\n\n", "the body (the Markdown after the front matter) is empty"),
        (lambda t: t[4:], "line 1: a strategy file must start with a '---' line"),
        (lambda t: t.replace("\n---\n\n", "\n"), "the front matter is not closed"),
    ],
)
def test_each_kind_of_mistake_is_named(edit: object, expected: str, tmp_path: Path) -> None:
    path = tmp_path / "s-percent.md"
    path.write_text(edit(render_file(FIXED)))  # type: ignore[operator]
    if expected == "s-percent.md":
        assert read_dir(tmp_path)["s-percent"].provenance.version == 1
        return
    with pytest.raises(LibraryFormatError, match=r"s-percent\.md") as info:
        read_dir(tmp_path)
    assert expected in str(info.value)


def test_export_mirrors_the_library_and_leaves_other_files(lib: Library, tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_library(lib, out)
    (out / "README.md").write_text("# my notes\n")
    lib.delete("s-json", reason="test")
    report = export_library(lib, out)
    assert report.removed == ["s-json"] and report.written == [] and len(report.unchanged) == 3
    assert (out / "README.md").exists() and not (out / "s-json.md").exists()


def test_diff_names_added_removed_and_changed_fields() -> None:
    a = {s.id: s for s in entries()}
    b = dict(a)
    del b["s-json"]
    b["s-new"] = FIXED.model_copy(update={"id": "s-new"})
    b["s-percent"] = FIXED.model_copy(update={"title": "Percents as fractions", "effect": Effect(trials=9)})
    got = {d.id: d for d in diff_entries(a, b)}
    assert {i: d.change for i, d in got.items()} == {"s-json": "removed", "s-new": "added", "s-percent": "changed"}
    fields = {f.name: (f.before, f.after) for f in got["s-percent"].fields}
    assert fields == {
        "title": ("Convert percents to fractions first", "Percents as fractions"),
        "effect.trials": (8, 9),
        "effect.wins_with": (6, 0),
        "effect.wins_without": (2, 0),
    }
