"""``agentkd export-sft`` as a user runs it: a scripted teacher, the real task, tools, student template and files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentkd.sft import CHECKS
from agentkd.tasks import get_task

ROOT = Path(__file__).parent.parent
pytestmark = pytest.mark.model


def agentkd(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "AGENTKD_HOME": str(home), "COLUMNS": "200", **env}
    return subprocess.run([sys.executable, "-m", "agentkd.cli", *args], capture_output=True, text=True, env=full_env,
                          cwd=ROOT, timeout=300)


def _call(code: str) -> dict[str, object]:
    fn = {"name": "python", "arguments": json.dumps({"code": code})}
    message = {"role": "assistant", "content": None, "tool_calls": [{"id": "a", "type": "function", "function": fn}]}
    return {"choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}], "usage": {}}


def test_export_sft_writes_checked_records_a_card_and_a_summary(
    tmp_path: Path, home_with_smollm: Path, smollm_path: Path
) -> None:
    scenarios = get_task("gsm_symbolic").scenarios("train", 3, seed=1234)  # what --task draws with the default seed
    steps: list[object] = []
    for i, sc in enumerate(scenarios):
        steps += [_call(f"print({sc.answer})"), f"Answer: {sc.answer if i < 2 else -1}"]
    script = tmp_path / "teacher.json"
    script.write_text(json.dumps({"steps": steps}))
    out = tmp_path / "sft"
    run = agentkd("export-sft", "--format", "openai", "--out", str(out), "--task", "gsm_symbolic", "--n", "3",
                  "--no-strategies", "--workers", "1", "--student", str(smollm_path), home=home_with_smollm,
                  AGENTKD_TEACHER=f"script:{script}")
    assert run.returncode == 0, run.stderr
    assert "kept" in run.stdout and "wrong answer" in run.stdout
    assert "3 scenarios → 2 verified → 2 written" in run.stdout
    records = [json.loads(x) for s in ("train", "validation") for x in (out / f"{s}.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(CHECKS["openai"](r) == [] for r in records)
    results = {r["messages"][-2]["content"] for r in records}  # what the real sandbox printed
    assert results == {str(sc.answer) for sc in scenarios[:2]}
    card = (out / "README.md").read_text()
    assert "3 train-split scenarios drawn from gsm_symbolic" in card and "| judge | wrong answer | 1 |" in card

    again = agentkd("export-sft", "--format", "sharegpt", "--out", str(tmp_path / "sharegpt"), "--trajectories",
                    str(out / "trajectories.jsonl"), "--student", str(smollm_path), home=home_with_smollm)
    assert again.returncode == 0, again.stderr
    rows = (tmp_path / "sharegpt" / "train.jsonl").read_text().splitlines()
    rows += (tmp_path / "sharegpt" / "validation.jsonl").read_text().splitlines()
    assert len(rows) == 2 and all(CHECKS["sharegpt"](json.loads(r)) == [] for r in rows)
    assert json.loads((tmp_path / "sharegpt" / "dataset_info.json").read_text())["agentkd_train"]["formatting"] == (
        "sharegpt")


def test_export_sft_without_a_source_says_how_to_give_one(tmp_path: Path) -> None:
    run = agentkd("export-sft", "--format", "hf", "--out", str(tmp_path / "x"), home=tmp_path)
    assert run.returncode == 2 and "--task NAME" in run.stderr and "hint:" in run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    missing = agentkd("export-sft", "--format", "hf", "--out", str(tmp_path / "x"), "--run", "nope", home=tmp_path)
    assert missing.returncode == 2 and "no build run 'nope'" in missing.stderr
