"""Loading a GGUF safely on any x86 machine: llama.cpp's load options, and a canary run in a child process.

llama-cpp-python compiles llama.cpp with ``GGML_NATIVE``, so on an Intel CPU with AMX (Sapphire Rapids and
later) its AMX matmul is built in, and llama.cpp routes the weights of some quantizations through that
"extra buffer type". With the Qwen2.5-Coder Q4_K_M files it segfaults in ``llama_decode``
(ggml-org/llama.cpp#20824). Loading with ``use_extra_bufts = False`` runs correctly at the same decode
speed (benchmarks/student.md), so on a machine whose llama.cpp reports AMX that is what we do, unless
``AGENTKD_LLAMA_EXTRA_BUFTS=on`` opts back in.

A crash we did not predict must still never be a user's first experience: before a model's first use on
a machine, ``canary`` loads it in a child process and decodes a few tokens. A child killed by a signal
means the options are unsafe here; the canary retries once with extra buffer types off, and if that
dies too it stops with an error that names the model, llama.cpp's system info and the setting to try.
The result is remembered under ``AGENTKD_HOME`` keyed by the model's sha256, llama.cpp's version and
the CPU's flags, so it costs one short child run per model and machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import llama_cpp

from agentkd.errors import ConfigError

log = logging.getLogger("agentkd.models")

Setting = Literal["auto", "on", "off"]
SETTING_ENV = "AGENTKD_LLAMA_EXTRA_BUFTS"
CANARY_FILE = "llama-canary.json"
CANARY_TIMEOUT = 180.0  # seconds: loading a 1.5B model on a slow 2-core machine takes a few


@dataclass(frozen=True)
class LoadOptions:
    """The llama.cpp load options agentkd chose, and why (said once per model in verbose output and run logs)."""

    extra_bufts: bool
    reason: str


def system_info() -> str:
    """``llama_print_system_info()``: the CPU features llama.cpp was built with and found (AMX_INT8 = 1, ...)."""
    return llama_cpp.llama_print_system_info().decode("utf-8", errors="replace").strip()


def reports_amx(info: str) -> bool:
    """True when llama.cpp's system info names an active AMX feature (``AMX_INT8 = 1``, ``AMX = 1``...)."""
    return re.search(r"\bAMX\w*\s*=\s*1\b", info) is not None


def setting() -> Setting:
    value = os.environ.get(SETTING_ENV, "auto").strip().lower()
    if value not in ("auto", "on", "off"):
        raise ConfigError(f"{SETTING_ENV}={value!r} is not a choice.", hint=f"set {SETTING_ENV} to auto, on or off")
    return value  # type: ignore[return-value]


def choose(info: str, choice: Setting = "auto", *, defaults_crashed: bool = False) -> LoadOptions:
    """The load options for this machine: extra buffer types off where llama.cpp's AMX path would run."""
    if choice == "on":
        return LoadOptions(True, f"{SETTING_ENV}=on: llama.cpp's extra buffer types kept on, as asked")
    if choice == "off":
        return LoadOptions(False, f"{SETTING_ENV}=off: llama.cpp's extra buffer types turned off, as asked")
    if defaults_crashed:
        return LoadOptions(False, "the canary crashed with llama.cpp's default options on this machine; extra "
                                  f"buffer types off ({SETTING_ENV}=on to opt back in)")
    if reports_amx(info):
        return LoadOptions(False, "llama.cpp reports AMX, whose matmul path segfaults (ggml-org/llama.cpp#20824); "
                                  f"extra buffer types off, same speed ({SETTING_ENV}=on to opt back in)")
    return LoadOptions(True, "no AMX reported: llama.cpp's default options")


_PATCH = threading.Lock()
_ANNOUNCED: set[str] = set()


@contextlib.contextmanager
def _model_params(extra_bufts: bool) -> Iterator[None]:
    """``Llama()`` builds its ``llama_model_params`` inside ``__init__`` and exposes no ``use_extra_bufts``:
    hand it default params with our choice applied, for the duration of one construction."""
    module = llama_cpp.llama_cpp
    original = module.llama_model_default_params

    def params() -> Any:
        p = original()
        p.use_extra_bufts = extra_bufts
        return p

    with _PATCH:
        module.llama_model_default_params = params
        try:
            yield
        finally:
            module.llama_model_default_params = original


