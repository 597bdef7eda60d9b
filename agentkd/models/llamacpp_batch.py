"""Batched decoding: many sequences in one llama.cpp context, so each step reads the weights once for all of them.

Design notes
- One context with ``n_seq_max = width`` and a unified KV cache of ``width × n_ctx`` cells, backed by the
  ``LocalLLM``'s already-loaded model (the weights are not loaded twice, and the loader's safe options
  hold). Each sequence (a *slot*) holds one chat turn at a time.
- A turn runs ``LocalLLM.turn``, the same code as the single path (sampler chain and seed, lazy
  tool-call grammar, stop strings, max tokens, finish reason, token accounting), in its caller's thread,
  on a decoder that hands its tokens to the engine and waits for the next one.
- A step runs once every busy slot has handed in its tokens, or ``max_wait`` after the first did, so a
  slow reader of one stream does not hold up the others. The thread that completes the set runs the step
  (there is no engine thread): one ``llama_decode`` with one token per decoding sequence, each sequence's
  next token sampled from its own output row with its own sampler; then chunks of the prompts of sequences
  that joined, each a ``llama_decode`` of its own, cut at the fixed positions the single path cuts at
  (``llamacpp_core.chunks``). llama.cpp rounds a sequence's rows differently with the number of its tokens in
  a batch, so a prompt merged with other tokens would not give the single path's output; one decoded token
  per sequence beside others does (``benchmarks/batch_invariance_probe.py``).
- Shared prompt prefixes: a turn starts by copying the longest prefix of its prompt that any slot holds, up
  to a chunk boundary (``llamacpp_core.kept``), and evaluates only the rest. A
  prompt whose longer prefix another slot is evaluating right now waits one step and copies it, so k votes
  on one prompt evaluate it once. A free slot keeps its cells for the next turn that matches them.
- Sequences of a step are put in the batch in id order and a turn takes the free slot with the lowest id:
  with one KV stream per sequence llama.cpp runs one forward pass per run of consecutive ids.
- Turns beyond the width queue for a free slot: continuous batching, a turn joins at the next step and
  leaves when it is done.
- Every ``llama_decode`` runs on the process's one llama.cpp thread (``llamacpp_core.compute``: llama.cpp's
  OpenMP keeps a team of threads per calling thread, and two teams on these cores slow every step). Each step
  takes ``COMPUTE``: one in-process model computes at a time, so a local teacher still runs between steps,
  never at the same time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import llama_cpp
from llama_cpp import _internals

from agentkd.models.chat_template import ChatResult, final_result
from agentkd.models.llamacpp_core import COMPUTE, Sampler, chunks, compute, kept, overflow

DEFER_MIN = 16  # tokens: a shorter prefix is cheaper to evaluate again than to wait a step for


def _common(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@dataclass(eq=False)
class _Slot:
    seq: int
    tokens: list[int] = field(default_factory=list)  # what this sequence's KV cells hold, in order
    busy: bool = False


@dataclass(eq=False)
class _Request:
    """Tokens to evaluate on one slot, then one token to sample with the slot's sampler."""

    slot: _Slot
    todo: list[int]
    sampler: Sampler
    fresh: bool  # the start of a turn: its prompt may reuse cells of any slot
    prompt: bool = False  # a turn's prompt (evaluated in fixed chunks), not one decoded token
    since: float = field(default_factory=time.monotonic)
    reuse: int = 0
    token: int = -1
    done: bool = False
    error: BaseException | None = None


@dataclass
class EngineStats:
    """What the engine did: steps, tokens evaluated, and how wide the steps were."""

    steps: int = 0
    decodes: int = 0  # llama_decode calls: one per step for the decoding sequences, one per prompt chunk
    tokens: int = 0
    sampled: int = 0
    reused: int = 0

    @property
    def mean_width(self) -> float:
        """Sequences sampled per step, on average."""
        return self.sampled / self.steps if self.steps else 0.0


