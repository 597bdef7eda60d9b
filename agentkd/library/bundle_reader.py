"""Retrieve from an edge bundle with numpy alone: no chromadb, no onnxruntime, no tokenizers, no agentkd needed.

``agentkd library bundle OUT`` writes the bundle and copies this file into it as ``agentkd_bundle.py``, so a
device runs ``from agentkd_bundle import BundleRetriever`` with only numpy installed. The query embedder is
all-MiniLM-L6-v2 reimplemented here: a pure-Python BERT uncased WordPiece tokenizer and a numpy forward
pass (embeddings, 6 post-LayerNorm encoder layers of 12-head attention and an erf-GELU feed-forward, mean
pooling, L2 norm) over the weights of the library's own int8 model, dequantized.

Keep this module free of imports beyond the standard library and numpy.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = 1
MAX_TOKENS = 256  # all-MiniLM-L6-v2's training length, [CLS] and [SEP] included
LAYERS, HEADS, EPS = 6, 12, 1e-12
WORDS = "embeddings.word_embeddings.weight"


class WordPiece:
    """BERT's uncased tokenizer: clean, split CJK, strip accents, lowercase, split punctuation, WordPiece."""

    def __init__(self, vocab: list[str], max_chars: int = 100) -> None:
        self.ids = {token: i for i, token in enumerate(vocab)}
        self.unk, self.cls, self.sep = self.ids["[UNK]"], self.ids["[CLS]"], self.ids["[SEP]"]
        self.max_chars = max_chars
        # Special tokens written in the text are kept whole, as the `tokenizers` library does with added tokens.
        specials = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") if t in self.ids]
        self._special = re.compile("(" + "|".join(re.escape(t) for t in specials) + ")")

    @staticmethod
    def _cjk(cp: int) -> bool:
        return (
            0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
            or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF
            or 0x2F800 <= cp <= 0x2FA1F
        )  # fmt: skip

    @staticmethod
    def _punctuation(ch: str) -> bool:
        cp = ord(ch)
        if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
            return True
        return unicodedata.category(ch).startswith("P")

    def normalize(self, text: str) -> str:
        out = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD:
                continue
            cat = unicodedata.category(ch)
            if ch in "\t\n\r" or cat == "Zs":
                out.append(" ")
            elif cat.startswith("C"):
                continue
            elif self._cjk(cp):
                out.append(f" {ch} ")
            else:
                out.append(ch)
        stripped = "".join(c for c in unicodedata.normalize("NFD", "".join(out)) if unicodedata.category(c) != "Mn")
        return stripped.lower()

    def words(self, text: str) -> list[str]:
        words: list[str] = []
        for chunk in self.normalize(text).split():
            current = ""
            for ch in chunk:
                if self._punctuation(ch):
                    if current:
                        words.append(current)
                    words.append(ch)
                    current = ""
                else:
                    current += ch
            if current:
                words.append(current)
        return words

    def _pieces(self, word: str) -> list[int]:
        if len(word) > self.max_chars:
            return [self.unk]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.ids:
                    pieces.append(self.ids[piece])
                    break
                end -= 1
            if end == start:
                return [self.unk]
            start = end
        return pieces

    def encode(self, text: str, max_tokens: int = MAX_TOKENS) -> list[int]:
        """Token ids with [CLS] and [SEP], truncated to ``max_tokens``."""
        ids: list[int] = []
        for n, part in enumerate(self._special.split(text)):
            if n % 2:
                ids.append(self.ids[part])
            else:
                ids += [i for word in self.words(part) for i in self._pieces(word)]
        return [self.cls, *ids[: max_tokens - 2], self.sep]


