"""What the single-sequence path (``llamacpp``) and the batched engine (``llamacpp_batch``) share.

- ``Sampler``: one token of one sequence, llama.cpp's chain (top-k, top-p, min-p, temperature) and a
  grammar checked last. It reads one output row (``idx``) of a context, so each sequence of a batch
  keeps its own chain, seed and grammar state.
- ``Decoder``: how a chat turn evaluates tokens and samples the next one; the single path uses the
  ``Llama``'s own context, the batched engine one sequence of a shared context.
- ``COMPUTE``: the lock that lets one in-process model compute at a time.
- ``compute``: every llama.cpp evaluation of the process runs on one thread.
- ``kept``/``chunks``: where a prompt's cached prefix ends and how the rest is cut, the same on both paths.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

import llama_cpp
import numpy as np
from llama_cpp import _internals

from agentkd.errors import ContextOverflowError

# One in-process model computes at a time: each llama.cpp call already uses every core, and two at once
# (a local teacher and the student, in a build's overlapping branches) would fight over them and both
# run slower than one after the other.
COMPUTE = threading.RLock()

T = TypeVar("T")
COMPUTE_THREAD = "agentkd-llama"
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def compute(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on the process's one llama.cpp thread; the caller waits (it does not take ``COMPUTE``:
    callers hold it for as long as their turn needs it).

    Why one thread: llama.cpp's OpenMP keeps a team of worker threads per thread that calls it. Once two
    threads have evaluated (the single path in a request's thread and the batched engine in its own, or a
    local teacher and the student), libgomp sees more threads than cores and stops spinning between
    parallel regions; measured on 2 cores (Qwen2.5-Coder-0.5B, one token per step) that made every step
    64 ms instead of 40, for the rest of the process.
    """
    global _pool
    if threading.current_thread().name.startswith(COMPUTE_THREAD):
        return fn(*args)
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(1, thread_name_prefix=COMPUTE_THREAD)
        pool = _pool
    return pool.submit(fn, *args).result()


def _forget_pool() -> None:  # a forked child has no such thread: it starts its own
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_forget_pool)


# Prompt tokens are evaluated in chunks of CHUNK tokens at fixed positions (multiples of CHUNK, the last one
# shorter), one llama_decode each, and a cached prefix is kept only up to such a multiple. llama.cpp's CPU
# kernels round a row differently depending on how many tokens of its sequence share the batch
# (benchmarks/batch_invariance_probe.py: Qwen2.5-Coder-0.5B's logits move by up to 0.33 when a prompt's last
# 2-7 tokens are evaluated apart from the rest, SmolLM2-135M's when its last one is), so a turn's output
# would depend on what the cache held before it. Cut at fixed positions, every cell is computed in the same
# batch shape whatever came before, on the single path and in the batched engine alike: greedy output is a
# function of the prompt alone.
CHUNK = 64


def kept(common: int, n: int) -> int:
    """How many cached cells a prompt of ``n`` tokens keeps when ``common`` of them match the cache: the match
    rounded down to a chunk boundary, and at least one token evaluated (its logits are sampled next)."""
    reuse = min(common, n - 1)
    return reuse - reuse % CHUNK


def chunks(start: int, end: int) -> list[tuple[int, int]]:
    """Tokens ``start`` (a chunk boundary) to ``end`` as [from, to) chunks cut at multiples of CHUNK; each is
    evaluated by a ``llama_decode`` of its own (merged, a chunk's rows would take the shape of the merge)."""
    return [(a, min(a + CHUNK, end)) for a in range(start, end, CHUNK)]


def overflow(n: int, n_ctx: int) -> ContextOverflowError:
    return ContextOverflowError(
        f"the prompt is {n} tokens but the context window is {n_ctx}.",
        hint="start a new conversation, lower strategy_tokens, or raise n_ctx (env AGENTKD_N_CTX).",
    )


def chain(temperature: float, seed: int) -> _internals.LlamaSampler:
    """The chain ``Llama._init_sampler`` builds for our settings (its no-op penalties left out), with ``seed``."""
    sampler = _internals.LlamaSampler()
    if temperature == 0.0:
        sampler.add_greedy()
        return sampler
    sampler.add_top_k(40)
    sampler.add_typical(1.0, 1)
    sampler.add_top_p(0.95, 1)
    sampler.add_min_p(0.05, 1)
    sampler.add_temp(temperature)
    sampler.add_dist(seed)
    return sampler