def options_for(path: str | Path, home: Path | None = None) -> LoadOptions:
    """The options for ``path`` on this machine: the setting, AMX, and what a canary recorded for it."""
    record = recorded(path, home) if home is not None else None
    return choose(system_info(), setting(), defaults_crashed=bool(record and record.get("defaults_crashed")))


def open_llama(path: str | Path, options: LoadOptions, **kwargs: Any) -> llama_cpp.Llama:
    """``llama_cpp.Llama(model_path=path, **kwargs)`` loaded with ``options``; the choice is logged once per file."""
    key = str(Path(path).resolve())
    if key not in _ANNOUNCED:
        _ANNOUNCED.add(key)
        log.info("loading %s with extra buffer types %s: %s", Path(path).name,
                 "on" if options.extra_bufts else "off", options.reason)
    with _model_params(options.extra_bufts):
        return llama_cpp.Llama(model_path=str(path), **kwargs)


# -- the canary ---------------------------------------------------------------------------------
def cpu_flags() -> str:
    """The CPU's feature flags (Linux /proc/cpuinfo; elsewhere the platform's description)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return " ".join(sorted(line.split(":", 1)[1].split()))
    import platform

    return platform.processor() or platform.machine()


def _sha256(path: Path, cache: dict[str, Any]) -> str:
    """The file's sha256, remembered by path, size and modification time (a 1 GB model takes seconds)."""
    st = path.stat()
    stamp = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    if cache.get(stamp):
        return str(cache[stamp])
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    cache[stamp] = digest.hexdigest()
    return cache[stamp]


def _key(sha: str) -> str:
    cpu = hashlib.sha256(cpu_flags().encode()).hexdigest()[:16]
    return f"{sha}|llama-cpp-python {llama_cpp.__version__}|cpu {cpu}"


def _read(home: Path) -> dict[str, Any]:
    path = home / CANARY_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {"records": {}, "sha256": {}}
    except (OSError, ValueError) as exc:  # damaged: say so and check again rather than trust it
        log.warning("ignoring unreadable canary record %s (%s); the model will be checked again", path, exc)
        return {"records": {}, "sha256": {}}
    return {"records": dict(data.get("records", {})), "sha256": dict(data.get("sha256", {}))}


def _write(home: Path, data: dict[str, Any]) -> None:
    home.mkdir(parents=True, exist_ok=True)
    tmp = home / f".{CANARY_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, home / CANARY_FILE)


def recorded(path: str | Path, home: Path) -> dict[str, Any] | None:
    """The canary's record for this model, llama.cpp build and CPU, if one was made."""
    data = _read(home)
    rec = data["records"].get(_key(_sha256(Path(path), data["sha256"])))
    return dict(rec) if rec else None


@dataclass
class ChildRun:
    returncode: int
    output: str
    seconds: float


Runner = Callable[[Path, bool], ChildRun]


def child_command(path: Path, extra_bufts: bool) -> list[str]:
    return [sys.executable, "-m", "agentkd.models.llamacpp_loader", str(path), "--extra-bufts",
            "on" if extra_bufts else "off"]


def run_child(path: Path, extra_bufts: bool) -> ChildRun:
    """Load ``path`` and decode a few tokens in a child process; a native crash kills only the child."""
    t0 = time.perf_counter()
    try:
        done = subprocess.run(child_command(path, extra_bufts), capture_output=True, text=True,
                              timeout=CANARY_TIMEOUT, env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"") if isinstance(exc.stdout, bytes) else (exc.stdout or "").encode()
        return ChildRun(-9, f"timed out after {CANARY_TIMEOUT:.0f} s\n{out.decode(errors='replace')}",
                        time.perf_counter() - t0)
    return ChildRun(done.returncode, (done.stdout + done.stderr)[-4000:], time.perf_counter() - t0)


