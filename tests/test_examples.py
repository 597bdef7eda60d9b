"""Every example starts (imports resolve, options parse) and the shell example is valid bash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("script", ["math_tutor.py", "retail_agent.py", "chatbot.py", "chatbot_server.py"])
def test_example_help(script: str) -> None:
    out = subprocess.run([sys.executable, str(EXAMPLES / script), "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage" in out.stdout.lower()


def test_new_domain_script_is_valid_bash() -> None:
    assert subprocess.run(["bash", "-n", str(EXAMPLES / "new_domain.sh")]).returncode == 0
    assert "spec:examples/support_domain.yaml" in (EXAMPLES / "new_domain.sh").read_text()