def _erf(x: np.ndarray) -> np.ndarray:
    """Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7): numpy has no erf."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.asarray(sign * (1.0 - poly * np.exp(-a * a)), dtype=np.float32)


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return np.asarray((x - mean) / np.sqrt(var + EPS) * gamma + beta, dtype=np.float32)


def _quantize(x: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """Activations to uint8 levels (returned as float32 ``q - zero_point``) with one scale for the tensor.

    The same asymmetric scheme as onnxruntime's DynamicQuantizeMatMul: the range always includes 0.
    """
    low, high = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    scale = np.float32((high - low) / 255.0) if high > low else np.float32(1.0)
    zero = np.float32(np.rint(np.clip(-low / scale, 0, 255)))
    levels = np.clip(np.rint(x / scale) + zero, 0, 255)
    return np.asarray(levels - zero, dtype=np.float32), scale


class MiniLM:
    """all-MiniLM-L6-v2 in numpy; ``embed`` returns L2-normalised mean-pooled float32 vectors.

    With int8 weights in the bundle, the dense layers also quantize their input as the library's
    embedder does (``agentkd.library.embedder``: DynamicQuantizeMatMul), so query vectors match the stored ones
    closely; ``int8_activations=False`` multiplies in float32 instead (as the shipped ONNX graph does).
    """

    def __init__(self, weights: Path, vocab: Path, *, int8_activations: bool | None = None) -> None:
        with np.load(weights, allow_pickle=False) as npz:
            raw = {name: npz[name] for name in npz.files}
        quantized = any(name.startswith("encoder.") and name.endswith(".q") for name in raw)
        self.int8 = quantized if int8_activations is None else int8_activations and quantized
        self.w = self._load(raw, self.int8)
        self.tokenizer = WordPiece(vocab.read_text(encoding="utf-8").split("\n")[:-1])
        self.dim = int(self.w[WORDS].shape[1])

    @staticmethod
    def _load(raw: dict[str, np.ndarray], int8: bool) -> dict[str, np.ndarray]:
        """``<name>.q`` (int8) and ``<name>.scale`` become ``q * scale``, as the ONNX graph computes them.

        With ``int8``, dense weights stay as their int8 levels and their column scales (cast one matrix at a
        time when used). The word embeddings stay int8 with their row scales: a query dequantizes only its
        own rows. On a phone that keeps the embedder at ~25 MB instead of ~90 MB.
        """
        out = {}
        for name, value in raw.items():
            if name.endswith(".q"):
                base, scale = name[:-2], raw[name[:-2] + ".scale"].astype(np.float32)
                if (int8 and base.startswith("encoder.")) or base == WORDS:
                    out[base], out[base + ".scale"] = value, scale.reshape(-1)
                else:
                    out[base] = value.astype(np.float32) * scale
            elif not name.endswith(".scale"):
                out[name] = value.astype(np.float32)
        return out

    def _vector(self, ids: list[int]) -> np.ndarray:
        w, n = self.w, len(ids)
        words = w[WORDS][ids].astype(np.float32)
        if WORDS + ".scale" in w:
            words *= w[WORDS + ".scale"][ids, None]
        x = (
            words
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        head = self.dim // HEADS
        for i in range(LAYERS):
            p = f"encoder.layer.{i}."

            def dense(h: np.ndarray, name: str, p: str = p) -> np.ndarray:
                weight, bias = w[p + name + ".weight"], w[p + name + ".bias"]
                if not self.int8:
                    return np.asarray(h @ weight + bias, dtype=np.float32)
                levels, scale = _quantize(h)
                product = levels @ weight.astype(np.float32)
                return np.asarray(product * (scale * w[p + name + ".weight.scale"]) + bias, dtype=np.float32)

            q, k, v = (
                dense(x, f"attention.self.{part}").reshape(n, HEADS, head).transpose(1, 0, 2)
                for part in ("query", "key", "value")
            )
            scores = q @ k.transpose(0, 2, 1) / np.float32(np.sqrt(head))
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            attention = scores / scores.sum(axis=-1, keepdims=True)
            context = (attention @ v).transpose(1, 0, 2).reshape(n, self.dim)
            x = _layer_norm(dense(context, "attention.output.dense") + x, *self._ln(p + "attention.output"))
            h = dense(x, "intermediate.dense")
            h = h * np.float32(0.5) * (np.float32(1.0) + _erf(h / np.float32(np.sqrt(2.0))))
            x = _layer_norm(dense(h, "output.dense") + x, *self._ln(p + "output"))
        pooled = x.mean(axis=0)
        return np.asarray(pooled / max(float(np.linalg.norm(pooled)), 1e-12), dtype=np.float32)

    def _ln(self, prefix: str) -> tuple[np.ndarray, np.ndarray]:
        return self.w[prefix + ".LayerNorm.weight"], self.w[prefix + ".LayerNorm.bias"]

    def embed(self, texts: list[str]) -> np.ndarray:
        """One text at a time: no padding, so a text's vector never depends on its batch-mates."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row] = self._vector(self.tokenizer.encode(text))
        return out


@dataclass(frozen=True)
class BundleHit:
    """A result: ``strategy`` is an ``agentkd.schema.Strategy`` when agentkd is importable, else a dict."""

    strategy: Any
    score: float

    @property
    def id(self) -> str:
        return str(self.strategy["id"] if isinstance(self.strategy, dict) else self.strategy.id)


def _as_model(records: list[dict[str, Any]], as_model: bool | None) -> list[Any]:
    if as_model is False:
        return records
    try:
        from agentkd.schema import Strategy
    except ImportError:
        if as_model:
            raise
        return records
    return [Strategy.model_validate(r) for r in records]


class BundleRetriever:
    """Searches a bundle directory; ``search`` has the signature ``agentkd.student.student.Retriever`` expects."""

    def __init__(self, path: str | Path, *, as_model: bool | None = None) -> None:
        self.path = Path(path)
        self.manifest = json.loads((self.path / "manifest.json").read_text(encoding="utf-8"))
        if self.manifest.get("format") != FORMAT:
            raise ValueError(f"{self.path} is bundle format {self.manifest.get('format')}, this reader reads {FORMAT}")
        lines = (self.path / "strategies.jsonl").read_text(encoding="utf-8").splitlines()
        self.records = [json.loads(line) for line in lines if line.strip()]
        self.strategies = _as_model(self.records, as_model)
        self.vectors = np.load(self.path / "embeddings.npy", allow_pickle=False).astype(np.float32)
        if self.vectors.shape != (len(self.records), self.manifest["dims"]):
            raise ValueError(f"{self.path}: embeddings.npy does not match strategies.jsonl; write the bundle again")
        self.embedder = MiniLM(self.path / "minilm.npz", self.path / "vocab.txt")

    def search(
        self,
        query: str,
        *,
        k: int = 3,
        task: str | None = None,
        kind: str | None = None,
        domain: str | None = None,
        min_score: float = 0.0,
    ) -> list[BundleHit]:
        """The ``k`` entries closest to ``query`` (cosine) that pass the filters and score at least ``min_score``."""
        if k <= 0 or not self.records:
            return []
        scores = self.vectors @ self.embedder.embed([query])[0]
        keep = np.array(
            [
                (task is None or task in r.get("tasks", []))
                and (kind is None or r.get("kind") == kind)
                and (domain is None or domain in r.get("domains", []))
                for r in self.records
            ]
        )
        scores = np.where(keep & (scores >= min_score), scores, -np.inf)
        top = np.argsort(-scores, kind="stable")[:k]
        return [BundleHit(self.strategies[i], float(scores[i])) for i in top if np.isfinite(scores[i])]
