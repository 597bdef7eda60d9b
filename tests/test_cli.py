"""The CLI as a user meets it: help that teaches, errors with a fix and an exit code, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def agentkd(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AGENTKD_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "agentkd.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)


def test_help_lists_the_commands(tmp_path: Path) -> None:
    out = agentkd("--help", home=tmp_path)
    assert out.returncode == 0
    for command in ("build", "ask", "models"):
        assert command in out.stdout
    assert "--resume" in agentkd("build", "--help", home=tmp_path).stdout


def test_models_list_shows_the_catalog(tmp_path: Path) -> None:
    out = agentkd("models", "list", home=tmp_path)
    assert out.returncode == 0, out.stderr
    for name in ("smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"):
        assert name in out.stdout


def test_missing_model_is_a_clean_error_with_the_fix(tmp_path: Path) -> None:
    out = agentkd("ask", "hi", "--student", str(tmp_path / "nope.gguf"), home=tmp_path)
    assert out.returncode == 3
    assert "error:" in out.stderr and "no model file" in out.stderr and "hint:" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_unknown_model_name_lists_the_catalog(tmp_path: Path) -> None:
    out = agentkd("models", "pull", "gpt-17", home=tmp_path)
    assert out.returncode == 3 and "qwen2.5-coder-0.5b" in out.stderr and "Traceback" not in out.stderr


def test_resume_without_a_run_says_how_to_start_one(tmp_path: Path) -> None:
    out = agentkd("build", "--resume", "last", home=tmp_path)
    assert out.returncode == 2 and "agentkd build" in out.stderr and "Traceback" not in out.stderr


def test_an_invalid_setting_names_the_setting_and_its_variable(tmp_path: Path) -> None:
    out = agentkd("build", "--prose", "maybe", home=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr + out.stdout
    assert "prose" in out.stderr and "'maybe'" in out.stderr and "AGENTKD_PROSE" in out.stderr
    out = agentkd("build", "--max-minutes", "-1", home=tmp_path)
    assert out.returncode == 2 and "build_minutes" in out.stderr and "AGENTKD_BUILD_MINUTES" in out.stderr
