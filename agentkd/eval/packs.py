"""Strategy packs: a directory of strategy files that ships with a manifest of how it was built and measured.

Layout (the directory ``agentkd library export`` writes, plus the manifest)::

    strategies/<pack>/manifest.yaml    what this module reads and writes (``PackManifest``)
    strategies/<pack>/<id>.md          one strategy file per entry

A pack is evaluated by importing its files into a cached on-disk library under
``$AGENTKD_HOME/packs/<pack>-<digest>``; the digest covers the files, so an edited pack is re-imported.
``agentkd eval --write-manifest`` fills ``measured`` and ``students_validated`` from a run, and only after
the pack gate (``agentkd.eval.gate``) passed on the pack's current files: the manifest keeps that gate.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentkd.errors import ConfigError, GateFailed
from agentkd.eval.gate_report import GateReport

if TYPE_CHECKING:
    from agentkd.eval.results import EvalResult

MANIFEST = "manifest.yaml"
SCHEMA: Literal["agentkd-pack/1"] = "agentkd-pack/1"


def manifest_path(path: Path) -> Path:
    """A .yaml/.yml path as it is; any other path is a pack directory holding manifest.yaml."""
    return path if path.suffix in (".yaml", ".yml") else path / MANIFEST


class BuildInfo(BaseModel):
    """How the pack was built, and what it cost."""

    command: str = Field(default="", description="The exact command(s) that rebuild the pack from nothing.")
    run_id: str = Field(default="", description="The build run (logs under $AGENTKD_HOME/runs/<run_id>.*).")
    teacher_calls: int | None = None
    teacher_tokens: int | None = None
    cost_usd: float | None = None
    minutes: float | None = None
    entries: int | None = Field(default=None, description="Admitted entries exported into the pack.")
    date: str = ""


class ArmMeasure(BaseModel):
    label: str
    n: int
    accuracy: float
    low: float
    high: float
    score: float
    score_low: float
    score_high: float


class EffectMeasure(BaseModel):
    """``arm`` minus ``baseline`` on the same items (95% paired bootstrap)."""

    arm: str
    baseline: str
    diff: float
    low: float
    high: float
    score_diff: float
    wins: int
    losses: int


class Measurement(BaseModel):
    """One held-out measurement of the pack (one ``agentkd eval`` run)."""

    task: str
    split: str
    n: int
    seed: int
    student: str
    teacher: str
    accuracy_name: str = "accuracy"
    arms: dict[str, ArmMeasure]
    effects: list[EffectMeasure] = Field(default_factory=list)
    report: str = Field(default="", description="Where the run's report.md is.")
    command: str = Field(default="", description="The exact command that re-measures it.")
    date: str = ""

    def key(self) -> tuple[str, str, str, int, int]:
        return (self.task, self.split, self.student, self.n, self.seed)


class PackManifest(BaseModel):
    """``strategies/<pack>/manifest.yaml``."""

    model_config = ConfigDict(populate_by_name=True)

    schema_: Literal["agentkd-pack/1"] = Field(default=SCHEMA, alias="schema")
    name: str
    description: str = ""
    task: str = Field(description="The task source the pack was built on, e.g. gsm_symbolic or tau2:retail.")
    collection: str = Field(default="", description="Collection name the entries are imported under (default: name).")
    entries: str = Field(default=".", description="Directory of the strategy files, relative to the manifest.")
    teacher: str = ""
    built_for: str = Field(default="", description="The student the loop measured entries with while building.")
    students_validated: list[str] = Field(default_factory=list)
    build: BuildInfo = Field(default_factory=lambda: BuildInfo())
    measured: list[Measurement] = Field(default_factory=list)
    gate: GateReport | None = Field(default=None, description="The pack gate that passed on these files.")

    @classmethod
    def load(cls, path: Path) -> PackManifest:
        path = manifest_path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            return cls.model_validate(data)
        except FileNotFoundError:
            raise ConfigError(
                f"no pack manifest at {path}",
                hint="write one with `agentkd eval --pack DIR --write-manifest` (see docs/packs.md)",
            ) from None
        except (yaml.YAMLError, ValidationError) as exc:
            raise ConfigError(f"{path} is not a valid pack manifest: {exc}",
                              hint="compare it with docs/packs.md; `schema: agentkd-pack/1` comes first") from None

    def dump(self) -> str:
        data = self.model_dump(by_alias=True, mode="json")
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=10_000)

    def save(self, path: Path) -> Path:
        """Write to ``path`` (a .yaml file, or a pack directory to hold manifest.yaml)."""
        path = manifest_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.dump(), encoding="utf-8")
        return path

    @property
    def collection_name(self) -> str:
        return self.collection or self.name

    def record(self, measurement: Measurement) -> None:
        """Add a measurement, replacing one of the same task, split, student, size and seed."""
        self.measured = [m for m in self.measured if m.key() != measurement.key()] + [measurement]
        if measurement.student not in self.students_validated:
            self.students_validated.append(measurement.student)


def measurement_of(result: EvalResult, *, report: str, command: str) -> Measurement:
    """The manifest's record of an evaluation run."""
    arms = {
        s.name: ArmMeasure(label=s.label, n=s.n, accuracy=s.accuracy.value, low=s.accuracy.low, high=s.accuracy.high,
                           score=s.score.value, score_low=s.score.low, score_high=s.score.high)
        for s in result.summaries
    }  # fmt: skip
    effects = [
        EffectMeasure(arm=c.arm, baseline=c.baseline, diff=c.accuracy.diff.value, low=c.accuracy.diff.low,
                      high=c.accuracy.diff.high, score_diff=c.score.diff.value, wins=c.accuracy.wins,
                      losses=c.accuracy.losses)
        for c in result.comparisons
    ]  # fmt: skip
    return Measurement(task=result.task, split=result.split, n=result.n, seed=result.seed, student=result.student,
                       teacher=result.teacher, accuracy_name=result.accuracy_name, arms=arms, effects=effects,
                       report=report, command=command, date=_today())  # fmt: skip


