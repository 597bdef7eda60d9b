"""From verified trajectories to a dataset on disk: format, validate, dedupe, split, write, describe.

Nothing reaches a file unchecked: each record passes its format's rules and renders through the student's
own chat template within the token limit, or it is dropped with the reason. Every file is written to a
temporary name and renamed into place, so an interrupted export never leaves half a record or half a file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from agentkd.sft.card import DEFAULT_MAX_TOKENS, CardInfo, render_card
from agentkd.sft.formats import FORMATS, conversation
from agentkd.sft.hygiene import dedupe_text, group_key, near_duplicates, validation_groups
from agentkd.sft.report import ExportConfig, ExportReport, Written
from agentkd.sft.trajectories import Dropped, Trajectory
from agentkd.sft.validate import CHECKS, Renderer, TemplateCheck

SPLITS = ("train", "validation")


def build_records(
    trajectories: Sequence[Trajectory],
    config: ExportConfig,
    renderer: Renderer,
    *,
    instructions: Callable[[str], str] = lambda task: "",
) -> tuple[list[Written], list[Dropped]]:
    """Every trajectory as a checked record of ``config.format``, or a ``Dropped`` saying which check failed."""
    fmt = FORMATS[config.format]
    template = TemplateCheck(renderer, config.max_tokens or DEFAULT_MAX_TOKENS)
    written: list[Written] = []
    dropped: list[Dropped] = []
    texts: list[str] = []
    for traj in trajectories:
        sid = traj.scenario.id
        try:
            messages, tools = conversation(traj, config.options, instructions(traj.scenario.task))
            record = fmt.encode(messages, tools)
            line = json.dumps(record, ensure_ascii=False)
            line.encode("utf-8")
        except (ValueError, KeyError, TypeError) as exc:  # e.g. tool arguments that are not JSON
            dropped.append(Dropped(scenario_id=sid, stage="format", reason=f"cannot be written as {fmt.name}",
                                   detail=f"{type(exc).__name__}: {exc}"))
            continue
        if problems := CHECKS[fmt.name](record):
            dropped.append(Dropped(scenario_id=sid, stage="format", reason=f"breaks a {fmt.name} rule",
                                   detail="; ".join(problems)))
            continue
        rendered = template(record, fmt.name)
        if rendered.problem is not None:
            if rendered.tokens:
                dropped.append(Dropped(scenario_id=sid, stage="length", reason="longer than the token limit",
                                       detail=rendered.problem))
            else:
                dropped.append(Dropped(scenario_id=sid, stage="template", reason="does not render with the "
                                       "student's chat template", detail=rendered.problem))
            continue
        written.append(Written(traj, record, rendered.tokens))
        texts.append(dedupe_text(messages))
    dupes = near_duplicates(texts, config.dedupe_threshold)
    for i, (j, similarity) in dupes.items():
        w, original = written[i], written[j]
        label = "with" if original.traj.with_strategies else "without"
        dropped.append(Dropped(scenario_id=w.traj.scenario.id, stage="dedupe", reason="near-duplicate of a kept record",
                               detail=f"{similarity:.2f} similar to {original.traj.scenario.id} ({label} strategies)"))
    return [w for i, w in enumerate(written) if i not in dupes], dropped


def assign_splits(written: Sequence[Written], config: ExportConfig) -> tuple[int, int]:
    """Put whole groups (a category, or a scenario) into validation; returns (validation groups, all groups)."""
    keys = [group_key(w.traj.scenario.category, w.traj.scenario.id, w.traj.scenario.task, config.group_by)
            for w in written]
    val = validation_groups(keys, config.val_fraction, config.seed)
    for w, key in zip(written, keys, strict=True):
        w.split = "validation" if key in val else "train"
    return len(val), len(set(keys))


def _metadata(w: Written, line: int) -> dict[str, Any]:
    sc, traj = w.traj.scenario, w.traj
    return {
        "split": w.split, "line": line, "scenario_id": sc.id, "task": sc.task, "category": sc.category,
        "teacher": traj.teacher, "with_strategies": traj.with_strategies, "strategy_ids": traj.strategy_ids,
        "tokens": w.tokens, "steps": traj.steps, "tool_errors": traj.tool_errors, "nudged": traj.nudged,
        "verified_by": traj.verdict.method if traj.verdict else None,
    }


def write_atomic(path: Path, lines: Iterable[str]) -> Path:
    """Write ``lines`` to ``path`` through a temporary file renamed into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def _jsonl(items: Iterable[Any]) -> list[str]:
    return [json.dumps(x, ensure_ascii=False) for x in items]


def write_dataset(
    out: Path,
    trajectories: Sequence[Trajectory],
    dropped: Sequence[Dropped],
    config: ExportConfig,
    renderer: Renderer,
    info: CardInfo,
    *,
    collected: int,
    instructions: Callable[[str], str] = lambda task: "",
) -> ExportReport:
    """Format, check, dedupe and split ``trajectories``; write the splits, provenance, drops and the card."""
    written, record_drops = build_records(trajectories, config, renderer, instructions=instructions)
    groups = assign_splits(written, config)
    all_dropped = [*dropped, *record_drops]
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    meta: list[dict[str, Any]] = []
    for split in SPLITS:
        rows = [w for w in written if w.split == split]
        files.append(write_atomic(out / f"{split}.jsonl", _jsonl(w.record for w in rows)))
        meta += [_metadata(w, i) for i, w in enumerate(rows, start=1)]
    files.append(write_atomic(out / "metadata.jsonl", _jsonl(meta)))
    files.append(write_atomic(out / "trajectories.jsonl", [t.model_dump_json() for t in trajectories]))
    files.append(write_atomic(out / "dropped.jsonl", _jsonl(d.model_dump() for d in all_dropped)))
    if config.format == "sharegpt":
        files.append(write_atomic(out / "dataset_info.json", [json.dumps(_llamafactory_info(), indent=2)]))
    report = ExportReport(out, config.format, collected, len(trajectories), written, all_dropped, files, card="",
                          groups=groups)
    report.card = render_card(report, config, info)
    files.append(write_atomic(out / "README.md", [report.card]))
    return report


def _llamafactory_info() -> dict[str, Any]:
    columns = {"messages": "conversations", "system": "system", "tools": "tools"}
    return {f"agentkd_{split}": {"file_name": f"{split}.jsonl", "formatting": "sharegpt", "columns": columns}
            for split in SPLITS}


def read_trajectories(path: Path) -> list[Trajectory]:
    """Trajectories saved by an earlier export (its ``trajectories.jsonl``), to write them again differently."""
    return [Trajectory.model_validate_json(line) for line in path.read_text(encoding="utf-8").splitlines() if line]

