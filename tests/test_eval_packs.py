"""Pack manifests round-trip and record measurements; packs import as libraries; reports from known results."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentkd.errors import ConfigError
from agentkd.eval import EvalResult, ItemRecord, PackManifest, import_pack, write_measurement
from agentkd.eval.gate_report import GateReport
from agentkd.eval.packs import BuildInfo, build_info, entries_digest, is_pack
from agentkd.eval.publish import write_report
from agentkd.eval.results import compare, summarize
from agentkd.library import Library
from agentkd.library.files import render_file
from agentkd.schema import Strategy


def known_result(seed: int = 1234) -> EvalResult:
    """20 items: the student alone gets 6 right; with the library it fixes 6 more and breaks 1."""
    ids = [f"q{i:02d}" for i in range(20)]
    alone = [i < 6 for i in range(20)]
    lib = [(i < 12 and i != 0) for i in range(20)]
    records = {
        "student": [ItemRecord(arm="student", id=q, category=f"c{i % 3}", correct=c, score=float(c), seconds=1.0 + i,
                               completion_tokens=50, answer=f"Answer: {i}", expected=str(i + c))
                    for i, (q, c) in enumerate(zip(ids, alone, strict=True))],
        "student+library": [ItemRecord(arm="student+library", id=q, category=f"c{i % 3}", correct=c, score=float(c),
                                       seconds=2.0, completion_tokens=60, strategies=["s-a"], answer=f"Answer: {i}")
                            for i, (q, c) in enumerate(zip(ids, lib, strict=True))],
    }  # fmt: skip
    res = EvalResult(task="gsm_symbolic", split="heldout", n=20, seed=seed, student="qwen2.5-coder-0.5b",
                     teacher="local/qwen2.5-coder-1.5b", library="/lib", collection="math",
                     arms=list(records), baseline="student", scenario_ids=ids, started="2026-01-01T00:00:00+00:00",
                     command="agentkd eval --task gsm_symbolic --n 20")  # fmt: skip
    for name, rs in records.items():
        res.summaries.append(summarize(name, name.replace("+", " + "), rs, who="student",
                                       library=None if name == "student" else "", tools=True, resamples=500, seed=0))
        res.items += rs
    res.comparisons.append(compare("student+library", "student", records["student+library"], records["student"],
                                   resamples=500, seed=0))
    return res


def passed_gate(pack: Path) -> GateReport:
    """A gate that passed on the pack's current files (what write_measurement requires)."""
    return GateReport(task="gsm_symbolic", n=20, seed=1, alpha=0.1, library=str(pack), digest=entries_digest(pack))


def test_manifest_round_trip_and_measurements(tmp_path: Path) -> None:
    m = PackManifest(name="math", description="gsm_symbolic word problems with the Python tool", task="gsm_symbolic",
                     teacher="local/qwen2.5-coder-1.5b", built_for="qwen2.5-coder-0.5b",
                     build=BuildInfo(command="agentkd build --task gsm_symbolic --iterations 8", run_id="r1",
                                     teacher_tokens=120_000, cost_usd=0.0, minutes=95.5, entries=14))  # fmt: skip
    path = m.save(tmp_path / "math")
    assert path.name == "manifest.yaml" and path.read_text().startswith("schema: agentkd-pack/1\nname: math\n")
    assert PackManifest.load(tmp_path / "math") == m

    gate = passed_gate(tmp_path / "math")
    write_measurement(path, known_result(), report="benchmarks/eval_math/report.md", command="agentkd eval ...",
                      gate=gate)
    write_measurement(path, known_result(), report="again/report.md", command="agentkd eval ...",
                      gate=gate)  # same key
    write_measurement(path, known_result(seed=99), report="b/report.md", command="agentkd eval --seed 99", gate=gate)
    back = PackManifest.load(path)
    assert [(x.seed, x.report) for x in back.measured] == [(1234, "again/report.md"), (99, "b/report.md")]
    assert back.students_validated == ["qwen2.5-coder-0.5b"] and back.build.entries == 14
    effect = back.measured[0].effects[0]
    assert (effect.arm, effect.baseline, effect.wins, effect.losses) == ("student+library", "student", 6, 1)
    assert effect.diff == pytest.approx(0.25) and effect.low > 0
    assert back.measured[0].arms["student"].accuracy == pytest.approx(0.3)

    fresh = write_measurement(tmp_path / "new" / "manifest.yaml", known_result(), report="r.md", command="c",
                              gate=passed_gate(tmp_path / "new"))
    assert (fresh.name, fresh.task, fresh.built_for) == ("new", "gsm_symbolic", "qwen2.5-coder-0.5b")
    (tmp_path / "bad.yaml").write_text("schema: agentkd-pack/1\nname: x\n")
    with pytest.raises(ConfigError, match="task"):
        PackManifest.load(tmp_path / "bad.yaml")


