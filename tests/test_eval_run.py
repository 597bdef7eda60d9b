"""A real evaluation: SmolLM2 as the student (alone, with its library, with a pack) and a scripted teacher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentkd.cli.main import app
from agentkd.errors import ConfigError
from agentkd.eval import EvalResult, PackManifest
from agentkd.library import Library
from agentkd.library.files import render_file
from agentkd.parts import load_task
from agentkd.schema import Strategy

pytestmark = pytest.mark.model
runner = CliRunner()
SEED = 7


def strategy(id: str, title: str) -> Strategy:
    return Strategy(id=id, title=title, status="admitted", tasks=["gsm_symbolic"],
                    trigger="word problems about how many items people buy, have, share or pay for in total",
                    body="1. Name each quantity as a variable. 2. Print the arithmetic result in Python.")


def teacher_script(path: Path, answers: list[str]) -> Path:
    """The teacher runs a program for items 1 and 3 (right), and guesses on item 2 (wrong)."""
    steps = [f"```python\nprint({answers[0]})\n```", f"The program printed it. Answer: {answers[0]}",
             "Answer: -1",
             f"```python\nprint({answers[2]})\n```", f"Answer: {answers[2]}"]  # fmt: skip
    path.write_text(json.dumps({"steps": steps}))
    return path


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    directory = tmp_path / "strategies" / "arith"
    directory.mkdir(parents=True)
    s = strategy("s-arith", "Add up totals with a program")
    (directory / f"{s.id}.md").write_text(render_file(s), encoding="utf-8")
    PackManifest(name="arith", task="gsm_symbolic", teacher="fake/teacher", built_for="qwen2.5-coder-0.5b").save(
        directory / "manifest.yaml")
    return directory


def eval_args(out: Path, student: Path, teacher: str, pack: Path, lib: Path, *extra: str) -> list[str]:
    """Arms: the student alone, with the pack under evaluation, with another student's library, the teacher."""
    return ["eval", "--task", "gsm_symbolic", "--n", "3", "--seed", str(SEED), "--out", str(out),
            "--arms", f"student,student+library,student+library:other@{lib},teacher", "--pack", str(pack),
            "--student", str(student), "--teacher", teacher, "--n-ctx", "2048",
            "--max-tokens", "8", "--max-steps", "1", "--resamples", "200", *extra]  # fmt: skip


def test_eval_writes_results_reports_plots_and_transcripts(
    smollm_path: Path, tmp_path: Path, pack: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTKD_N_THREADS", "1")  # on a busy 2-core machine one thread beats two spinning ones
    lib = tmp_path / "lib"
    Library.open(str(lib), "other").add(strategy("s-total", "Compute totals with a program"))
    answers = [sc.answer or "" for sc in load_task("gsm_symbolic").scenarios("heldout", 3, seed=SEED)]
    out = tmp_path / "out"
    script = f"script:{teacher_script(tmp_path / 't.json', answers)}"
    result = runner.invoke(app, eval_args(out, smollm_path, script, pack, lib))
    assert result.exit_code == 0, result.output

    res = EvalResult.load(out)
    other = f"student+library:other@{lib}"
    assert res.arms == ["student", "student+library", other, "teacher"]
    assert res.baseline == "student" and len(res.scenario_ids) == 3 and res.pack == str(pack)
    teacher = res.summary("teacher")
    assert (teacher.correct, teacher.n) == (2, 3) and teacher.accuracy.low <= 2 / 3 <= teacher.accuracy.high
    by_arm = {a: [r for r in res.items if r.arm == a] for a in res.arms}
    assert all([r.id for r in rs] == res.scenario_ids for rs in by_arm.values())  # the same items, in order
    assert [r.tool_calls for r in by_arm["teacher"]] == [1, 0, 1]
    assert not any(r.strategies for r in by_arm["student"])
    assert any("s-arith" in r.strategies for r in by_arm["student+library"])
    assert any("s-total" in r.strategies for r in by_arm[other])
    assert all(r.completion_tokens > 0 and r.prompt_tokens > 0 and r.seconds > 0 for r in res.items)
    comp = res.comparison("teacher")
    assert comp is not None and comp.baseline == "student"

    for name in ("accuracy", "differences", "latency", "items"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 1000
    lines = (out / "transcripts" / "teacher.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert len(lines) == 3 and first["tool_call_records"][0]["result"].strip() == answers[0]
    assert first["transcript"][-1]["content"].endswith(answers[0]) and "question" in first
    assert len(list((out / "transcripts").glob("*.jsonl"))) == 4
    md = (out / "report.md").read_text()
    assert "| student + library: other |" in md and "| teacher |" in md and "## Reproduce" in md
    assert "agentkd eval --task gsm_symbolic" in md and "![accuracy](plots/accuracy.png)" in md
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4 and "<table>" in html

    # --resume keeps every finished item: the teacher's script, now empty, would fail on any new call
    (tmp_path / "t.json").write_text(json.dumps({"steps": []}))
    again = runner.invoke(app, eval_args(out, smollm_path, script, pack, lib, "--resume",
                                         "--write-manifest", "--gate-n", "2"))
    assert again.exit_code == 0, again.output
    assert (out / "transcripts" / "teacher.jsonl").read_text().splitlines() == lines
    assert EvalResult.load(out).items == res.items

    # ... and the measured effect lands in the pack manifest
    manifest = PackManifest.load(pack)
    assert manifest.students_validated == [str(smollm_path)]
    measured = manifest.measured[0]
    assert measured.arms["teacher"].accuracy == pytest.approx(2 / 3) and measured.task == "gsm_symbolic"
    assert "--pack" in measured.command and measured.report.endswith("report.md")
    assert {e.arm for e in measured.effects} == {"student+library", other, "teacher"}
    # the pack gate ran first, on validation items, and the manifest keeps it
    assert manifest.gate is not None and manifest.gate.passed and manifest.gate.split == "validation"
    assert (out / "gate" / "results.json").is_file()

    # a pack edited since: resuming would mix answers of two libraries, so it is refused and nothing is touched
    entry = pack / "s-arith.md"
    entry.write_text(entry.read_text().replace("Print the arithmetic", "Print the exact arithmetic"))
    before = {p.name: p.read_bytes() for p in (out / "transcripts").iterdir()}
    refused = runner.invoke(app, eval_args(out, smollm_path, script, pack, lib, "--resume"))
    assert isinstance(refused.exception, ConfigError), refused.output  # `agentkd` prints it as an error, with a hint
    assert "mix answers of two configurations" in str(refused.exception)
    assert "student+library: library" in str(refused.exception) and "→" in str(refused.exception)
    assert {p.name: p.read_bytes() for p in (out / "transcripts").iterdir()} == before
