"""What each arm's answers depend on, kept beside its transcripts, so that ``--resume`` never mixes answers of
two configurations in one result.

``run.json`` in the run's directory holds, per arm, the settings that decide its answers: the task, split, seed
and categories (the items), the model, its sampling and context settings, and the library it retrieves from —
a pack by the digest of its entry files, so a pack edited or gated (entries retired) since the interrupted run
counts as another library. ``--n`` is not part of it: a resumed run may draw more items, keeps the finished
ones and runs the rest. Arms may be added on resume; an arm that changed is refused with the fields that
differ, and nothing in the directory is touched.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentkd.errors import ConfigError
from agentkd.library.fileio import atomic_write

RUN_FILE = "run.json"


def record_run(out: Path, arms: dict[str, dict[str, Any]], *, resume: bool) -> float | None:
    """Write ``run.json``; on resume first refuse an arm whose settings differ from the interrupted run's.

    Returns the wall seconds the earlier runs in ``out`` spent (0 for a new run; None when resuming a
    directory written before they were recorded)."""
    path = out / RUN_FILE
    before: dict[str, dict[str, Any]] = {}
    spent: float | None = None if resume else 0.0
    if resume and path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            before = {str(name): dict(arm) for name, arm in data["arms"].items()}
            spent = None if data.get("wall_seconds") is None else float(data["wall_seconds"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{path} is damaged ({exc}); it records what the finished items were run with",
                              hint="restore it, or run without --resume into a new --out") from None
        changed = [f"{name}: " + "; ".join(f"{k} {before[name].get(k)!r} → {v!r}" for k, v in now.items()
                                           if before[name].get(k) != v)
                   for name, now in arms.items() if name in before and before[name] != now]  # fmt: skip
        if changed:
            raise ConfigError(f"--resume would mix answers of two configurations in {out}: " + " | ".join(changed),
                              hint="run without --resume into a new --out, or resume with the settings of the "
                                   "interrupted run")  # fmt: skip
    _write(path, {"arms": {**before, **arms}, "wall_seconds": spent})
    return spent


def add_wall_seconds(out: Path, seconds: float) -> float | None:
    """Add this run's wall time to ``run.json`` (called when the run ends, finished or interrupted); the total,
    or None when the earlier runs' share is unknown."""
    path = out / RUN_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("wall_seconds") is None:
            return None
        data["wall_seconds"] = float(data["wall_seconds"]) + seconds
    except (OSError, ValueError, TypeError, AttributeError):  # removed or edited during the run: its clock is lost
        return None
    _write(path, data)
    return float(data["wall_seconds"])


def _write(path: Path, data: dict[str, Any]) -> None:
    """Replace ``run.json`` whole: a run killed mid-write leaves the old file, never half of one."""
    atomic_write(path.parent, path.name, (json.dumps(data, indent=2, default=str) + "\n").encode("utf-8"))
