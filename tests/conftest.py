"""Shared fixtures: an isolated AGENTKD_HOME per session, and the real tiny catalog."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentkd.models import catalog

# Assembled GGUFs are reused across runs (assembling is deterministic and checksum-verified).
MODEL_CACHE = Path(os.environ.get("AGENTKD_TEST_MODELS", Path.home() / ".cache" / "agentkd-test-models"))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own AGENTKD_HOME; no test touches the user's ~/.agentkd."""
    monkeypatch.setenv("AGENTKD_HOME", str(tmp_path / "home"))
    for var in ("AGENTKD_TEACHER", "AGENTKD_STUDENT", "AGENTKD_LIBRARY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(var, raising=False)


def _model(name: str) -> Path:
    model = catalog.CATALOG[name]
    if not catalog.sources_installed(model):
        pytest.skip(f"{name} is not installed ({model.install_hint})")
    return catalog.pull(name, root=MODEL_CACHE)


@pytest.fixture(scope="session")
def smollm_path() -> Path:
    return _model("smollm2-135m")


@pytest.fixture(scope="session")
def smollm(smollm_path: Path) -> Iterator[object]:
    from agentkd.models.llamacpp import LocalLLM

    llm = LocalLLM(smollm_path, n_ctx=2048, seed=1234)
    yield llm
    llm.close()


@pytest.fixture
def home_with_smollm(smollm_path: Path, tmp_path: Path) -> Path:
    """An AGENTKD_HOME whose model cache already holds the test model (a copy-free hard link)."""
    target = tmp_path / "home" / "models" / smollm_path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(smollm_path, target)
    except OSError:
        shutil.copy(smollm_path, target)
    return tmp_path / "home"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def llama_server(smollm_path: Path) -> Iterator[str]:
    """A real llama.cpp OpenAI-compatible server on localhost, serving the test model."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentkd.models.llamacpp_loader",  # llama_cpp.server, loaded with the safe options (AMX machines)
            "serve",
            "--model",
            str(smollm_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--model_alias",
            "smollm2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/models", timeout=1)
                break
            except OSError:
                time.sleep(0.25)
        else:
            pytest.fail("llama.cpp server did not start")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
