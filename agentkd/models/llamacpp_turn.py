"""One chat turn of a llama.cpp model on a decoder's sequence: what ``LocalLLM.turn`` runs, on the single
path and on each sequence of the batched engine alike.

- The token loop: sample, hand the token to the caller, evaluate it only when the next one is asked for,
  with the timings and cache accounting of ``CallStats``.
- The text stream: tokens decoded as UTF-8, held back by the longest stop string, ended by an end-of-
  generation token, a stop string, a complete grammar value, ``until`` or ``max_tokens``.
- The lazy tool-call grammar: the model writes freely until it opens ``<tool_call>``; the JSON after it
  is sampled under a grammar built from the offered tools' schemas. A forced ``tool_choice`` starts in
  the grammar at once; a tool call written as bare JSON is parsed loosely.
"""

from __future__ import annotations

import codecs
import json
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import llama_cpp

from agentkd.models.chat_template import (
    TOOL_OPEN,
    CallStats,
    ChatResult,
    json_value_done,
    parse_loose_tool_call,
    tool_call_schema,
    tool_name,
)
from agentkd.models.llamacpp_core import Decoder, Sampler


class TurnModel(Protocol):
    """What a turn uses of its model (``llamacpp.LocalLLM``): its ``Llama``, template and tokenizer."""

    _llm: llama_cpp.Llama

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str: ...

    def tokenize(self, text: str) -> list[int]: ...


def run_turn(
    model: TurnModel, decoder: Decoder, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
    tool_choice: str | dict[str, Any], temperature: float, max_tokens: int, seed: int,
    json_schema: dict[str, Any] | None, stop: tuple[str, ...], prefix: str,
) -> Iterator[str | ChatResult]:  # fmt: skip
    """The reply's text deltas, then its ``ChatResult``; with ``tools``, at most one grammar-constrained tool call."""
    stats = CallStats()
    offered = _offered(tools, tool_choice)
    forced = bool(offered) and tool_choice != "auto"
    shown = list(tools or []) if tool_choice == "none" else offered  # "none": seen, not callable
    prompt_text = model.render(messages, shown or None) + prefix
    prompt = model.tokenize(prompt_text)
    if prefix:
        yield prefix
    parts: list[str] = []
    finish = "stop"
    if json_schema is not None or not forced:
        grammar = _grammar(json_schema) if json_schema is not None else None
        triggers = (TOOL_OPEN,) if offered and grammar is None else ()
        names = {tool_name(t) for t in offered}
        loose = (lambda text: parse_loose_tool_call(text, names) is not None) if triggers else None
        for delta, reason in stream_tokens(
            model, decoder, prompt, stats, temperature=temperature, seed=seed, max_tokens=max_tokens,
            grammar=grammar, stop=stop + triggers, until=loose,
        ):  # fmt: skip
            if delta:
                parts.append(delta)
                yield delta
            finish = reason or finish
    content = "".join(parts)
    call = None
    if offered and (forced or finish == f"stop:{TOOL_OPEN}"):
        head = prompt + model.tokenize(content + TOOL_OPEN + "\n")
        raw_parts = []
        budget = max(max_tokens - stats.generated, 1)
        for delta, reason in stream_tokens(
            model, decoder, head, stats, temperature=temperature, seed=seed, max_tokens=budget,
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


def stream_tokens(
    model: TurnModel,
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
    vocab = model._llm._model.vocab
    for n, token in enumerate(_tokens(model._llm, decoder, tokens, stats, temperature, seed, grammar), start=1):
        if llama_cpp.llama_token_is_eog(vocab, token):
            yield pending, "stop"
            return
        stats.generated += 1
        pending += utf8.decode(model._llm.detokenize([token]))
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


def _tokens(
    llm: llama_cpp.Llama, decoder: Decoder, prompt: list[int], stats: CallStats, temperature: float, seed: int,
    grammar: llama_cpp.LlamaGrammar | None,
) -> Iterator[int]:  # fmt: skip
    t0 = time.perf_counter()
    sampler = Sampler(llm._model, temperature, seed, grammar)
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
