"""The safe loader: llama.cpp's extra buffer types off where it reports AMX, and a canary that survives a crash."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from agentkd.errors import ConfigError, ModelCrashError
from agentkd.models import llamacpp_loader as loader

AMX_INFO = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | AVX512 = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 | "
            "LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |")
PLAIN_INFO = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | LLAMAFILE = 1 | REPACK = 1 |"


def test_extra_buffer_types_go_off_when_llama_cpp_reports_amx() -> None:
    safe = loader.choose(AMX_INFO)
    assert safe.extra_bufts is False and "AMX" in safe.reason and loader.SETTING_ENV in safe.reason
    assert loader.choose(PLAIN_INFO).extra_bufts is True
    assert loader.choose(PLAIN_INFO.replace("AVX2 = 1", "AMX_INT8 = 0")).extra_bufts is True  # built, not active


def test_the_user_can_opt_back_in_or_out(monkeypatch: pytest.MonkeyPatch) -> None:
    assert loader.choose(AMX_INFO, "on").extra_bufts is True
    assert loader.choose(PLAIN_INFO, "off").extra_bufts is False
    assert loader.choose(PLAIN_INFO, defaults_crashed=True).extra_bufts is False
    monkeypatch.setenv(loader.SETTING_ENV, "sometimes")
    with pytest.raises(ConfigError, match="auto, on or off"):
        loader.setting()


@pytest.mark.model
def test_the_model_is_really_loaded_with_the_chosen_options(smollm_path: Path) -> None:
    # in-process only with the safe options: on an AMX machine the defaults segfault even this 135M model
    llm = loader.open_llama(smollm_path, loader.LoadOptions(False, "test"), n_ctx=128, verbose=False)
    try:
        assert llm.model_params.use_extra_bufts is False
        assert llm.create_completion("1, 2, 3,", max_tokens=2, temperature=0.0)["choices"][0]["text"]
    finally:
        llm.close()
    # the defaults in a child: they run, or (where llama.cpp reports AMX) the child dies and we survive
    child = loader.run_child(smollm_path, True)
    assert child.returncode == 0 or (child.returncode < 0 and loader.reports_amx(loader.system_info()))
    # and the patch is gone: a plain Llama() gets llama.cpp's own defaults again
    assert loader.llama_cpp.llama_cpp.llama_model_default_params().use_extra_bufts is True


def _dies_with_defaults(calls: list[bool]) -> loader.Runner:
    """A canary runner whose child really dies from SIGSEGV with extra buffer types on, and runs for real off."""

    def run(path: Path, extra_bufts: bool) -> loader.ChildRun:
        calls.append(extra_bufts)
        if extra_bufts:
            import subprocess

            done = subprocess.run([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"],
                                  capture_output=True, text=True)
            return loader.ChildRun(done.returncode, done.stderr, 0.1)
        return loader.run_child(path, extra_bufts)

    return run


@pytest.mark.model
def test_a_crashing_canary_falls_back_to_safe_options_and_is_remembered(
    smollm_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(loader.SETTING_ENV, "on")  # start from llama.cpp's defaults, whatever this CPU is
    calls: list[bool] = []
    record = loader.canary(smollm_path, tmp_path, runner=_dies_with_defaults(calls))
    assert calls == [True, False]
    assert record["extra_bufts"] is False and record["defaults_crashed"] is True
    assert record["runs"][0]["returncode"] == -signal.SIGSEGV and record["runs"][1]["returncode"] == 0
    assert record["sha256"] == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert (tmp_path / loader.CANARY_FILE).is_file()

    # cached: no second child run for the same model, llama.cpp build and CPU
    again = loader.canary(smollm_path, tmp_path, runner=_dies_with_defaults(calls))
    assert again == record and calls == [True, False]
    # and the loader now chooses the safe options for this model even without AMX
    monkeypatch.setenv(loader.SETTING_ENV, "auto")
    monkeypatch.setattr(loader, "system_info", lambda: PLAIN_INFO)
    assert loader.options_for(smollm_path, tmp_path).extra_bufts is False


def test_a_canary_that_dies_with_safe_options_too_stops_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 64)

    def always_dies(path: Path, extra_bufts: bool) -> loader.ChildRun:
        import subprocess

        done = subprocess.run([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"])
        return loader.ChildRun(done.returncode, "", 0.1)

    monkeypatch.setenv(loader.SETTING_ENV, "on")
    with pytest.raises(ModelCrashError) as info:
        loader.canary(model, tmp_path, runner=always_dies)
    message = str(info.value) + " " + (info.value.hint or "")
    assert "tiny.gguf" in message and "SIGSEGV" in message and "system info" in message
    assert loader.SETTING_ENV in message
    assert not (tmp_path / loader.CANARY_FILE).exists() or "records" in (tmp_path / loader.CANARY_FILE).read_text()
