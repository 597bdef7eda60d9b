"""Strategy files: one Markdown file per entry, YAML front matter for every structured field, the body below.

The format is exact so that export → import → export is byte-identical: keys in the schema's order,
datetimes in UTC ISO 8601, no line folding, one blank line before the body and one newline after it.
Import checks every file before it writes anything, so a broken batch imports nothing. Files are read
only when they are regular files of bounded size, and their YAML only when it has no anchors or aliases
and is shallowly nested, so a hostile file cannot exhaust memory or the stack. Export syncs through a
manifest (see ``export_library``): it only ever overwrites or removes files it wrote itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ValidationError

from agentkd.errors import LibraryError, LibraryFormatError
from agentkd.library.fileio import (
    ID_RULE,
    MAX_FILE_BYTES,
    SAFE_ID,
    atomic_write,
    existing_bytes,
    os_error,
    read_manifest,
    read_regular,
    sha256_of,
    unsafe_yaml,
    write_manifest,
)
from agentkd.schema import Effect, Provenance, Strategy

if TYPE_CHECKING:
    from agentkd.library.store import Library

DELIMITER = "---"
_NESTED: dict[str, type[BaseModel]] = {"provenance": Provenance, "effect": Effect}


def _utc(value: Any) -> Any:
    """Datetimes as aware UTC (naive ones are taken to be UTC already), so they print the same way every time."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, dict):
        return {k: _utc(v) for k, v in value.items()}
    return value


class _Dumper(yaml.SafeDumper):
    """Safe YAML with datetimes written as ``2025-01-02T03:04:05Z``."""


def _timestamp(dumper: yaml.SafeDumper, value: datetime) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:timestamp", value.isoformat().replace("+00:00", "Z"))


_Dumper.add_representer(datetime, _timestamp)


def render_file(s: Strategy) -> str:
    """The entry as a strategy file."""
    data = _utc(s.model_dump(exclude={"body": True, "worked": {"program"}}))  # an example's program is its body
    front = yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=2**31 - 1
    )
    if s.effect.trials:
        from agentkd.library.curation import describe

        front += f"# measured: {describe(s.effect)}\n"
    return f"{DELIMITER}\n{front}{DELIMITER}\n\n{s.body}\n"


def _line(node: yaml.Node | None, loc: Iterable[Any]) -> int | None:
    """The 0-based line, within the front matter, of the value at ``loc`` (or of its nearest parent)."""
    line = None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == str(key)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        if node is None:
            break
        line = node.start_mark.line
    return line


def _duplicates(node: yaml.Node | None, prefix: str = "") -> list[tuple[str, int]]:
    if not isinstance(node, yaml.MappingNode):
        return []
    seen: set[str] = set()
    found: list[tuple[str, int]] = []
    for k, v in node.value:
        if k.value in seen:
            found.append((prefix + k.value, k.start_mark.line))
        seen.add(k.value)
        found += _duplicates(v, f"{prefix}{k.value}.")
    return found


def _unknown_keys(data: dict[str, Any]) -> list[str]:
    known = set(Strategy.model_fields) - {"body"}
    unknown = [k for k in data if k not in known]
    for name, model in _NESTED.items():
        if isinstance(data.get(name), dict):
            unknown += [f"{name}.{k}" for k in data[name] if k not in model.model_fields]
    return unknown


def parse_file(text: str, path: Path | str = "<text>") -> Strategy:
    """Read one strategy file; a malformed one raises ``LibraryFormatError`` naming the file and the line or field."""
    if len(text) > MAX_FILE_BYTES:
        raise LibraryFormatError(f"{path}: {len(text)} characters is too large for a strategy file "
                                 f"(at most {MAX_FILE_BYTES}).", hint="shorten the body; nothing was imported.")
    lines = text.replace("\r\n", "\n").split("\n")
    if lines[0] != DELIMITER:
        raise LibraryFormatError(f"{path}, line 1: a strategy file must start with a '---' line (YAML front matter).")
    try:
        end = lines.index(DELIMITER, 1)
    except ValueError:
        raise LibraryFormatError(
            f"{path}, line 1: the front matter is not closed.", hint="add a '---' line between it and the body."
        ) from None
    front = "\n".join(lines[1:end]) + "\n"
    body = "\n".join(lines[end + 1 :])
    body = body[1:] if body.startswith("\n") else body
    body = body[:-1] if body.endswith("\n") else body
    problems = _front_problems(front, body, Path(path).stem)
    if problems:
        raise LibraryFormatError(f"{path}, " + f"\n{path}, ".join(problems), hint="fix the file and import again.")
    return Strategy.model_validate({**yaml.safe_load(front), "body": body})


