"""Hostile and careless input to the library's files (issue #17): export never loses or writes through
anything it did not write, import refuses what would exhaust memory or the stack, imported numbers and ids
obey the same rules as everything else, a read-only library still reads, and a full disk is a clean error."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentkd.cli.main import app
from agentkd.errors import LibraryError, LibraryFormatError
from agentkd.library import Library
from agentkd.library.files import export_library, import_library, read_dir, render_file
from agentkd.schema import Effect, Strategy

ROOT = Path(__file__).parent.parent
runner = CliRunner()


def entry(id: str, **fields: object) -> Strategy:
    base: dict[str, object] = {"title": f"Rule {id}", "trigger": f"When the problem is about {id}",
                               "body": "Do the thing."}
    return Strategy(id=id, **{**base, **fields})  # type: ignore[arg-type]


@pytest.fixture
def lib(tmp_path: Path) -> Library:
    library = Library.open(str(tmp_path / "lib"), "robust")
    library.restore([entry("s-a", status="admitted"), entry("s-b"), entry("s-c")], reason="test")
    return library


# -- export: only its own files ---------------------------------------------------------------------


def test_export_removes_only_the_files_it_wrote(lib: Library, tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_library(lib, out)
    notes = out / "notes.md"
    notes.write_text("---\nid: notes\n---\n\nmy own notes, in the same shape as an entry\n")
    (out / "s-c.md").write_text((out / "s-c.md").read_text() + "\nan edit of mine\n")
    for id in ("s-b", "s-c"):
        lib.delete(id, reason="test")
    report = export_library(lib, out)
    assert report.removed == ["s-b"] and report.kept == ["s-c"]
    assert notes.is_file() and (out / "s-c.md").is_file() and not (out / "s-b.md").exists()


def test_export_refuses_to_overwrite_a_file_edited_since_it_wrote_it(lib: Library, tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_library(lib, out)
    (out / "s-a.md").write_text("mine now\n")
    lib.review("s-a", "edit", changes={"title": "A new title for a"}, by="ana")
    with pytest.raises(LibraryError, match="edited since the last export"):
        export_library(lib, out)
    assert (out / "s-a.md").read_text() == "mine now\n"


def test_export_never_writes_through_or_removes_a_symlink(lib: Library, tmp_path: Path) -> None:
    out, victim = tmp_path / "out", tmp_path / "other-file"
    victim.write_text("precious\n")
    out.mkdir()
    (out / "s-a.md").symlink_to("../other-file")
    with pytest.raises(LibraryError, match="symbolic link"):
        export_library(lib, out)
    assert victim.read_text() == "precious\n" and not (out / "s-b.md").exists(), "nothing written at all"
    # a file export wrote, swapped for a link after the entry was deleted: neither followed nor removed
    (out / "s-a.md").unlink()
    export_library(lib, out)
    (out / "s-b.md").unlink()
    (out / "s-b.md").symlink_to("../other-file")
    lib.delete("s-b", reason="test")
    report = export_library(lib, out)
    assert "s-b" not in report.removed and victim.read_text() == "precious\n" and (out / "s-b.md").is_symlink()


def test_a_library_that_does_not_exist_is_not_created_by_reading_it(lib: Library, tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_library(lib, out)
    before = sorted(p.name for p in out.iterdir())
    typo = tmp_path / "lbi"
    result = runner.invoke(app, ["library", "export", str(out), "--library", str(typo), "--collection", "robust"])
    assert isinstance(result.exception, LibraryError) and "no strategy library" in str(result.exception)
    assert not typo.exists() and sorted(p.name for p in out.iterdir()) == before
    with pytest.raises(LibraryError, match="no collection 'nosuch'"):
        Library.open(str(tmp_path / "lib"), "nosuch", create=False)


@pytest.mark.parametrize("url", ["ftp://example.com/lib", "file:///tmp/lib", "s3://bucket/lib"])
def test_a_url_that_is_not_http_is_refused_and_creates_nothing(url: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LibraryError, match="URL"):
        Library.open(url, "robust")
    assert list(tmp_path.iterdir()) == []


def test_export_onto_a_path_under_a_file_is_a_clean_error(lib: Library, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(LibraryError, match="a-file") as info:
        export_library(lib, tmp_path / "a-file" / "out")
    assert info.value.hint and "file" in info.value.hint


# -- import: bounded, shallow, no aliases -----------------------------------------------------------


def _import_dir(tmp_path: Path, name: str, text: str) -> Path:
    d = tmp_path / "in"
    d.mkdir(exist_ok=True)
    (d / name).write_text(text)
    return d


LAUGHS = "\n".join(["---", "id: s-lol", "title: &a lol",
                    *[f"x{i}: &a{i} [{','.join([f'*a{i - 1}' if i else '*a'] * 9)}]" for i in range(9)],
                    "trigger: *a8", "---", "", "body", ""])


@pytest.mark.parametrize(("name", "text", "why"), [
    ("s-lol.md", LAUGHS, "anchors and aliases"),
    ("s-deep.md", "---\nid: s-deep\ntags: " + "[" * 200_000 + "]" * 200_000 + "\n---\n\nbody\n", "nested deeper"),
    ("s-big.md", "---\nid: s-big\ntitle: t\n---\n\n" + "x" * (2 << 20) + "\n", "larger than"),
])
def test_import_refuses_yaml_that_would_exhaust_memory_or_the_stack(lib: Library, tmp_path: Path, name: str,
                                                                    text: str, why: str) -> None:
    directory = _import_dir(tmp_path, name, text)
    t0 = time.perf_counter()
    with pytest.raises(LibraryFormatError, match=why) as info:
        import_library(lib, directory)
    assert name in str(info.value) and time.perf_counter() - t0 < 5
    assert lib.count() == 3


def test_import_reads_no_link_and_no_device(lib: Library, tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    (d / "s-zero.md").symlink_to("/dev/zero")
    with pytest.raises(LibraryFormatError, match="symbolic link"):
        read_dir(d)


# -- numbers and ids ---------------------------------------------------------------------------------


def _with(s: Strategy, old: str, new: str) -> str:
    text = render_file(s)
    assert old in text
    return text.replace(old, new)


@pytest.mark.parametrize(("old", "new", "why"), [
    ("  wins_with: 3\n", "  wins_with: 1000000\n", "wins_with (1000000) cannot exceed trials"),
    ("  wins_without: 1\n", "  wins_without: -1\n", "greater than or equal to 0"),
    ("  trials: 4\n", "  trials: -4\n", "greater than or equal to 0"),
    ("uses: 5\n", "uses: -5\n", "greater than or equal to 0"),
    ("successes: 2\n", "successes: 9\n", "successes (9) cannot exceed uses"),
    ("  version: 1\n", "  version: -1\n", "greater than or equal to 1"),
])
def test_imported_counts_are_checked(lib: Library, tmp_path: Path, old: str, new: str, why: str) -> None:
    s = entry("s-n", effect=Effect(trials=4, wins_with=3, wins_without=1), uses=5, successes=2)
    d = _import_dir(tmp_path, "s-n.md", _with(s, old, new))
    with pytest.raises(LibraryFormatError, match=r"s-n\.md, line \d+") as info:
        import_library(lib, d)
    assert why in str(info.value)


@pytest.mark.parametrize("bad", ["..", "a b ü", ".hidden", "-dash"])
def test_an_id_that_cannot_be_a_file_name_is_refused_at_every_door(lib: Library, tmp_path: Path, bad: str) -> None:
    d = _import_dir(tmp_path, f"{bad}.md", render_file(entry("s-x")).replace("id: s-x", f"id: '{bad}'"))
    with pytest.raises(LibraryFormatError, match="cannot be a file name"):
        import_library(lib, d)
    with pytest.raises(LibraryError, match="cannot be file names"):
        lib.restore([entry("s-x").model_copy(update={"id": bad})], reason="test")
    with pytest.raises(LibraryError, match="cannot be file names"):
        lib.add(entry("s-x").model_copy(update={"id": bad}))
    export_library(lib, tmp_path / "out")  # the library still exports


def test_control_characters_never_reach_the_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    library = Library.open(str(tmp_path / "lib"), "robust")
    nasty = "Rule \x1b[31mred\x1b]0;owned\x07 \u202eevil\x9b2J"
    library.restore([entry("s-esc", title=nasty, status_reason="\x1b[2J")], reason="\x1b[1mimported")
    args = ["--library", str(tmp_path / "lib"), "--collection", "robust"]
    for command in (["list"], ["show", "s-esc"], ["diff", "live", "live"]):
        result = runner.invoke(app, ["library", *command, *args], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        assert not any(c in result.output for c in "\x1b\x07\x9b\u202e"), (command, result.output)
    assert "Rule [31mred]0;owned evil2J" in runner.invoke(app, ["library", "list", *args],
                                                           env={"COLUMNS": "200"}).output


# -- read-only libraries and full disks, on real mounts -------------------------------------------------


def _namespace() -> tuple[str, ...]:
    """``unshare`` into a user and mount namespace, where a test may mount a tmpfs or a read-only bind."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs none /mnt 2>/dev/null || mount -t tmpfs "
                            "none /tmp"], capture_output=True)
    if probe.returncode:
        pytest.skip(f"no user namespaces here: {probe.stderr.decode()[:200]}")
    return ("unshare", "-rm")


