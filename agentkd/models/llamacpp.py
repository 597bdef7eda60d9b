"""The one module that imports llama_cpp: a local GGUF model with OpenAI-shaped chat and tool calls.

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
- This module needs only llama-cpp-python (with its numpy and jinja2), so edge devices can use it alone.
"""

from __future__ import annotations

import codecs
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import llama_cpp

from agentkd.models.chat_template import (
    TOOL_CLOSE,
    TOOL_OPEN,
    CallStats,
    ChatResult,
    ChatTemplate,
    final_result,
    json_value_done,
    parse_loose_tool_call,
    tool_call_schema,
    tool_name,
)
from agentkd.models.llamacpp_core import COMPUTE, ContextOverflowError, Decoder, Sampler, overflow
from agentkd.models.llamacpp_loader import LoadOptions, open_llama, options_for

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
        llm.eval([token])
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
        """Evaluate ``tokens``, keeping the KV cache of the prefix shared with what was evaluated before."""
        llm = self._llm
        if len(tokens) >= self.n_ctx:
            raise overflow(len(tokens), self.n_ctx)
        common = 0
        for a, b in zip(llm._input_ids[: llm.n_tokens], tokens, strict=False):
            if a != b:
                break
            common += 1
        reuse = min(common, len(tokens) - 1)  # evaluate at least one token: its logits are sampled next
        if reuse > 0 and llm._ctx.kv_cache_seq_rm(-1, reuse, -1):
            llm.n_tokens = reuse
        else:
            llm.reset()
            reuse = 0
        llm.eval(tokens[reuse:])
        return reuse

    def _tokens(
        self, decoder: Decoder, prompt: list[int], stats: CallStats, temperature: float, seed: int,
        grammar: llama_cpp.LlamaGrammar | None,
    ) -> Iterator[int]:  # fmt: skip
        t0 = time.perf_counter()
        sampler = Sampler(self._llm._model, temperature, seed, grammar)
        try:
            cached, token = decoder.start(prompt, sampler)
            stats.prefill += time.perf_counter() - t0
            if stats.cached is None:
                stats.cached = cached
            while True:
                if stats.first_token is None:
                    stats.first_token = time.perf_counter()
                yield token
                # the next token is evaluated only when asked for: a reply cut at a stop string leaves it out
                nxt = decoder.advance(token, sampler)
                if nxt is None:
                    return
                token = nxt
        finally:
            stats.rejections += sampler.rejections
            sampler.close()

    def _stream_tokens(
        self,
        decoder: Decoder,
        tokens: list[int],
        stats: CallStats,
        *,
        temperature: float,
        seed: int,
        max_tokens: int,
        grammar: llama_cpp.LlamaGrammar | None = None,
        stop: tuple[str, ...] = (),
        until: Callable[[str], bool] | None = None,
    ) -> Iterator[tuple[str, str | None]]:
        """Yield (text delta, finish reason or None); the last item carries the finish reason.

        ``until(text)`` ends the reply early, e.g. once it holds a complete tool call written as bare JSON.
        """
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text, pending = "", ""
        hold = max((len(s) for s in stop), default=0)
        vocab = self._llm._model.vocab
        for n, token in enumerate(self._tokens(decoder, tokens, stats, temperature, seed, grammar), start=1):
            if llama_cpp.llama_token_is_eog(vocab, token):
                yield pending, "stop"
                return
            stats.generated += 1
            pending += utf8.decode(self._llm.detokenize([token]))
            for s in stop:
                if s in pending:
                    yield pending[: pending.index(s)], f"stop:{s}"
                    return
            if grammar is not None and json_value_done(text + pending):
                yield pending, "grammar"
                return
            if until is not None and "}" in pending and until(text + pending):
                yield pending, "stop"
                return
            if n >= max_tokens:
                yield pending, "length"
                return
            if len(pending) > hold:
                cut = len(pending) - hold
                text += pending[:cut]
                yield pending[:cut], None
                pending = pending[cut:]
        yield pending, "length"  # the context window is full

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
            yield from self._turn(decoder, messages, tools, tool_choice, temperature, max_tokens, seed,
                                  json_schema, stop, prefix)  # fmt: skip
        finally:
            decoder.close()

    def _turn(
        self, decoder: Decoder, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
        tool_choice: str | dict[str, Any], temperature: float, max_tokens: int, seed: int,
        json_schema: dict[str, Any] | None, stop: tuple[str, ...], prefix: str,
    ) -> Iterator[str | ChatResult]:  # fmt: skip
        stats = CallStats()
        offered = _offered(tools, tool_choice)
        forced = bool(offered) and tool_choice != "auto"
        shown = list(tools or []) if tool_choice == "none" else offered  # "none": seen, not callable
        prompt_text = self.render(messages, shown or None) + prefix
        prompt = self.tokenize(prompt_text)
        if prefix:
            yield prefix
        parts: list[str] = []
        finish = "stop"
        if json_schema is not None or not forced:
            grammar = _grammar(json_schema) if json_schema is not None else None
            triggers = (TOOL_OPEN,) if offered and grammar is None else ()
            names = {tool_name(t) for t in offered}
            loose = (lambda text: parse_loose_tool_call(text, names) is not None) if triggers else None
            for delta, reason in self._stream_tokens(
                decoder, prompt, stats, temperature=temperature, seed=seed, max_tokens=max_tokens, grammar=grammar,
                stop=stop + triggers, until=loose,
            ):  # fmt: skip
                if delta:
                    parts.append(delta)
                    yield delta
                finish = reason or finish
        content = "".join(parts)
        call = None
        if offered and (forced or finish == f"stop:{TOOL_OPEN}"):
            head = prompt + self.tokenize(content + TOOL_OPEN + "\n")
            raw_parts = []
            budget = max(max_tokens - stats.generated, 1)
            for delta, reason in self._stream_tokens(
                decoder, head, stats, temperature=temperature, seed=seed, max_tokens=budget,
                grammar=_grammar(tool_call_schema(offered)),
            ):
                raw_parts.append(delta)
                finish = reason or finish
            raw = "".join(raw_parts)
            try:
                call = json.loads(raw, strict=False)
            except json.JSONDecodeError:  # cut off by max_tokens: the model's mistake, reported as text
                content, finish = f"{content}{TOOL_OPEN}{raw}", "length"
        elif offered:
            call = parse_loose_tool_call(content, {tool_name(t) for t in offered})
            content = "" if call else content
        end = time.perf_counter()
        finish = finish.split(":")[0] if finish != "grammar" else "stop"
        message: dict[str, Any] = {"role": "assistant", "content": (prefix + content).strip() or None}
        if call is not None:
            message["tool_calls"] = [
                {
                    "id": f"call_{abs(hash((prompt_text, stats.generated, end))) % 10**10}",
                    "type": "function",
                    "function": {"name": call["name"], "arguments": json.dumps(call["arguments"], ensure_ascii=False)},
                }
            ]
            finish = "tool_calls"
        yield ChatResult(
            message=message,
            finish_reason=finish,
            prompt_tokens=len(prompt),
            completion_tokens=stats.generated,
            seconds=end - stats.start,
            cached_tokens=stats.cached or 0,
            timings=stats.timings(end),
        )

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


def _offered(tools: list[dict[str, Any]] | None, tool_choice: str | dict[str, Any]) -> list[dict[str, Any]]:
    """The tools the model may call under ``tool_choice`` (a named choice narrows them to one)."""
    if tool_choice == "none":
        return []
    offered = list(tools or [])
    if isinstance(tool_choice, dict):
        name = tool_choice.get("function", {}).get("name")
        offered = [t for t in offered if tool_name(t) == name] or offered
    return offered


def _grammar(schema: dict[str, Any]) -> llama_cpp.LlamaGrammar:
    return llama_cpp.LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)


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