def _front_problems(front: str, body: str, stem: str) -> list[str]:
    """What is wrong with a file's front matter and body, each as 'line N, field F: what' (empty when valid)."""
    try:
        refused = unsafe_yaml(front)
        if refused:
            return [refused]
        node = yaml.compose(front, Loader=yaml.SafeLoader)
        data = yaml.safe_load(front)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f"line {mark.line + 2}: " if mark else ""
        context = ""
        if e.context and e.context_mark and e.problem_mark and e.context_mark.line != e.problem_mark.line:
            context = f" ({e.context} that starts on line {e.context_mark.line + 2})"
        return [f"{line}invalid YAML: {e.problem or e.context}{context}"]
    if not isinstance(data, dict):
        return ["line 2: the front matter must be a mapping of field: value lines"]
    problems = [f"line {n + 2}, field {k}: given twice" for k, n in _duplicates(node)]
    problems += [f"field {k}: unknown (the fields are those of agentkd.schema.Strategy)" for k in _unknown_keys(data)]
    if isinstance(data.get("id"), str) and not SAFE_ID.fullmatch(data["id"]):
        problems.append(f"line {(_line(node, ['id']) or 0) + 2}, field id: {_short(data['id'])} cannot be a file "
                        f"name: {ID_RULE}")
    if data.get("id") != stem:
        problems.append(f"line {(_line(node, ['id']) or 0) + 2}, field id: {data.get('id')!r} must match the file "
                        f"name {stem}.md")
    if not body.strip():
        problems.append("the body (the Markdown after the front matter) is empty")
    try:
        Strategy.model_validate({**data, "body": body})
    except ValidationError as e:
        for err in e.errors():
            at = _line(node, err["loc"])
            where = f"line {at + 2}, " if at is not None else ""
            dotted = ".".join(str(p) for p in err["loc"])
            got = "" if err["type"] == "missing" else f" (got {_short(err.get('input'))})"
            problems.append(f"{where}field {dotted}: {err['msg'].lower()}{got}")
    return problems


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_dir(directory: Path) -> dict[str, Strategy]:
    """Every ``*.md`` strategy file of a directory, all validated: one error lists every malformed file."""
    if not directory.is_dir():
        raise LibraryError(
            f"{directory} is not a directory.", hint="give a directory that `agentkd library export` wrote."
        )
    entries: dict[str, Strategy] = {}
    problems: list[str] = []
    paths = sorted(directory.glob("*.md"))
    for path in paths:
        try:
            entries[path.stem] = parse_file(read_regular(path).decode("utf-8"), path)
        except LibraryFormatError as e:
            problems.append(e.args[0])
        except UnicodeDecodeError as e:
            problems.append(f"{path}: cannot be read as UTF-8 text ({e})")
        except OSError as e:
            problems.append(f"{path}: cannot be read ({e.strerror or e})")
    if problems:
        raise LibraryFormatError(
            f"{len(problems)} of {len(paths)} strategy files in {directory} are malformed:\n" + "\n".join(problems),
            hint="fix them and run the import again; nothing was imported.",
        )
    return entries


@dataclass
class SyncReport:
    """What an export or import did, by entry id."""

    written: list[str] = field(default_factory=list)  # export: files written; import: entries added or replaced
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # export only: files of entries no longer in the library
    kept: list[str] = field(default_factory=list)  # export only: such files left alone, edited since export wrote them


