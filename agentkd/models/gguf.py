"""A minimal GGUF header reader: enough to verify a file is a real model and show its metadata.

We read the key/value section only (no tensors), so checking a 1 GB file costs microseconds and
needs neither llama.cpp nor the ``gguf`` package.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path
from typing import Any, BinaryIO

from agentkd.errors import ModelCorruptError

MAGIC = b"GGUF"

# GGUF value types -> struct format (scalars); 8 = string, 9 = array.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}

# llama.cpp's file types (general.file_type) for the quantizations we meet.
FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    32: "BF16",
}


def _read(f: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise EOFError
    return struct.unpack(fmt, data)[0]


def _read_str(f: BinaryIO) -> str:
    n = _read(f, "<Q")
    if n > 1 << 26:
        raise ValueError(f"string length {n} is implausible")
    data = f.read(n)
    if len(data) != n:
        raise EOFError
    return data.decode("utf-8", errors="replace")


def _read_value(f: BinaryIO, vtype: int, keep_arrays: bool) -> Any:
    if vtype in _SCALARS:
        return _read(f, _SCALARS[vtype])
    if vtype == 8:
        return _read_str(f)
    if vtype == 9:
        item_type = _read(f, "<I")
        count = _read(f, "<Q")
        items = [_read_value(f, item_type, keep_arrays) for _ in range(count)]
        return items if keep_arrays else f"<array of {count}>"
    raise ValueError(f"unknown GGUF value type {vtype}")


def _read_header(f: BinaryIO, keep_arrays: bool) -> tuple[dict[str, Any], int]:
    if f.read(4) != MAGIC:
        raise ValueError("missing GGUF magic bytes")
    version = _read(f, "<I")
    if version not in (2, 3):
        raise ValueError(f"unsupported GGUF version {version}")
    n_tensors = _read(f, "<Q")
    n_kv = _read(f, "<Q")
    if n_tensors > 1 << 20 or n_kv > 1 << 20:
        raise ValueError(f"{n_tensors} tensors and {n_kv} keys are implausible")
    meta: dict[str, Any] = {"gguf.version": version}
    for _ in range(n_kv):
        key = _read_str(f)
        vtype = _read(f, "<I")
        meta[key] = _read_value(f, vtype, keep_arrays)
    return meta, n_tensors


def _corrupt(path: Path, why: object) -> ModelCorruptError:
    return ModelCorruptError(
        f"{path} is not a valid GGUF model ({why or 'file is truncated'}).",
        hint="delete the file and fetch it again (for catalog models: agentkd models pull NAME --force).",
    )


def read_metadata(path: str | Path, *, keep_arrays: bool = False) -> dict[str, Any]:
    """Return the GGUF key/value metadata of ``path``; raise ModelCorruptError if it is not GGUF.

    Large arrays (the vocabulary) are summarized unless ``keep_arrays`` is true.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            return _read_header(f, keep_arrays)[0]
    except (EOFError, ValueError, struct.error, UnicodeDecodeError) as exc:
        raise _corrupt(path, exc) from exc


# ggml tensor types -> (elements per block, bytes per block), from ggml.c's type traits
_BLOCKS = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82),
    23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2),
    34: (256, 54), 35: (256, 66), 39: (32, 17),
}


def check_complete(path: str | Path) -> dict[str, Any]:
    """``read_metadata``, and also that the file holds every byte of tensor data its header describes.

    A truncated or cut-off copy passes the header check but makes llama.cpp fail with a bare ValueError;
    comparing the tensors' extent with the file size catches it before loading, in milliseconds.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            meta, n_tensors = _read_header(f, keep_arrays=False)
            end = 0
            for _ in range(n_tensors):
                _read_str(f)  # the tensor's name
                n_dims = _read(f, "<I")
                if n_dims > 8:
                    raise ValueError(f"a tensor with {n_dims} dimensions is implausible")
                count = math.prod(_read(f, "<Q") for _ in range(n_dims))
                ggml_type, offset = _read(f, "<I"), _read(f, "<Q")
                per_block, block_bytes = _BLOCKS.get(ggml_type, (1, 0))  # unknown type: count its offset only
                end = max(end, offset + count // per_block * block_bytes)
            align = int(meta.get("general.alignment", 32)) or 32
            start = -(-f.tell() // align) * align
            size = os.fstat(f.fileno()).st_size
    except (EOFError, ValueError, struct.error, UnicodeDecodeError) as exc:
        raise _corrupt(path, exc) from exc
    if size < start + end:
        raise _corrupt(path, f"truncated: {size} bytes, but its tensors need {start + end}")
    return meta


def quantization(meta: dict[str, Any]) -> str:
    ftype = meta.get("general.file_type")
    return FILE_TYPES.get(ftype, str(ftype)) if ftype is not None else "unknown"