def test_a_pack_imports_once_as_a_library(tmp_path: Path) -> None:
    pack = tmp_path / "strategies" / "math"
    pack.mkdir(parents=True)
    s = Strategy(id="s-one", title="Totals with a program", trigger="word problems that add up quantities",
                 body="1. Name each quantity. 2. Print the sum in Python.", tasks=["gsm_symbolic"], status="admitted")
    (pack / "s-one.md").write_text(render_file(s))
    assert is_pack(pack)  # strategy files without a manifest are a pack too
    PackManifest(name="math", task="gsm_symbolic").save(pack)
    location, collection, manifest = import_pack(pack, tmp_path / "home")
    assert collection == "math" and manifest.name == "math"
    lib = Library.open(location, collection)
    assert [x.id for x in lib.list()] == ["s-one"]
    assert import_pack(pack, tmp_path / "home")[0] == location  # cached: the same files, the same store
    (pack / "s-one.md").write_text(render_file(s.model_copy(update={"title": "Sums with a program"})))
    assert import_pack(pack, tmp_path / "home")[0] != location  # edited files are imported afresh


def test_report_from_known_results(tmp_path: Path) -> None:
    res = known_result()
    res.save(tmp_path)
    files = write_report(EvalResult.load(tmp_path), tmp_path)
    md = files["markdown"].read_text()
    assert "# agentkd eval: gsm_symbolic (heldout, 20 items, seed 1234)" in md
    assert "| student + library | 55% [" in md and "| +25 pp [" in md  # 11 of 20 right against 6
    assert "**student + library** vs student: +25 pp [" in md and "the interval excludes zero" in md
    assert "6 won, 1 lost" in md and "## Per category" in md and "## Items where the arms disagree" in md
    assert "`q00` | lost" in md  # the one item the library broke is listed first, to be read
    html = files["html"].read_text()
    assert "<details>" in html and "data:image/png;base64," in html
    assert {"accuracy", "differences", "categories", "latency", "items"} <= set(files)


def test_build_spend_comes_from_the_build_run(tmp_path: Path) -> None:
    import json

    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "r1.json").write_text(json.dumps({
        "run_id": "r1", "task": "gsm_symbolic", "heldout": 20, "finished": True, "admitted": ["s-a", "s-b"],
        "config": {"iterations": 8, "batch_size": 6, "siblings": 2},
        "settings": {"teacher": "local/qwen2.5-coder-1.5b", "student": "qwen2.5-coder-0.5b", "library": "/libs/math",
                     "collection": "math", "seed": 1234}}))  # fmt: skip
    calls = [{"role": "teacher", "prompt_tokens": 100, "completion_tokens": 50, "cost_usd": 0.01, "time": 1000.0},
             {"role": "student", "prompt_tokens": 900, "completion_tokens": 90, "time": 1060.0},
             {"role": "teacher", "prompt_tokens": 0, "outcome": "retry", "time": 1100.0},
             {"role": "teacher", "prompt_tokens": 200, "completion_tokens": 100, "cost_usd": 0.02, "time": 1600.0}]
    (runs / "r1.jsonl").write_text("".join(json.dumps(c) + "\n" for c in calls))
    info = build_info(runs, "r1")
    assert (info.teacher_calls, info.teacher_tokens, info.minutes, info.entries) == (2, 450, 10.0, 2)
    assert info.cost_usd == pytest.approx(0.03)
    assert info.command.startswith("agentkd build --task gsm_symbolic --iterations 8 --batch-size 6")
    assert "--library /libs/math --collection math --seed 1234" in info.command
    with pytest.raises(ConfigError, match="no build run"):
        build_info(runs, "nope")


def test_the_recorded_command_names_a_library_only_when_an_arm_reads_it(tmp_path: Path) -> None:
    """A manifest's re-measure command must not carry this machine's library path when no arm uses it."""
    from agentkd.cli.eval import canonical_command
    from agentkd.config import get_settings

    settings = get_settings(library=str(tmp_path / "lib"), collection="mine")
    opts = {"task": "gsm_symbolic", "split": "heldout", "n": 5, "tools": True, "out": tmp_path / "out"}
    assert "--library" not in canonical_command(settings, {**opts, "arms": "student,teacher"})
    assert "--library" not in canonical_command(settings, {**opts, "arms": "student,student+library:math"})
    with_lib = canonical_command(settings, {**opts, "arms": "student,student+library+cot"})
    assert f"--library {tmp_path / 'lib'} --collection mine" in with_lib