class Sampler:
    """One generation's sampling, grammar-last (as llama.cpp's ``common_sampler``).

    A token the grammar rejects is sampled again from the ``shortlist`` highest logits that it allows, and
    only if it allows none of them from the whole vocabulary. Greedy output is still exactly the masked
    argmax: the best allowed token among the highest logits is the best allowed token of all.
    """

    shortlist = 128

    def __init__(self, model: Any, temperature: float, seed: int, grammar: llama_cpp.LlamaGrammar | None) -> None:
        """``model``: the ``llama_cpp._internals.LlamaModel`` whose vocabulary the grammar is written against."""
        self.chain = chain(temperature, seed)
        self.grammar: Any = None
        self.rejections = 0
        if grammar is None:
            return
        self.grammar = llama_cpp.llama_sampler_init_grammar(
            model.vocab, grammar._grammar.encode(), grammar._root.encode()
        )
        if not self.grammar:
            raise ValueError(f"llama.cpp could not parse the grammar:\n{grammar._grammar}")
        self._n = model.n_vocab()
        self._ids = np.arange(self._n, dtype=np.int32)
        self._data = (llama_cpp.llama_token_data * self._n)()
        self._view = np.ctypeslib.as_array(self._data)
        self._one = (llama_cpp.llama_token_data * 1)()

    def sample(self, ctx: Any, idx: int = -1) -> int:
        """The next token from output row ``idx`` of the context ``ctx`` (a ``llama_context_p``)."""
        if self.grammar is None:
            return int(llama_cpp.llama_sampler_sample(self.chain.sampler, ctx, idx))  # accepts the token too
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, idx), shape=(self._n,))
        token = self._pick(logits, self._ids)
        if not self._allowed(token, float(logits[token])):
            self.rejections += 1
            short = min(self.shortlist, self._n)
            token = self._pick(logits, np.argpartition(logits, -short)[-short:], masked=True) if short else -1
            if token < 0:
                token = self._pick(logits, self._ids, masked=True)
        llama_cpp.llama_sampler_accept(self.grammar, token)
        self.chain.accept(token)
        return token

    def _pick(self, logits: np.ndarray, ids: np.ndarray, *, masked: bool = False) -> int:
        """Run the chain (after the grammar, when ``masked``) over the tokens ``ids``; -1 if the grammar allows none."""
        view = self._view[: len(ids)]
        view["id"] = ids  # the chain sorts the array in place: fill it afresh each time
        view["logit"] = logits[ids]
        view["p"] = 0.0
        arr = llama_cpp.llama_token_data_array(
            data=ctypes.cast(self._data, llama_cpp.llama_token_data_p), size=len(ids), selected=-1, sorted=False
        )
        if masked:
            llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(arr))
            if not np.isfinite(view["logit"]).any():
                return -1
        llama_cpp.llama_sampler_apply(self.chain.sampler, ctypes.byref(arr))
        return int(self._data[arr.selected].id)

    def _allowed(self, token: int, logit: float) -> bool:
        self._one[0] = llama_cpp.llama_token_data(token, logit, 0.0)
        arr = llama_cpp.llama_token_data_array(
            data=ctypes.cast(self._one, llama_cpp.llama_token_data_p), size=1, selected=-1, sorted=False
        )
        llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(arr))
        return bool(np.isfinite(self._one[0].logit))

    def close(self) -> None:
        self.chain.close()
        if self.grammar is not None:
            llama_cpp.llama_sampler_free(self.grammar)
            self.grammar = None


class Decoder(Protocol):
    """One sequence's token loop, as a chat turn drives it."""

    def start(self, tokens: list[int], sampler: Sampler) -> tuple[int, int]:
        """Evaluate ``tokens`` (reusing what KV cache it can) and sample the next: (tokens reused, token)."""
        ...

    def advance(self, token: int, sampler: Sampler) -> int | None:
        """Evaluate the sampled ``token`` and sample the next; None when the context window is full."""
        ...

    def close(self) -> None:
        """The turn is over (its sequence may be reused)."""
        ...