def check_gate(pack: Path, gate: GateReport) -> None:
    """Refuse a manifest update unless ``gate`` passed on exactly the pack's current files."""
    if not gate.passed:
        raise GateFailed(f"the pack gate found {pack} worse than the student alone on {', '.join(gate.worse)}; "
                         "the manifest is not updated",
                         hint="the blamed entries are retired by `agentkd library gate`; run it again on what is left")
    if gate.digest != entries_digest(pack):
        raise GateFailed(f"the pack gate was measured on other files than {pack} holds now",
                         hint=f"run `agentkd library gate --pack {pack} --task {gate.task}` on the current files")


def write_measurement(path: Path, result: EvalResult, *, report: str, command: str, gate: GateReport
                      ) -> PackManifest:
    """Record ``result`` in the manifest at ``path`` (created with what the run knows when missing), once the
    pack gate passed on the pack's current files (``check_gate``)."""
    path = manifest_path(path)
    check_gate(path.parent, gate)
    if path.is_file():
        manifest = PackManifest.load(path)
    else:
        manifest = PackManifest(name=path.parent.name, task=result.task, teacher=result.teacher,
                                built_for=result.student)
    manifest.record(measurement_of(result, report=report, command=command))
    manifest.gate = gate
    manifest.save(path)
    return manifest


def build_info(runs_dir: Path, run_id: str) -> BuildInfo:
    """The build section from a build run's files: its command, teacher spend and duration."""
    import json
    import shlex

    spec_path, log_path = runs_dir / f"{run_id}.json", runs_dir / f"{run_id}.jsonl"
    if not spec_path.is_file():
        raise ConfigError(f"no build run {run_id!r} in {runs_dir}",
                          hint="pass the run id `agentkd build` printed (files $AGENTKD_HOME/runs/<id>.json*)")
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    cfg, st = spec.get("config", {}), spec.get("settings", {})
    args = ["agentkd", "build", "--task", spec["task"], "--iterations", str(cfg.get("iterations")),
            "--batch-size", str(cfg.get("batch_size")),
            "--max-strategies", str(cfg.get("max_strategies_per_iteration")), "--siblings", str(cfg.get("siblings")),
            "--heldout", str(spec.get("heldout")), "--teacher", st.get("teacher", ""),
            "--student", st.get("student", ""),
            "--library", st.get("library") or "<library dir>", "--collection", st.get("collection", "default"),
            "--seed", str(st.get("seed"))]  # fmt: skip
    calls = tokens = 0
    cost, times = 0.0, []
    for line in log_path.read_text(encoding="utf-8").splitlines() if log_path.is_file() else []:
        rec = json.loads(line)
        times.append(float(rec.get("time") or 0))
        if rec.get("role") == "teacher" and rec.get("outcome", "ok") == "ok":
            calls += 1
            tokens += int(rec.get("prompt_tokens") or 0) + int(rec.get("completion_tokens") or 0)
            cost += float(rec.get("cost_usd") or 0.0)
    started = datetime.fromtimestamp(min(times), UTC).strftime("%Y-%m-%d") if times else ""
    return BuildInfo(command=shlex.join(args), run_id=run_id, teacher_calls=calls, teacher_tokens=tokens,
                     cost_usd=round(cost, 6), minutes=round((max(times) - min(times)) / 60, 1) if times else None,
                     entries=len(spec.get("admitted") or []) or None, date=started)  # fmt: skip


def _today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def is_pack(path: Path) -> bool:
    """A directory with a manifest, or with strategy files and no Chroma store."""
    if not path.is_dir():
        return False
    if (path / MANIFEST).is_file():
        return True
    return not (path / "chroma.sqlite3").exists() and any(path.glob("*.md"))


def has_entries(path: Path) -> bool:
    """A pack with at least one strategy file (a pack's manifest can be written before anything is admitted)."""
    return is_pack(path) and any((path / pack_manifest(path).entries).glob("*.md"))


def pack_manifest(path: Path) -> PackManifest:
    """The pack's manifest; a bare directory of strategy files gets a minimal one."""
    if (path / MANIFEST).is_file():
        return PackManifest.load(path)
    return PackManifest(name=path.resolve().name, task="")


def entries_digest(pack: Path) -> str:
    """The digest of a pack's strategy files: what a gate was measured on."""
    return _digest((pack / pack_manifest(pack).entries).resolve())


def _digest(directory: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(directory.glob("*.md")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def import_pack(path: Path, home: Path) -> tuple[str, str, PackManifest]:
    """Import the pack's entries once into a cache keyed by the files' digest: (location, collection, manifest)."""
    from agentkd.library import Library
    from agentkd.library.files import import_library

    manifest = pack_manifest(path)
    entries = (path / manifest.entries).resolve()
    store = home / "packs" / f"{manifest.name}-{_digest(entries)}"
    name = manifest.collection_name
    collection = name if len(name) >= 3 else f"pack-{name}"
    lib = Library.open(str(store), collection)
    if lib.count() == 0:
        import_library(lib, entries)
    return str(store), collection, manifest
