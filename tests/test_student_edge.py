"""The edge runner answers from a bundle with llama-cpp-python and numpy alone (heavy packages blocked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agentkd.schema import Strategy

pytestmark = pytest.mark.model

ROOT = Path(__file__).parent.parent
BLOCKED = ["pydantic", "pydantic_settings", "chromadb", "langgraph", "litellm", "onnxruntime", "tokenizers", "typer",
           "rich", "yaml", "openai", "fastapi", "uvicorn", "langchain_core"]  # fmt: skip
RUNNER = f"""
import runpy, sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError(name + " is not installed on this device")
sys.meta_path.insert(0, Blocker())
sys.argv = ["run_student.py", *sys.argv[1:]]
runpy.run_path({str(ROOT / "edge" / "run_student.py")!r}, run_name="__main__")
"""


def test_edge_runner_answers_from_a_bundle_without_heavy_packages(smollm_path: Path, tmp_path: Path) -> None:
    from agentkd.library import Library
    from agentkd.library.bundle import write_bundle

    lib = Library.open(str(tmp_path / "lib"))
    lib.add(Strategy(id="s-pct", status="admitted", title="Percentages as fractions",
                     trigger="questions about a percent of a number", body="1. Write p% as p/100. 2. Multiply."))
    write_bundle(lib, tmp_path / "bundle")
    out = subprocess.run(
        [sys.executable, "-c", RUNNER, "--model", str(smollm_path), "--bundle", str(tmp_path / "bundle"),
         "-q", "What is 15% of 80?", "--bench", "--threads", "1", "--ctx", "1024"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "[strategies: s-pct]" in out.stdout
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    assert stats["strategies"] == ["s-pct"] and stats["answer"] and stats["peak_rss_mb"] > stats["model_mb"]