class BatchEngine:
    """Up to ``width`` sequences decoded together on ``owner``'s model (a ``LocalLLM``)."""

    max_wait = 0.02  # seconds a step waits for busy slots that have not handed in their tokens

    def __init__(self, owner: Any, width: int, *, n_ctx: int | None = None, n_batch: int = 512) -> None:
        llm = owner._llm  # the llama_cpp.Llama the loader opened: its model backs this context too
        self.owner, self.width = owner, width
        self.n_ctx = n_ctx or owner.n_ctx  # per sequence: a turn sees the window the single path gives it
        self.n_batch = n_batch
        params = llama_cpp.llama_context_params.from_buffer_copy(llm.context_params)
        params.n_ctx = self.n_ctx * width
        params.n_seq_max = width
        params.n_batch = params.n_ubatch = n_batch
        # One KV stream per sequence: a sequence's cells then sit where the single path puts them, so its
        # attention sums in the same order and greedy output matches the single path token for token
        # (a unified cache interleaves the sequences and rounds differently). A prefix copy copies the stream.
        params.kv_unified = False
        self._ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        self._mem = llama_cpp.llama_get_memory(self._ctx.ctx)
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._slots = [_Slot(i) for i in range(width)]
        self._pending: list[_Request] = []
        self._cond = threading.Condition()
        self.stats = EngineStats()

    # -- slots ------------------------------------------------------------------------------------
    @property
    def busy(self) -> int:
        with self._cond:
            return sum(s.busy for s in self._slots)

    def acquire(self) -> _Slot:
        """The free slot with the lowest sequence id (busy ids stay consecutive: one forward pass per step, see
        ``_step``; a prompt's held prefix is copied from whichever slot holds it); waits when all are busy."""
        with self._cond:
            while all(s.busy for s in self._slots):
                self._cond.wait()
            slot = next(s for s in self._slots if not s.busy)
            slot.busy = True
            return slot

    def release(self, slot: _Slot) -> None:
        with self._cond:
            slot.busy = False
            self._cond.notify_all()

    # -- steps ------------------------------------------------------------------------------------
    def submit(self, slot: _Slot, tokens: list[int], sampler: Sampler, *, fresh: bool) -> _Request:
        """Evaluate ``tokens`` on ``slot`` in the next step(s) and sample the next token; returns when done."""
        req = _Request(slot, list(tokens), sampler, fresh, prompt=fresh)
        with self._cond:
            self._pending.append(req)
            try:
                while not req.done:
                    if self._ready():
                        self._step()
                        self._cond.notify_all()
                    else:
                        oldest = min(r.since for r in self._pending)
                        self._cond.wait(max(self.max_wait - (time.monotonic() - oldest), 0.001))
            finally:
                if not req.done:
                    self._pending.remove(req)
        if req.error is not None:
            raise req.error
        return req

    def _ready(self) -> bool:
        waiting = {r.slot.seq for r in self._pending}
        if all(s.seq in waiting for s in self._slots if s.busy):
            return True
        return time.monotonic() - min(r.since for r in self._pending) >= self.max_wait

    def _step(self) -> None:
        """One step: a token for every sequence that is decoding, in one ``llama_decode``, then chunks of the
        prompts waiting (at most ``n_batch`` tokens), each chunk a ``llama_decode`` of its own at its fixed
        position (``llamacpp_core.chunks``), so its rows are computed as the single path computes them."""
        scheduled: dict[int, list[int]] = {}
        runs: list[list[tuple[_Request, list[int], bool]]] = []
        decoding = sorted((r for r in self._pending if not r.prompt), key=lambda r: r.slot.seq)
        if decoding:
            runs.append([(r, r.todo, True) for r in decoding])
        budget = self.n_batch
        for req in [r for r in self._pending if r.prompt]:
            if budget <= 0:
                break
            if req.fresh and not self._resolve(req, scheduled):
                continue
            pos = len(req.slot.tokens)
            for start, end in chunks(pos, pos + len(req.todo)):
                if budget <= 0:
                    break
                take, req.todo = req.todo[: end - start], req.todo[end - start :]
                runs.append([(req, take, not req.todo)])  # the chunk that ends the prompt samples its next token
                scheduled.setdefault(req.slot.seq, []).extend(take)
                budget -= len(take)
            req.since = time.monotonic()  # a prompt's next chunks wait for the others like any request
        if runs:
            self.stats.steps += 1
        for i, rows in enumerate(runs):
            rc = self._run(rows)
            if rc != 0:  # this decode's sequences and those whose chunks were to follow lose their cells
                seqs = {r.slot.seq for later in runs[i:] for r, _, _ in later}
                self._fail(seqs, RuntimeError(f"llama_decode failed ({rc}) on {sum(len(t) for _, t, _ in rows)} "
                                              "tokens"))
                return

    def _run(self, rows: list[tuple[_Request, list[int], bool]]) -> int:
        """One ``llama_decode`` of ``rows`` (a request, the tokens it evaluates, whether its next token is sampled
        from the last of them), then those tokens; llama_decode's return code."""
        batch, n = self._batch, 0
        outs: list[tuple[_Request, int]] = []
        for req, take, sample in rows:
            pos = len(req.slot.tokens)
            for i, token in enumerate(take):
                batch.token[n], batch.pos[n], batch.n_seq_id[n] = token, pos + i, 1
                batch.seq_id[n][0], batch.logits[n] = req.slot.seq, False
                n += 1
            if sample:
                batch.logits[n - 1] = True
                outs.append((req, n - 1))
        batch.n_tokens = n
        rc = self._decode(batch)
        if rc != 0:
            return rc
        for req, take, _ in rows:
            req.slot.tokens.extend(take)
        self.stats.decodes += 1
        self.stats.tokens += n
        for req, idx in outs:
            try:
                req.token = req.sampler.sample(self._ctx.ctx, idx)
                self.stats.sampled += 1
            except Exception as exc:  # a sampler's failure is its turn's, not the batch's
                req.error = exc
            req.done = True
            self._pending.remove(req)
        return 0

    def _decode(self, batch: Any) -> int:
        # every decode on one thread: a team of OpenMP threads per turn's thread on 2 cores made each step 2.5x
        # slower than in a bare loop, and even two teams (this engine's and the single path's) 1.6x
        with COMPUTE:
            return compute(llama_cpp.llama_decode, self._ctx.ctx, batch)

    def _resolve(self, req: _Request, scheduled: dict[int, list[int]]) -> bool:
        """Give a fresh turn its prompt's longest held prefix; False: wait a step for a longer one being evaluated."""
        slot, prompt = req.slot, req.todo
        best, src = _common(slot.tokens, prompt), slot
        for other in self._slots:
            c = _common(other.tokens, prompt)
            if c > best:
                best, src = c, other
        for r in self._pending:
            if r is req or r.fresh or r.slot is slot:
                continue
            planned = r.slot.tokens + scheduled.get(r.slot.seq, []) + r.todo
            if _common(planned, prompt) >= best + DEFER_MIN:
                return False
        reuse = kept(best, len(prompt))  # up to a chunk boundary, as the single path keeps it
        if src is slot:
            llama_cpp.llama_memory_seq_rm(self._mem, slot.seq, reuse, -1)
            del slot.tokens[reuse:]
        else:  # across streams llama.cpp copies a whole stream (at the next decode): copy it, then trim
            llama_cpp.llama_memory_seq_rm(self._mem, slot.seq, -1, -1)
            if reuse:
                llama_cpp.llama_memory_seq_cp(self._mem, src.seq, slot.seq, -1, -1)
                llama_cpp.llama_memory_seq_rm(self._mem, slot.seq, reuse, -1)
            slot.tokens = list(prompt[:reuse])
        req.todo, req.reuse, req.fresh = list(prompt[reuse:]), reuse, False
        self.stats.reused += reuse
        return True

    def _fail(self, scheduled: Collection[int], error: BaseException) -> None:
        """A failed decode: the sequences in it lose their cells and their turns get the error."""
        for seq in scheduled:
            llama_cpp.llama_memory_seq_rm(self._mem, seq, -1, -1)
            self._slots[seq].tokens = []
        for req in [r for r in self._pending if r.slot.seq in scheduled]:
            req.error, req.done = error, True
            self._pending.remove(req)

    def __del__(self) -> None:
        self.close()

    def close(self) -> None:
        if getattr(self, "_batch", None) is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None  # type: ignore[assignment]
        ctx = getattr(self, "_ctx", None)
        if ctx is not None:
            ctx.close()


