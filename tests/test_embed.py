"""The offline embedder: real all-MiniLM-L6-v2 weights, no network."""

from __future__ import annotations

import numpy as np
import pytest

from agentkd.errors import LibraryError
from agentkd.library.embedder import Embedder, get_embedder, package_file


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return get_embedder()


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


def test_vectors_are_unit_float32_rows(embedder: Embedder) -> None:
    vectors = embedder.embed(["one short text", "another, rather longer text about tools and JSON arguments"])
    assert vectors.shape == (2, 384) == (2, embedder.dim)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)
    assert embedder.name == "agentkd-minilm-l6-int8"


def test_paraphrases_are_closer_than_unrelated_sentences(embedder: Embedder) -> None:
    pairs = [
        ("When a word problem asks for a percentage of a total", "If a question wants some percent of an amount"),
        ("Validate the JSON arguments before calling the tool", "Check that tool call arguments are valid JSON first"),
        ("Count the days in each month when dates span months", "If dates cross months, add the days per month"),
    ]
    a = embedder.embed([p[0] for p in pairs])
    b = embedder.embed([p[1] for p in pairs])
    for i in range(len(pairs)):
        unrelated = max(cos(a[i], b[j]) for j in range(len(pairs)) if j != i)
        assert cos(a[i], b[i]) > unrelated + 0.1, pairs[i]
        assert cos(a[i], b[i]) > 0.5


def test_a_vector_does_not_depend_on_its_batch(embedder: Embedder) -> None:
    text = "Restate the quantities before computing"
    batch = [text, "a much longer neighbour " * 30, *[f"filler sentence number {i}" for i in range(40)]]
    np.testing.assert_allclose(embedder.embed(batch)[0], embedder.embed([text])[0], atol=1e-6)
    np.testing.assert_allclose(embedder.embed(batch)[1], embedder.embed([batch[1]])[0], atol=1e-6)


def test_long_texts_are_truncated_not_rejected(embedder: Embedder) -> None:
    assert embedder.embed(["word " * 2000]).shape == (1, 384)


def test_int8_matmuls_stay_close_to_the_float_graph(embedder: Embedder) -> None:
    assert embedder.rewritten == 36  # every weight product of the 6 layers
    exact = Embedder(int8_matmul=False)
    assert exact.batch_size == 32
    texts = ["When a word problem involves rates, write the units", "Call the search tool with a short query"]
    similarity = (embedder.embed(texts) * exact.embed(texts)).sum(axis=1)
    assert similarity.min() > 0.98  # a CPU whose u8s8 products saturate would fail here
    # In float, padded batches give the same vectors as single texts: the mask excludes the padding.
    padded = exact.embed([texts[0], "a much longer neighbour " * 30])[0]
    assert cos(padded, exact.embed([texts[0]])[0]) > 0.9999


def test_embedder_is_a_singleton() -> None:
    assert get_embedder() is get_embedder()


def test_missing_package_names_the_pip_command() -> None:
    with pytest.raises(LibraryError) as info:
        package_file("agentkd_no_such_package", "agentkd-no-such-package", "model.onnx")
    assert "pip install agentkd-no-such-package" in str(info.value)
