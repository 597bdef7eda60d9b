"""The batched engine on a real tiny GGUF (SmolLM2-135M): many sequences in one context, each the same as alone."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from agentkd.models.llamacpp import ChatResult, ContextOverflowError, LocalLLM
from agentkd.models.llamacpp_core import kept

pytestmark = pytest.mark.model

CALC = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression.",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
    },
}

# one turn each, with its own grammar, stop strings and token budget
TURNS: list[tuple[list[dict[str, Any]], dict[str, Any]]] = [
    ([{"role": "user", "content": "Name three colors."}], {"max_tokens": 30}),
    ([{"role": "user", "content": "What is 17*23? Use the calculator."}],
     {"tools": [CALC], "tool_choice": "required", "max_tokens": 40}),
    ([{"role": "user", "content": "Count from one to ten in words."}], {"max_tokens": 40, "stop": ("five",)}),
    ([{"role": "user", "content": "Write a word."}], {"max_tokens": 7}),
    ([{"role": "user", "content": "Say hello to Bob."}], {"max_tokens": 25, "prefix": "Hello"}),
]  # fmt: skip


def _same(a: ChatResult, b: ChatResult) -> None:
    assert (b.content, b.finish_reason, b.completion_tokens, b.prompt_tokens) == (
        a.content, a.finish_reason, a.completion_tokens, a.prompt_tokens)  # fmt: skip
    assert [c["function"] for c in b.tool_calls] == [c["function"] for c in a.tool_calls]


def _concurrently(llm: Any, turns: list[tuple[list[dict[str, Any]], dict[str, Any]]]) -> list[ChatResult]:
    with ThreadPoolExecutor(len(turns)) as pool:
        return list(pool.map(lambda t: llm.chat(t[0], **t[1]), turns))


def test_batched_greedy_turns_match_the_single_path_token_for_token(smollm: LocalLLM) -> None:
    alone = [smollm.chat(m, **kw) for m, kw in TURNS]
    batched = smollm.batched(len(TURNS))
    together = _concurrently(batched, TURNS)
    for a, b in zip(alone, together, strict=True):
        _same(a, b)
    assert {r.finish_reason for r in together} >= {"length", "stop"}  # each turn ended on its own terms
    assert "five" not in together[2].content.lower()
    assert together[4].content.startswith("Hello")
    assert batched.engine.stats.mean_width > 1.5  # they really were decoded together
    assert batched.engine.busy == 0  # finished turns free their slots


def test_samples_of_one_prompt_evaluate_it_once_and_repeat_seeded_single_calls(smollm: LocalLLM) -> None:
    msgs = [{"role": "system", "content": "You answer questions about colors, briefly and plainly. " * 6},
            {"role": "user", "content": "Name three colors."}]
    smollm.reset()
    alone = [smollm.chat(msgs, temperature=0.9, seed=50 + i, max_tokens=16) for i in range(4)]
    engine = smollm.batched(4).engine
    before = engine.stats.tokens
    samples = smollm.chat_batch(msgs, n=4, temperature=0.9, seed=50, max_tokens=16)
    assert [s.content for s in samples] == [a.content for a in alone]  # seed + i, as the sequential draws
    assert len({s.content for s in samples}) > 1
    prompt = samples[0].prompt_tokens
    shared = kept(prompt, prompt)
    assert shared > 0 and sorted(s.cached_tokens for s in samples)[1:] == [shared] * 3  # the others copied its KV
    generated = sum(s.completion_tokens for s in samples)
    assert engine.stats.tokens - before <= prompt + 3 * (prompt - shared) + generated  # once, but the last chunk


def test_turns_beyond_the_width_queue_and_still_match(smollm: LocalLLM) -> None:
    turns = [t for t in TURNS if "tools" not in t[1]] * 2
    alone = [smollm.chat(m, **kw) for m, kw in turns]
    from agentkd.models.llamacpp_batch import BatchedLLM, BatchEngine

    narrow = BatchedLLM(smollm, BatchEngine(smollm, 2, n_ctx=512))
    try:
        together = _concurrently(narrow, turns)
        for a, b in zip(alone, together, strict=True):
            _same(a, b)
        assert narrow.engine.stats.mean_width <= 2
    finally:
        narrow.engine.close()


def test_an_abandoned_stream_frees_its_slot_and_an_overlong_prompt_is_refused(smollm: LocalLLM) -> None:
    batched = smollm.batched(2)
    stream = batched.chat_stream([{"role": "user", "content": "Tell me a long story."}], max_tokens=50)
    assert isinstance(next(stream), str)
    assert batched.engine.busy == 1
    stream.close()
    assert batched.engine.busy == 0
    with pytest.raises(ContextOverflowError):
        batched.chat([{"role": "user", "content": "word " * (smollm.n_ctx + 10)}], max_tokens=4)
    assert batched.engine.busy == 0


def test_the_single_path_waits_for_no_batch(smollm: LocalLLM) -> None:
    """A batched turn and a single-path turn at once: both finish (the compute lock is shared, not held across)."""
    batched = smollm.batched(2)
    out: dict[str, str] = {}
    t = threading.Thread(target=lambda: out.update(b=batched.chat(TURNS[0][0], max_tokens=20).content))
    t.start()
    out["a"] = smollm.chat(TURNS[0][0], max_tokens=20).content
    t.join(timeout=120)
    assert out["a"] == out["b"]


def test_every_llama_cpp_evaluation_runs_on_one_thread(smollm: LocalLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    """The single path from two threads and the batched engine from many all evaluate on the one llama.cpp
    thread: a second calling thread would give llama.cpp a second OpenMP team and slow every step."""
    import llama_cpp
    import llama_cpp.llama_cpp as low

    callers: set[str] = set()
    real = low.llama_decode

    def decode(ctx: Any, batch: Any) -> int:
        callers.add(threading.current_thread().name)
        return int(real(ctx, batch))

    monkeypatch.setattr(low, "llama_decode", decode)  # what Llama.eval calls (through _internals)
    monkeypatch.setattr(llama_cpp, "llama_decode", decode)  # what the engine calls
    msgs = [{"role": "user", "content": "Name a color."}]
    smollm.chat(msgs, max_tokens=3)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(smollm.chat, msgs, max_tokens=3, temperature=0.5).result()
    smollm.batched(2).chat_batch([msgs, msgs], seeds=[1, 2], max_tokens=3, temperature=0.7)
    assert len(callers) == 1 and next(iter(callers)).startswith("agentkd-llama")
