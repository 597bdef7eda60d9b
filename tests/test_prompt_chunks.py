"""A prompt's logits are a function of the prompt alone, whatever the KV cache held before it (real SmolLM2-135M).

llama.cpp rounds a row differently with the number of its sequence's tokens in a batch: SmolLM2's last-token
logits move by ~0.5 when that token is evaluated by itself rather than with the rest of its prompt. Prompts are
therefore cut at fixed positions and a cached prefix is kept only up to one (``llamacpp_core.kept``/``chunks``);
before, asking the same prompt twice evaluated only its last token the second time, and the answer could differ.
"""

from __future__ import annotations

import ctypes
from typing import Any

import llama_cpp
import pytest

from agentkd.models.llamacpp_core import CHUNK, chunks, kept

pytestmark = pytest.mark.model


def test_kept_prefixes_end_on_a_chunk_boundary_and_chunks_sit_at_fixed_positions() -> None:
    assert kept(0, 10) == 0
    assert kept(CHUNK + 5, 3 * CHUNK) == CHUNK
    assert kept(3 * CHUNK, 3 * CHUNK) == 2 * CHUNK  # the whole prompt cached: its last chunk is evaluated again
    assert chunks(CHUNK, 3 * CHUNK + 4) == [(CHUNK, 2 * CHUNK), (2 * CHUNK, 3 * CHUNK), (3 * CHUNK, 3 * CHUNK + 4)]


def _last_logits(llm: Any) -> list[float]:
    vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(llm._llm._model.model))
    ptr = llama_cpp.llama_get_logits_ith(llm._llm._ctx.ctx, -1)
    return list(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float))[:vocab])


def test_a_prompts_logits_do_not_depend_on_what_the_cache_held(smollm: Any) -> None:
    question = "List the planets of the solar system in order, with one fact about each. " * 8
    prompt = smollm.tokenize(smollm.render([{"role": "user", "content": question}]))
    assert len(prompt) > 2 * CHUNK
    other = prompt[: CHUNK + 3] + smollm.tokenize(" something else entirely, and more words after it")
    smollm.reset()
    assert smollm._prefill(prompt) == 0
    fresh = _last_logits(smollm)
    assert smollm._prefill(prompt) == kept(len(prompt), len(prompt))  # all of it cached
    again = _last_logits(smollm)
    smollm._prefill(other)
    after_other = smollm._prefill(prompt)
    assert after_other == CHUNK  # the shared CHUNK + 3 tokens, kept up to the boundary
    assert again == fresh
    assert _last_logits(smollm) == fresh


def test_the_same_question_twice_gets_the_same_answer(smollm: Any) -> None:
    msgs = [{"role": "system", "content": "You are a poet who writes about the sea and its moods. " * 6},
            {"role": "user", "content": "Write one sentence about the sea."}]
    smollm.reset()
    first = smollm.chat(msgs, max_tokens=24)
    second = smollm.chat(msgs, max_tokens=24)
    assert (second.content, second.completion_tokens) == (first.content, first.completion_tokens)
    assert second.cached_tokens == kept(first.prompt_tokens, first.prompt_tokens) > 0  # up to a chunk boundary
