"""Which batch shapes change a sequence's logits in llama.cpp? (#16: batched vs one-by-one identity)

Run: python benchmarks/batch_invariance_probe.py [model ...]   (catalog names; default: all three)

For each model, one context with up to 8 sequences and one KV stream each (as the batched engine has it):

- ``beside k``: a prompt is evaluated on every sequence; then sequence 0's next token is decoded alone (a batch
  of one token, as the single path decodes) and again beside one token of each of k - 1 other sequences (as
  the engine decodes when k answers are being written). Largest logit difference of sequence 0's row.
- ``chunks [a, b]``: one sequence's prompt evaluated as one batch of N tokens, and again as a batch of a
  tokens then a batch of b (as happens when a prompt's first part is reused from the cache, or a long prompt
  is cut into n_batch chunks). Largest difference of the last token's logits, and whether the next 8 greedy
  tokens are the same.

Greedy decoding stays identical only when every row is computed in a batch shape of the same class; which
shapes form a class depends on the model's weight types and the CPU's kernels (llama.cpp's CPU backend uses
ggml's vec_dot for some shapes and llamafile's tinyBLAS tiles for others).
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

import llama_cpp
from llama_cpp import _internals

from agentkd.models import catalog
from agentkd.models.llamacpp import LocalLLM

WIDTH = 8
TEXT = ("You are a careful assistant. Solve the problem with a short Python program whose output is printed. " * 3
        + "Question: Jim swims a kilometer in 17 minutes when the water is cold. How long for 7 km? Answer:")


class Probe:
    def __init__(self, llm: LocalLLM) -> None:
        model = llm._llm._model
        params = llama_cpp.llama_context_params.from_buffer_copy(llm._llm.context_params)
        params.n_ctx, params.n_seq_max, params.n_batch, params.n_ubatch = 512 * WIDTH, WIDTH, 512, 512
        params.kv_unified = False
        self.ctx = _internals.LlamaContext(model=model, params=params, verbose=False)
        self.mem = llama_cpp.llama_get_memory(self.ctx.ctx)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model.model))
        self.batch = llama_cpp.llama_batch_init(512, 0, 1)
        self.prompt: list[int] = llm._llm.tokenize(TEXT.encode(), add_bos=True)

    def decode(self, rows: list[tuple[int, int, int, bool]]) -> list[list[float]]:
        """(token, position, sequence, want logits) rows as one llama_decode; the logits asked for."""
        b = self.batch
        for i, (token, pos, seq, want) in enumerate(rows):
            b.token[i], b.pos[i], b.n_seq_id[i], b.seq_id[i][0], b.logits[i] = token, pos, 1, seq, want
        b.n_tokens = len(rows)
        assert llama_cpp.llama_decode(self.ctx.ctx, b) == 0
        return [list(ctypes.cast(llama_cpp.llama_get_logits_ith(self.ctx.ctx, i), ctypes.POINTER(ctypes.c_float))
                     [: self.n_vocab]) for i, row in enumerate(rows) if row[3]]

    def prefill(self, seq: int, chunks: list[int]) -> list[float]:
        llama_cpp.llama_memory_seq_rm(self.mem, seq, 0, -1)
        start, last = 0, list[float]()
        for c in chunks:
            out = self.decode([(self.prompt[p], p, seq, p == len(self.prompt) - 1) for p in range(start, start + c)])
            last, start = (out[-1] if out else last), start + c
        return last

    def greedy(self, seq: int, logits: list[float], n: int = 8) -> list[int]:
        tokens, pos = [], len(self.prompt)
        for _ in range(n):
            tokens.append(logits.index(max(logits)))
            (logits,) = self.decode([(tokens[-1], pos, seq, True)])
            pos += 1
        llama_cpp.llama_memory_seq_rm(self.mem, seq, len(self.prompt), -1)
        return tokens

    def close(self) -> None:
        llama_cpp.llama_batch_free(self.batch)
        self.ctx.close()


def _diff(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def probe(name: str) -> dict[str, Any]:
    llm = LocalLLM(str(catalog.resolve(name)), n_ctx=512, n_threads=2)
    p = Probe(llm)
    out: dict[str, Any] = {}
    try:
        n = len(p.prompt)
        for seq in range(WIDTH):
            p.prefill(seq, [n])
        nxt = p.prompt[-1]
        (alone,) = p.decode([(nxt, n, 0, True)])
        for k in range(2, WIDTH + 1):
            for seq in range(k):
                llama_cpp.llama_memory_seq_rm(p.mem, seq, n, -1)
            rows = p.decode([(nxt, n, seq, True) for seq in range(k)])
            out[f"beside {k}"] = (_diff(alone, rows[0]), None)
        for seq in range(WIDTH):
            llama_cpp.llama_memory_seq_rm(p.mem, seq, n, -1)
        whole = p.prefill(0, [n])
        ref = p.greedy(0, whole)
        for c in (1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16, 32):
            last = p.prefill(0, [n - c, c])
            out[f"chunks [{n - c}, {c}]"] = (_diff(whole, last), p.greedy(0, last) == ref)
    finally:
        p.close()
        llm.close()
    return out


if __name__ == "__main__":
    for model in sys.argv[1:] or ["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]:
        rows = probe(model)
        print(f"\n{model}\n| shape | max logit difference | next 8 greedy tokens same |\n|---|---:|---|")
        for shape, (diff, same) in rows.items():
            print(f"| {shape} | {diff:.6f} | {'' if same is None else same} |")