def _in_namespace(setup: str, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """``agentkd ARGS`` after ``setup`` (mounts) in a namespace of its own; the mounts vanish with it."""
    argv = " ".join(f"'{a}'" for a in args)
    script = f"set -e; {setup}; exec {sys.executable} -m agentkd.cli {argv}"
    env = {**os.environ, "AGENTKD_HOME": str(home), "COLUMNS": "200", "PYTHONPATH": str(ROOT)}
    return subprocess.run([*_namespace(), "sh", "-c", script], capture_output=True, text=True, timeout=180,
                          cwd=ROOT, env=env)


def test_a_read_only_library_lists_shows_exports_and_searches(lib: Library, tmp_path: Path) -> None:
    ro = f"mount --bind {tmp_path / 'lib'} {tmp_path / 'lib'} && mount -o remount,bind,ro {tmp_path / 'lib'}"
    where = ("--library", str(tmp_path / "lib"), "--collection", "robust")
    home = tmp_path / "home"
    listed = _in_namespace(ro, "library", "list", *where, home=home)
    assert listed.returncode == 0 and "s-a" in listed.stdout, listed.stderr
    shown = _in_namespace(ro, "library", "show", "s-a", *where, home=home)
    assert shown.returncode == 0 and "id: s-a" in shown.stdout, shown.stderr
    exported = _in_namespace(ro, "library", "export", str(tmp_path / "out"), *where, home=home)
    assert exported.returncode == 0 and (tmp_path / "out" / "s-a.md").is_file(), exported.stderr
    found = _in_namespace(ro, "library", "retrieve", "the problem is about s-a", *where, home=home)
    assert found.returncode == 0 and "s-a" in found.stdout, found.stderr
    changed = _in_namespace(ro, "library", "review", "--approve", "s-a", *where, home=home)
    assert changed.returncode == 5 and "read-only" in changed.stderr and "Traceback" not in changed.stderr
    assert lib.get("s-a") is not None and lib.get("s-a").review == "unreviewed"  # type: ignore[union-attr]


def test_a_full_disk_is_a_clean_error(lib: Library, tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    Library.open(str(tmp_path / "lib"), "robust").restore(
        [entry(f"s-{i}", body="x" * 4000) for i in range(40)], reason="big")
    full = f"mount -t tmpfs -o size=64k none {disk}"
    where = ("--library", str(tmp_path / "lib"), "--collection", "robust")
    out = _in_namespace(full, "library", "export", str(disk / "out"), *where, home=tmp_path / "home")
    assert out.returncode == 5, out.stdout + out.stderr
    assert "No space left" in out.stderr and "free some disk space" in out.stderr and "Traceback" not in out.stderr


def test_a_read_only_home_is_a_clean_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    script = tmp_path / "teacher.json"
    script.write_text('{"steps": ["hello"]}')
    ro = f"mount --bind {home} {home} && mount -o remount,bind,ro {home}"
    out = _in_namespace(ro, "build", "--teacher", f"script:{script}", "--library", str(tmp_path / "lib"), home=home)
    assert out.returncode != 0 and "Traceback" not in out.stderr + out.stdout
    assert "Read-only file system" in out.stderr and "AGENTKD_HOME" in out.stderr
