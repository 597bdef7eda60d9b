"""The llama.cpp backend's front: a local GGUF model with OpenAI-shaped chat and tool calls.

Design notes
- The prompt is rendered from the chat template stored in the GGUF (Jinja, as Hugging Face does), so
  the model sees the format it was trained on; templates without tool support get a tool preamble.
- Tool calls use a *lazy grammar*: the model writes freely (fast, unconstrained sampling) until it
  opens ``<tool_call>``; from there the JSON is sampled under a grammar built from the offered tools'
  schemas, so a tool call always parses and always names an offered tool. A forced ``tool_choice``
  starts in the grammar at once.
- Grammar-constrained tokens are sampled *grammar-last*, as llama.cpp's own ``common_sampler`` does:
  the sampler chain picks a token from the raw logits, the grammar checks only that one token, and
  the whole vocabulary is masked only when it is rejected. llama-cpp-python's chain masks all
  ~150k tokens of Qwen's vocabulary on every step (about 12 ms a token); the check costs
  microseconds. Greedy output is identical (the argmax, when allowed, is the masked argmax).
- We run the token loop ourselves (eval, sample, eval) so that the KV cache of the longest token
  prefix shared with the previous call is kept: a system prompt and packed strategies shared with
  the previous call are not evaluated again. ``ChatResult.cached_tokens`` says how many were reused.
- One chat turn (the token loop, stop strings, the lazy tool-call grammar) runs in ``llamacpp_turn``, on
  this module's single sequence or one of ``llamacpp_batch``'s; the sampler is in ``llamacpp_core``.
- These modules need only llama-cpp-python (with its numpy and jinja2), so edge devices can use it alone.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agentkd.models.chat_template import (
    TOOL_CLOSE,
    TOOL_OPEN,
    ChatResult,
    ChatTemplate,
    final_result,
    parse_loose_tool_call,
    tool_call_schema,
)
from agentkd.models.llamacpp_core import (
    COMPUTE,
    ContextOverflowError,
    Decoder,
    Sampler,
    chunks,
    compute,
    kept,
    overflow,
)
from agentkd.models.llamacpp_loader import LoadOptions, open_llama, options_for
from agentkd.models.llamacpp_turn import run_turn

__all__ = ["TOOL_CLOSE", "TOOL_OPEN", "ChatResult", "ContextOverflowError", "LocalLLM", "close_all",
           "parse_loose_tool_call", "shared", "tool_call_schema"]  # fmt: skip


_COMPUTE = COMPUTE  # one in-process model computes at a time (see llamacpp_core)
_Sampler = Sampler  # its former home: tests patch it here


class _Single:
    """The single-sequence decoder: the ``Llama``'s own context, keeping the KV prefix shared with the last call."""

    def __init__(self, owner: LocalLLM) -> None:
        self.owner = owner

    def start(self, tokens: list[int], sampler: Sampler) -> tuple[int, int]:
        reuse = self.owner._prefill(tokens)
        return reuse, sampler.sample(self.owner._llm._ctx.ctx, -1)

    def advance(self, token: int, sampler: Sampler) -> int | None:
        llm = self.owner._llm
        if llm.n_tokens + 1 >= self.owner.n_ctx:
            return None
        compute(llm.eval, [token])
        return sampler.sample(llm._ctx.ctx, -1)

    def close(self) -> None:
        pass


