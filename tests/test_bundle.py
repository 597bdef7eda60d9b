"""The edge bundle: retrieval with numpy alone that agrees with Chroma's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agentkd.library import Library
from agentkd.library.bundle import vocabulary, write_bundle
from agentkd.library.bundle_reader import BundleRetriever, MiniLM, WordPiece
from agentkd.library.embedder import TOKENIZER_FILE, Embedder
from tests.corpus import corpus, queries


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Library, Path]:
    root = tmp_path_factory.mktemp("bundle")
    lib = Library.open(str(root / "lib"), "bundle-lib")
    entries = corpus()
    entries[0] = entries[0].model_copy(update={"status": "candidate"})  # not admitted: left out of the bundle
    lib.restore(entries, reason="test")
    write_bundle(lib, root / "bundle", library_name="test")
    return lib, root / "bundle"


@pytest.fixture(scope="module")
def device_run(built: tuple[Library, Path]) -> dict[str, Any]:
    """The held-out queries answered by the bundle in a process where only numpy (and the stdlib) can be imported."""
    _, path = built
    script = textwrap.dedent(f"""
        import json, sys
        for name in ("chromadb", "onnxruntime", "tokenizers", "pydantic", "yaml", "agentkd", "torch"):
            sys.modules[name] = None  # any import of these now fails
        sys.path.insert(0, {str(path)!r})
        before = set(sys.modules)
        from agentkd_bundle import BundleRetriever
        reader = BundleRetriever({str(path)!r})
        results = [[h.id for h in reader.search(q, k=3)] for q in json.loads(sys.stdin.read())]
        loaded = {{m.split(".")[0] for m, mod in sys.modules.items() if mod is not None and m not in before}}
        extra = sorted(loaded - set(sys.stdlib_module_names) - {{"numpy", "agentkd_bundle"}})
        print(json.dumps({{"results": results, "extra": extra, "type": type(reader.strategies[0]).__name__}}))
    """)
    held_out = json.dumps([q for q, _ in queries(60)])
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}  # tiny matrices: one BLAS thread is ~10x faster here
    done = subprocess.run([sys.executable, "-I", "-c", script], input=held_out, capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_the_reader_needs_only_numpy(device_run: dict[str, Any]) -> None:
    assert device_run["extra"] == [] and device_run["type"] == "dict"


def _vnni() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return True  # not Linux: assume the exact int8 path
    return any(f in flags.split() for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


# Chroma's vectors come from onnxruntime's int8 matmul, the bundle's from numpy doing the same arithmetic
# exactly. On x86 CPUs without VNNI (AVX2 only, e.g. the session-11 AMD EPYC) onnxruntime's u8s8 kernel
# is known to saturate its int16 pair sums; the two differ there (mean cosine 0.993 on 20 queries, session 11)
# and near ties flip: top-3 agreement measured 80% there, >= 90% on the CPUs this test was written on.
_AGREEMENT = 0.9 if _vnni() else 0.75


def test_bundle_top3_agrees_with_chroma_on_held_out_queries(
    built: tuple[Library, Path], device_run: dict[str, Any]
) -> None:
    lib, _ = built
    held_out = queries(60)
    chroma = [[h.strategy.id for h in lib.search(q, k=3)] for q, _ in held_out]
    bundle = device_run["results"]
    same_set = sum(set(a) == set(b) for a, b in zip(chroma, bundle, strict=True)) / len(held_out)
    same_order = sum(a == b for a, b in zip(chroma, bundle, strict=True)) / len(held_out)
    print(f"bundle top-3 agreement with Chroma: {same_set:.1%} as sets, {same_order:.1%} in order "
          f"({len(held_out)} held-out queries, {lib.count()} entries)")
    assert lib.count() == 250 and same_set >= _AGREEMENT
    assert bundle[0] and all(i.startswith("s-") for i in bundle[0])


def test_bundle_files_and_filters(built: tuple[Library, Path]) -> None:
    lib, path = built
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["count"] == 249 and manifest["dims"] == 384 and manifest["embedder"] == lib.embedder.name
    assert (manifest["collection"], manifest["library"], manifest["weights"]) == ("bundle-lib", "test", "int8")
    lines = (path / "strategies.jsonl").read_text().splitlines()
    ids = [json.loads(line)["id"] for line in lines]
    assert ids == sorted(ids) and "s-00-00" not in ids
    vectors = np.load(path / "embeddings.npy")
    assert vectors.dtype == np.float32 and vectors.shape == (249, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    reader = BundleRetriever(path, as_model=False)
    hits = reader.search("how much will my deposit earn with yearly interest - which option is better", k=5,
                         task="finance")
    assert len(hits) == 5 and all("finance" in h.strategy["tasks"] for h in hits)
    assert reader.search("anything", k=3, task="no-such-task") == []
    assert type(BundleRetriever(path).search("a cake recipe", k=1)[0].strategy).__name__ == "Strategy"


def test_the_pure_python_tokenizer_matches_the_tokenizers_library() -> None:
    from tokenizers import Tokenizer

    reference = Tokenizer.from_file(str(TOKENIZER_FILE))
    reference.enable_truncation(max_length=256)
    reference.no_padding()
    ours = WordPiece(vocabulary())
    texts = [
        "When a word problem asks for 15% of $80.50, convert first!",
        "naïve café über Ångström résumé — it's “quoted” (really)…",
        "東京で会いましょう, 北京 and 서울 mixed with English",
        "tabs\tand\nnewlines\r\nand   spaces\u00a0nbsp",
        "emoji 🙂 and control \x00\x07 chars, [UNK] and [SEP] written out",
        "a" * 150 + " supercalifragilisticexpialidocious snake_case camelCase",
        "word " * 300,
    ]
    for text in texts:
        assert ours.encode(text) == reference.encode(text).ids, text


def test_float_weights_reproduce_the_onnx_graph(built: tuple[Library, Path]) -> None:
    _, path = built
    model = MiniLM(path / "minilm.npz", path / "vocab.txt", int8_activations=False)
    texts = ["When a word problem asks for a percentage of a total", "Validate the JSON before the call"]
    expected = Embedder(int8_matmul=False).embed(texts)
    np.testing.assert_allclose((model.embed(texts) * expected).sum(axis=1), 1.0, atol=1e-5)
