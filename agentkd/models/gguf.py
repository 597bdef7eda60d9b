"""A minimal GGUF header reader: enough to verify a file is a real model and show its metadata.

We read the key/value section only (no tensors), so checking a 1 GB file costs microseconds and
needs neither llama.cpp nor the ``gguf`` package.
"""

from __future__ import annotations

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


def read_metadata(path: str | Path, *, keep_arrays: bool = False) -> dict[str, Any]:
    """Return the GGUF key/value metadata of ``path``; raise ModelCorruptError if it is not GGUF.

    Large arrays (the vocabulary) are summarized unless ``keep_arrays`` is true.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            if f.read(4) != MAGIC:
                raise ValueError("missing GGUF magic bytes")
            version = _read(f, "<I")
            if version not in (2, 3):
                raise ValueError(f"unsupported GGUF version {version}")
            _n_tensors = _read(f, "<Q")
            n_kv = _read(f, "<Q")
            meta: dict[str, Any] = {"gguf.version": version}
            for _ in range(n_kv):
                key = _read_str(f)
                vtype = _read(f, "<I")
                meta[key] = _read_value(f, vtype, keep_arrays)
            return meta
    except (EOFError, ValueError, struct.error, UnicodeDecodeError) as exc:
        raise ModelCorruptError(
            f"{path} is not a valid GGUF model ({exc or 'file is truncated'}).",
            hint="delete the file and fetch it again (for catalog models: agentkd models pull NAME --force).",
        ) from exc


def quantization(meta: dict[str, Any]) -> str:
    ftype = meta.get("general.file_type")
    return FILE_TYPES.get(ftype, str(ftype)) if ftype is not None else "unknown"