class _Turn:
    """The decoder of one chat turn on the engine: a slot for the turn, its tokens handed to the steps."""

    def __init__(self, engine: BatchEngine) -> None:
        self.engine = engine
        self.slot: _Slot | None = None

    def start(self, tokens: list[int], sampler: Sampler) -> tuple[int, int]:
        if len(tokens) >= self.engine.n_ctx:
            raise overflow(len(tokens), self.engine.n_ctx)
        if self.slot is None:
            self.slot = self.engine.acquire()
        req = self.engine.submit(self.slot, tokens, sampler, fresh=True)
        return req.reuse, req.token

    def advance(self, token: int, sampler: Sampler) -> int | None:
        assert self.slot is not None
        if len(self.slot.tokens) + 1 >= self.engine.n_ctx:
            return None
        return self.engine.submit(self.slot, [token], sampler, fresh=False).token

    def close(self) -> None:
        if self.slot is not None:
            self.engine.release(self.slot)
            self.slot = None


class BatchedLLM:
    """A ``LocalLLM`` whose turns, from any number of threads, are sequences of one batch.

    It has the ``LocalLLM``'s chat interface (``chat_stream``, ``chat``, ``stream``, ``tokenize``…): hand it
    to code that takes a model and call it from several threads at once.
    """

    def __init__(self, owner: Any, engine: BatchEngine) -> None:
        self.owner, self.engine = owner, engine

    def __getattr__(self, name: str) -> Any:  # tokenize, count_tokens, render, name, n_ctx, path...
        return getattr(self.owner, name)

    def batched(self, width: int) -> BatchedLLM:
        """Already batched: more turns share this engine (beyond its width they queue)."""
        return self

    def chat_stream(self, messages: list[dict[str, Any]], **kwargs: Any) -> Iterator[str | ChatResult]:
        return self.owner.turn(_Turn(self.engine), messages, **kwargs)  # type: ignore[no-any-return]

    def chat(self, messages: list[dict[str, Any]], **kwargs: Any) -> ChatResult:
        return final_result(self.chat_stream(messages, **kwargs))

    def stream(self, messages: list[dict[str, Any]], **kwargs: Any) -> Iterator[str]:
        for item in self.chat_stream(messages, **kwargs):
            if isinstance(item, str):
                yield item

    def chat_batch(
        self, conversations: Sequence[list[dict[str, Any]]], seeds: Sequence[int], **kwargs: Any
    ) -> list[ChatResult]:
        """One turn per conversation, all in the batch at once (each in its own thread), in order."""
        with ThreadPoolExecutor(max(len(conversations), 1), thread_name_prefix="agentkd-batch") as pool:
            futures = [pool.submit(self.chat, list(c), seed=s, **kwargs) for c, s in zip(conversations, seeds,
                                                                                        strict=True)]
            return [f.result() for f in futures]