def export_library(lib: Library, directory: Path) -> SyncReport:
    """Write every entry of ``lib`` to ``directory`` (created if needed) and remove the files export wrote
    for entries no longer in the library; files export did not write are never changed or removed.

    The directory keeps a manifest (``.agentkd-export.json``): the name and sha256 of every file the last
    export wrote. A file is removed only when the manifest lists it and it still has exactly that content,
    and overwritten only when it is absent, unchanged since it was written, or an export-format file of the
    same entry from before manifests existed. Anything else (a person's notes, a file edited since, a link
    planted at an entry's name) is left alone, and a conflict stops the export before it writes anything.
    Files are written to a temporary name and renamed into place: a rename replaces a link rather than
    writing through it, and a full disk leaves the old file whole.
    """
    entries = lib.list()
    bad = [s.id for s in entries if not SAFE_ID.fullmatch(s.id)]
    if bad:
        raise LibraryError(f"entries {bad} have ids that cannot be file names.",
                           hint=f"{ID_RULE}; re-add those entries under such ids.")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise os_error("create the export directory", directory, e) from e
    if not directory.is_dir():
        raise LibraryError(f"{directory} is not a directory.", hint="choose a directory to export to.")
    ours = read_manifest(directory)
    wanted = {f"{s.id}.md": render_file(s).encode("utf-8") for s in entries}
    plan = _plan(directory, wanted, ours)  # every check before any write: a conflict writes nothing
    report = SyncReport()
    manifest: dict[str, str] = {}
    try:
        for name, data in wanted.items():
            if plan[name]:
                atomic_write(directory, name, data)
                report.written.append(name[:-3])
            else:
                report.unchanged.append(name[:-3])
            manifest[name] = sha256_of(data)
        for name, digest in sorted(ours.items()):
            if name in wanted:
                continue
            path = directory / name
            try:
                current = existing_bytes(path)
            except LibraryError:
                current = None  # replaced by a link or a directory since: not ours any more
            if current is not None and sha256_of(current) == digest:
                path.unlink()
                report.removed.append(name[:-3])
            elif current is not None:
                report.kept.append(name[:-3])  # edited since: no longer ours, so no longer in the manifest
        write_manifest(directory, manifest)
    except OSError as e:
        raise os_error("write to", directory, e) from e
    return report


def _plan(directory: Path, wanted: dict[str, bytes], ours: dict[str, str]) -> dict[str, bool]:
    """For each file, whether it must be written; raises LibraryError for one export may not overwrite."""
    plan: dict[str, bool] = {}
    for name, data in wanted.items():
        path = directory / name
        current = existing_bytes(path)
        if current is None or current == data:
            plan[name] = current is None
            continue
        if name in ours:
            if sha256_of(current) != ours[name]:
                raise LibraryError(
                    f"{path} was edited since the last export; exporting would overwrite the edit.",
                    hint=f"import it first (agentkd library import {directory}), or delete it; nothing was written.",
                )
        elif not current.startswith(f"{DELIMITER}\nid: {name[:-3]}\n".encode()):
            raise LibraryError(f"{path} is not a file that export wrote; exporting would overwrite it.",
                               hint="move it away (or export to another directory); nothing was written.")
        plan[name] = True
    return plan


def import_library(lib: Library, directory: Path) -> SyncReport:
    """Write the entries of a strategy directory into ``lib`` exactly as the files say (after validating them all).

    Entries with the same id are replaced; entries the files do not mention are kept.
    """
    entries = read_dir(directory)
    if not entries:
        raise LibraryError(f"{directory} holds no strategy files (*.md).", hint="export a library there first.")
    live = {s.id: s for s in lib.list()}
    report = SyncReport()
    changed = []
    for id, s in sorted(entries.items()):
        if live.get(id) == s:
            report.unchanged.append(id)
        else:
            changed.append(s)
            report.written.append(id)
    if changed:
        lib.restore(changed, reason=f"imported from {directory}")
    return report