def _signal_name(code: int) -> str:
    import signal

    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def canary(path: str | Path, home: Path, *, runner: Runner = run_child, force: bool = False) -> dict[str, Any]:
    """Make sure ``path`` loads and decodes here; the record says which options work (cached under ``home``).

    Raises ``ModelCrashError`` when the child dies with the safe options too.
    """
    from agentkd.errors import ModelCrashError

    path = Path(path)
    data = _read(home)
    sha = _sha256(path, data["sha256"])
    key = _key(sha)
    if not force and key in data["records"]:
        return dict(data["records"][key])
    first = choose(system_info(), setting())
    runs: list[dict[str, Any]] = []
    options = first
    for attempt in range(2):
        child = runner(path, options.extra_bufts)
        runs.append({"extra_bufts": options.extra_bufts, "returncode": child.returncode,
                     "seconds": round(child.seconds, 2)})
        if child.returncode == 0:
            break
        crashed = child.returncode < 0
        if not crashed:  # an ordinary error (a corrupt file, no memory): not ours to work around
            raise ModelCrashError(f"the canary could not load {path.name}: {child.output.strip()[-600:]}",
                                  hint="check the file with `agentkd models pull <name> --force`")
        log.warning("canary: %s died with %s using extra buffer types %s", path.name,
                    _signal_name(child.returncode), "on" if options.extra_bufts else "off")
        if attempt == 0 and options.extra_bufts:
            options = LoadOptions(False, "fallback after a crash")
            continue
        raise ModelCrashError(
            f"llama.cpp crashes loading or running {path.name} on this machine ({_signal_name(child.returncode)}, "
            f"also with extra buffer types off). llama.cpp system info: {system_info()}",
            hint=f"try {SETTING_ENV}={'on' if not first.extra_bufts else 'off'}, or reinstall llama-cpp-python "
                 "built without native CPU features: CMAKE_ARGS='-DGGML_NATIVE=off' pip install --force-reinstall "
                 "--no-cache-dir llama-cpp-python==0.3.36",
        )
    record = {
        "model": path.name, "sha256": sha, "llama_cpp": llama_cpp.__version__,
        "cpu_flags_sha256": key.rsplit("cpu ", 1)[1], "amx": reports_amx(system_info()),
        "extra_bufts": options.extra_bufts, "defaults_crashed": any(r["returncode"] < 0 and r["extra_bufts"]
                                                                      for r in runs),
        "reason": first.reason if options is first else "the canary crashed with extra buffer types on",
        "runs": runs, "checked_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    latest = _read(home)  # another process may have written meanwhile: keep its records
    latest["sha256"].update(data["sha256"])
    latest["records"][key] = record
    data = latest
    _write(home, data)
    return record


def _child(argv: Sequence[str]) -> int:
    """The canary's child: load the model with the given options, decode a few tokens greedily."""
    import argparse

    parser = argparse.ArgumentParser(prog="agentkd.models.llamacpp_loader")
    parser.add_argument("model")
    parser.add_argument("--extra-bufts", choices=("on", "off"), required=True)
    args = parser.parse_args(argv)
    on = args.extra_bufts == "on"
    llm = open_llama(args.model, LoadOptions(on, "canary"), n_ctx=256, n_threads=min(os.cpu_count() or 2, 4),
                     n_batch=64, verbose=False)
    llm.create_completion("The capital of France is", max_tokens=4, temperature=0.0)
    print(json.dumps({"ok": True, **asdict(LoadOptions(on, "canary"))}))
    llm.close()
    return 0


def _serve(argv: Sequence[str]) -> int:
    """llama-cpp-python's own OpenAI-compatible server with the safe load options for this machine:
    ``python -m agentkd.models.llamacpp_loader serve --model M.gguf --port 8080 ...`` (its arguments as is)."""
    import runpy

    model = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--model"), None)
    options = options_for(model, None) if model else choose(system_info(), setting())
    log.info("llama_cpp.server with extra buffer types %s: %s", "on" if options.extra_bufts else "off", options.reason)
    original = llama_cpp.llama_cpp.llama_model_default_params

    def params() -> Any:
        p = original()
        p.use_extra_bufts = options.extra_bufts
        return p

    llama_cpp.llama_cpp.llama_model_default_params = params  # for the whole process: it only runs the server
    sys.argv = ["llama_cpp.server", *argv]
    runpy.run_module("llama_cpp.server", run_name="__main__")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        sys.exit(_serve(sys.argv[2:]))
    sys.exit(_child(sys.argv[1:]))