class LocalLLM:
    """A GGUF model loaded in-process. Calls are serialized with a lock: one model, one KV cache; and with
    the other in-process models (``_COMPUTE``), since each one uses all the cores.

    ``chat_stream`` is a generator that holds the locks while it runs: consume it in one thread.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        seed: int = 1234,
        n_batch: int = 512,
        verbose: bool = False,
        options: LoadOptions | None = None,
    ) -> None:
        """``n_batch``: prompt tokens evaluated at once; smaller saves memory (about 0.6 MB a token for Qwen's
        150k vocabulary) at some prefill speed. ``options``: llama.cpp load options (default: the safe choice
        for this machine, ``llamacpp_loader.options_for``)."""
        self.path = Path(path)
        self.seed = seed
        self.lock = threading.RLock()
        self._engine: Any = None  # llamacpp_batch.BatchEngine, made by the first batched call
        self.options = options or options_for(self.path, _home())
        self._llm = open_llama(
            self.path,
            self.options,
            n_ctx=n_ctx,
            n_threads=n_threads or os.cpu_count() or 2,
            seed=seed,
            n_batch=n_batch,
            n_ubatch=n_batch,
            verbose=verbose,
            logits_all=False,
        )
        meta = self._llm.metadata
        self.name = meta.get("general.name", self.path.stem)
        self.template = ChatTemplate(
            meta.get("tokenizer.chat_template"),
            bos=self._token_text(self._llm.token_bos()),
            eos=self._token_text(self._llm.token_eos()),
        )

    # -- tokens -------------------------------------------------------------------------------
    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self._llm.detokenize([token], special=True).decode("utf-8", errors="ignore")

    def tokenize(self, text: str) -> list[int]:
        return self._llm.tokenize(text.encode(), add_bos=False, special=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    @property
    def n_ctx(self) -> int:
        return int(self._llm.n_ctx())

    # -- prompts ------------------------------------------------------------------------------
    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
        return self.template.render(messages, tools)

    # -- the token loop -----------------------------------------------------------------------
    def _prefill(self, tokens: list[int]) -> int:
        """Evaluate ``tokens``, keeping the KV cache of the prefix shared with what was evaluated before (up to a
        chunk boundary: ``llamacpp_core.kept``), the rest one fixed chunk at a time (Ctrl-C waits for one)."""
        llm = self._llm
        if len(tokens) >= self.n_ctx:
            raise overflow(len(tokens), self.n_ctx)
        common = 0
        for a, b in zip(llm._input_ids[: llm.n_tokens], tokens, strict=False):
            if a != b:
                break
            common += 1
        reuse = kept(common, len(tokens))
        if reuse > 0 and llm._ctx.kv_cache_seq_rm(-1, reuse, -1):
            llm.n_tokens = reuse
        else:
            llm.reset()
            reuse = 0
        for start, end in chunks(reuse, len(tokens)):
            compute(llm.eval, tokens[start:end])
        return reuse

    # -- chat ---------------------------------------------------------------------------------
    def stream(
        self,
        messages: list[dict[str, Any]],
        *,
        temperature: float = 0.0,
        max_tokens: int = 512,
        seed: int | None = None,
        stop: tuple[str, ...] = (),
    ) -> Iterator[str]:
        """Stream the text of a plain reply (no tools)."""
        for item in self.chat_stream(messages, temperature=temperature, max_tokens=max_tokens, seed=seed, stop=stop):
            if isinstance(item, str):
                yield item

    def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] = "auto",
        temperature: float = 0.0,
        max_tokens: int = 512,
        seed: int | None = None,
        json_schema: dict[str, Any] | None = None,
        stop: tuple[str, ...] = (),
        prefix: str = "",
    ) -> ChatResult:
        """One assistant turn; with ``tools``, at most one grammar-constrained tool call.

        ``prefix`` is prefilled as the start of the assistant's reply and is part of its content.
        """
        return final_result(self.chat_stream(
            messages,
            tools=tools,
            tool_choice=tool_choice,
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
            json_schema=json_schema,
            stop=stop,
            prefix=prefix,
        ))

    def chat_stream(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] = "auto",
        temperature: float = 0.0,
        max_tokens: int = 512,
        seed: int | None = None,
        json_schema: dict[str, Any] | None = None,
        stop: tuple[str, ...] = (),
        prefix: str = "",
    ) -> Iterator[str | ChatResult]:
        """Like ``chat``, yielding the reply's text deltas as they are sampled, then the ``ChatResult``.

        A tool call's JSON is not streamed: it arrives whole in the result.
        """
        with self.lock, _COMPUTE:
            yield from self.turn(
                _Single(self), messages, tools=tools, tool_choice=tool_choice, temperature=temperature,
                max_tokens=max_tokens, seed=seed, json_schema=json_schema, stop=stop, prefix=prefix,
            )  # fmt: skip

    def turn(
        self,
        decoder: Decoder,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] = "auto",
        temperature: float = 0.0,
        max_tokens: int = 512,
        seed: int | None = None,
        json_schema: dict[str, Any] | None = None,
        stop: tuple[str, ...] = (),
        prefix: str = "",
    ) -> Iterator[str | ChatResult]:
        """``chat_stream`` on ``decoder``'s sequence, without taking the locks (the decoder's owner schedules it)."""
        seed = self.seed if seed is None else seed
        try:
            yield from run_turn(self, decoder, messages, tools, tool_choice, temperature, max_tokens, seed,
                                json_schema, stop, prefix)  # fmt: skip
        finally:
            decoder.close()

    # -- batches ------------------------------------------------------------------------------
    def batched(self, width: int) -> Any:
        """This model as a ``llamacpp_batch.BatchedLLM``: turns from many threads decode as one batch of up
        to ``width`` sequences (more queue). The engine is made once; a call for a wider one replaces it."""
        from agentkd.models.llamacpp_batch import BatchedLLM, BatchEngine

        with self.lock:
            engine = self._engine
            if engine is None or engine.width < width:  # a narrower one still in use is freed with its last user
                engine = self._engine = BatchEngine(self, max(width, 1))
        return BatchedLLM(self, engine)

    def chat_batch(
        self,
        messages: list[dict[str, Any]] | list[list[dict[str, Any]]],
        *,
        n: int = 1,
        seed: int | None = None,
        **kwargs: Any,
    ) -> list[ChatResult]:
        """Several turns decoded as one batch: ``n`` samples of one conversation (seeds ``seed``, ``seed + 1``…)
        or, given a list of conversations, one turn each (all with ``seed``). Other arguments as ``chat``.

        One sample runs on the single path, KV-prefix reuse and all.
        """
        base = self.seed if seed is None else seed
        if messages and isinstance(messages[0], list):
            convs: list[list[dict[str, Any]]] = list(messages)  # type: ignore[arg-type]
            seeds = [base] * len(convs)
        else:
            convs = [messages] * n  # type: ignore[list-item]
            seeds = [base + i for i in range(n)]
        if len(convs) == 1:
            return [self.chat(convs[0], seed=seeds[0], **kwargs)]
        return list(self.batched(len(convs)).chat_batch(convs, seeds, **kwargs))

    def reset(self) -> None:
        """Forget the KV cache. Seeded sampling (temperature > 0) repeats exactly only from the same cache
        state, because a cached prefix is decoded in different batches; greedy decoding repeats regardless."""
        with self.lock:
            self._llm.reset()

    def close(self) -> None:
        engine = getattr(self, "_engine", None)
        if engine is not None:
            engine.close()  # its context runs on this model's weights: free it first
            self._engine = None
        llm = getattr(self, "_llm", None)
        if llm is not None:
            llm.close()
            self._llm = None  # type: ignore[assignment]

    def __enter__(self) -> LocalLLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _home() -> Path | None:
    """Where canary records live (``AGENTKD_HOME``), if the settings can be read."""
    try:
        from agentkd.config import get_settings

        return get_settings().home
    except Exception:  # settings that fail to validate are reported by the command that reads them
        return None


_POOL: dict[tuple[str, int], LocalLLM] = {}
_POOL_LOCK = threading.Lock()


def shared(path: str | Path, *, n_ctx: int = 4096, n_threads: int | None = None, seed: int = 1234) -> LocalLLM:
    """One loaded instance per (file, context) in this process, shared by teacher and student users."""
    key = (str(Path(path).resolve()), n_ctx)
    with _POOL_LOCK:
        if key not in _POOL:
            _POOL[key] = LocalLLM(path, n_ctx=n_ctx, n_threads=n_threads, seed=seed)
        return _POOL[key]


def close_all() -> None:
    with _POOL_LOCK:
        for llm in _POOL.values():
            llm.close()
        _POOL.clear()
