"""``run.json``: what a resumed evaluation must not change, its wall clock, and a damaged file named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentkd.errors import ConfigError
from agentkd.eval.resume import RUN_FILE, add_wall_seconds, record_run

ARM = {"student": "qwen2.5-coder-0.5b", "library": "pack with entries 1a2b", "seed": 1234}


def test_a_resume_keeps_the_clock_accepts_new_arms_and_refuses_a_changed_one(tmp_path: Path) -> None:
    assert record_run(tmp_path, {"student+library": ARM}, resume=False) == 0.0
    assert add_wall_seconds(tmp_path, 60.0) == 60.0
    spent = record_run(tmp_path, {"student+library": ARM, "student+vote:5": {**ARM, "library": None}}, resume=True)
    assert spent == 60.0 and add_wall_seconds(tmp_path, 30.0) == 90.0
    assert set(json.loads((tmp_path / RUN_FILE).read_text())["arms"]) == {"student+library", "student+vote:5"}

    before = (tmp_path / RUN_FILE).read_bytes()
    with pytest.raises(ConfigError, match="mix answers of two configurations") as refused:
        record_run(tmp_path, {"student+library": {**ARM, "library": "pack with entries 9c8d"}}, resume=True)
    assert "student+library: library 'pack with entries 1a2b' → 'pack with entries 9c8d'" in str(refused.value)
    assert (tmp_path / RUN_FILE).read_bytes() == before, "a refused resume touches nothing"
    assert record_run(tmp_path, {"student": ARM}, resume=False) == 0.0, "a new run starts a new record"


def test_a_directory_from_before_run_json_resumes_without_a_clock(tmp_path: Path) -> None:
    assert record_run(tmp_path, {"student": ARM}, resume=True) is None  # the caller falls back to the items' times
    assert add_wall_seconds(tmp_path, 5.0) is None


@pytest.mark.parametrize("text", ["{", '{"arms": [1, 2]}', '{"arms": {"student": 3}}',
                                  '{"arms": {}, "wall_seconds": "soon"}'])
def test_a_damaged_run_json_is_named_and_kept(tmp_path: Path, text: str) -> None:
    (tmp_path / RUN_FILE).write_text(text)
    with pytest.raises(ConfigError, match=r"run\.json is damaged") as err:
        record_run(tmp_path, {"student": ARM}, resume=True)
    assert str(tmp_path / RUN_FILE) in str(err.value) and err.value.hint
    assert (tmp_path / RUN_FILE).read_text() == text
