"""Which scenarios an export runs on: a build's own (from its checkpoints), or fresh ones from a task.

A build's checkpoint database is the authority: the loop stores the scenarios it drew in its state, so
they are read back exactly, including draws that depended on the state (a curriculum that targets weak
categories). Re-drawing them from the task with the run's seed (``seed + iteration * 7919``, as
``nodes.generate_scenarios`` does) reproduces them only for sources without targeted draws; it is the
fallback when the database is gone or unreadable, and the export says which way was used.
Only train-split scenarios are ever used, so a build's held-out items never end up in training data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentkd.config import Settings
from agentkd.errors import ConfigError
from agentkd.schema import Scenario
from agentkd.tasks import TaskSource

REDRAW_STRIDE = 7919  # nodes.generate_scenarios: seed = config.seed + iteration * 7919


@dataclass
class ScenarioSource:
    """The scenarios, and how they were obtained (for the dataset card)."""

    scenarios: list[Scenario]
    origin: str  # "checkpoint", "re-drawn" or "task"
    description: str


def from_checkpoints(path: Path, run_id: str) -> list[Scenario]:
    """Every distinct scenario stored in a run's LangGraph checkpoints, oldest first."""
    from agentkd.distill.graph import sqlite_checkpointer

    found: dict[str, Scenario] = {}
    serde_log = logging.getLogger("langgraph.checkpoint.serde.jsonplus")
    level = serde_log.level
    serde_log.setLevel(logging.ERROR)  # our own state types are "unregistered" for msgpack; that is expected
    try:
        with sqlite_checkpointer(path) as saver:
            checkpoints = list(saver.list({"configurable": {"thread_id": run_id}}))
    finally:
        serde_log.setLevel(level)
    for tup in reversed(checkpoints):  # list() is newest first
        for item in tup.checkpoint.get("channel_values", {}).get("scenarios") or []:
            sc = item if isinstance(item, Scenario) else Scenario.model_validate(item)
            found.setdefault(sc.id, sc)
    return list(found.values())


def redraw(task: TaskSource, config: dict[str, Any]) -> list[Scenario]:
    """The run's train scenarios drawn again from the task with the run's seed (see the module docstring)."""
    found: dict[str, Scenario] = {}
    for iteration in range(int(config.get("iterations", 1))):
        seed = int(config.get("seed", 1234)) + iteration * REDRAW_STRIDE
        for sc in task.scenarios("train", int(config.get("batch_size", 6)), seed=seed):
            found.setdefault(sc.id, sc)
    return list(found.values())


def run_scenarios(settings: Settings, run_id: str, spec: dict[str, Any], task: TaskSource) -> ScenarioSource:
    """A build run's scenarios: from its checkpoints, else re-drawn with its seed."""
    db = settings.runs_dir / f"{run_id}.sqlite"
    problem = "the checkpoint database is missing"
    if db.is_file():
        try:
            scenarios = from_checkpoints(db, run_id)
        except Exception as exc:  # a damaged or foreign database: fall back, and say so
            scenarios, problem = [], f"the checkpoint database could not be read ({type(exc).__name__}: {exc})"
        else:
            problem = "the checkpoints hold no scenarios yet"
        if scenarios:
            train = [sc for sc in scenarios if sc.metadata.get("split", "train") != "heldout"]
            return ScenarioSource(train, "checkpoint", f"the {len(train)} scenarios stored in build run {run_id}'s "
                                  "checkpoints (exactly what the loop drew)")
    scenarios = redraw(task, spec.get("config") or {})
    if not scenarios:
        raise ConfigError(f"build run {run_id} has no scenarios: {problem}, and re-drawing gave none.",
                          hint="use --task NAME --n N to draw scenarios from a task instead.")
    targeted = " (approximate: this task draws by curriculum)" if task.has_own("scenarios_for") else ""
    return ScenarioSource(scenarios, "re-drawn", f"{len(scenarios)} scenarios re-drawn from {spec.get('task')} with "
                          f"build run {run_id}'s seed, because {problem}{targeted}")


def task_scenarios(task: TaskSource, n: int, seed: int) -> ScenarioSource:
    scenarios = task.scenarios("train", n, seed=seed)
    return ScenarioSource(scenarios, "task", f"{len(scenarios)} train-split scenarios drawn from {task.name} "
                          f"(seed {seed})")
