"""Retrieval for a small context: threshold, MMR diversity, filters and a token budget, with reasons for drops."""

from __future__ import annotations

import pytest

from agentkd.library import Library
from agentkd.library.retrieval import MMRRetriever, retrieve
from agentkd.schema import Strategy


def entry(id: str, trigger: str, body: str = "Write each step down, then check it.", **fields: object) -> Strategy:
    fields.setdefault("status", "admitted")
    return Strategy(id=id, title=trigger[5:], trigger=trigger, body=body, **fields)  # type: ignore[arg-type]


ENTRIES = [
    entry("s-pct-a", "When a price is reduced by a percentage discount", tasks=["shop"], domains=["money"]),
    entry("s-pct-b", "When a price is reduced by a percent discount", tasks=["shop"], domains=["money"]),  # a twin
    entry("s-tax", "When sales tax is added to the price of goods", tasks=["shop"], domains=["money"]),
    entry("s-tip", "When a restaurant bill needs a tip added", tasks=["dine"], domains=["money"]),
    entry("g-ratio", "When quantities are compared as ratios", kind="guidance", tasks=["shop"], domains=["math"]),
    entry("s-json", "When a tool takes JSON arguments", tasks=["tools"], domains=["code"]),
    entry("s-old", "When a discount coupon is applied at checkout", status="retired", tasks=["shop"]),
    entry("s-long", "When a discount applies to only some items in a cart", body="Step. " * 200, tasks=["shop"]),
]
QUERY = "A jacket costs $80 and is 15% off. What is the sale price?"


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> Library:
    library = Library.open(str(tmp_path_factory.mktemp("retrieval")), "retrieval")
    library.restore(ENTRIES, reason="test")  # verbatim: keeps the near-duplicate twin
    return library


def words(text: str) -> int:
    return len(text.split())


def test_mmr_drops_the_near_duplicate_and_says_which_entry_it_repeats(lib: Library) -> None:
    plain = retrieve(lib, QUERY, k=2, mmr_lambda=1.0, budget_tokens=10_000)
    assert {c.strategy.id for c in plain.chosen} == {"s-pct-a", "s-pct-b"}
    diverse = retrieve(lib, QUERY, k=2, mmr_lambda=0.5, budget_tokens=10_000)
    chosen = [c.strategy.id for c in diverse.chosen]
    assert len(chosen) == 2 and len({"s-pct-a", "s-pct-b"} & set(chosen)) == 1
    twin = next(d for d in diverse.dropped if d.strategy.id in {"s-pct-a", "s-pct-b"})
    assert twin.reason == "redundant" and twin.detail.startswith("cosine 0.9") and twin.detail.endswith(
        next(i for i in chosen if i.startswith("s-pct"))
    )
    assert chosen == sorted(chosen)  # stable order for the KV cache
    assert all(c.score >= 0.2 for c in diverse.chosen)


def test_threshold_and_status_and_filters(lib: Library) -> None:
    got = retrieve(lib, QUERY, k=8, min_score=0.3, budget_tokens=10_000)
    ids = {c.strategy.id for c in got.chosen}
    assert "s-old" not in ids and "s-old" not in {d.strategy.id for d in got.dropped}  # retired: never a candidate
    below = [d for d in got.dropped if d.reason == "below_threshold"]
    assert below and all(d.score < 0.3 and "< 0.3" in d.detail for d in below)
    assert "s-json" in {d.strategy.id for d in below}
    by_task = retrieve(lib, QUERY, k=8, min_score=-1, task="dine", budget_tokens=10_000)
    assert [c.strategy.id for c in by_task.chosen] == ["s-tip"]
    by_kind = retrieve(lib, QUERY, k=8, min_score=-1, kind="guidance", budget_tokens=10_000)
    assert [c.strategy.id for c in by_kind.chosen] == ["g-ratio"]
    by_domain = retrieve(lib, QUERY, k=8, min_score=-1, domain="code", budget_tokens=10_000)
    assert [c.strategy.id for c in by_domain.chosen] == ["s-json"]
    with_retired = retrieve(lib, QUERY, k=8, min_score=-1, status=None, budget_tokens=10_000)
    assert "s-old" in {c.strategy.id for c in with_retired.chosen}


def test_the_budget_is_counted_with_the_given_tokenizer(lib: Library) -> None:
    counted: list[str] = []

    def count(text: str) -> int:
        counted.append(text)
        return words(text)

    got = retrieve(lib, "a discount on some items in my cart", k=3, min_score=0, budget_tokens=80, count_tokens=count)
    assert got.tokens <= 80 and counted
    assert all(c.tokens == words(c.strategy.render()) + 1 for c in got.chosen)
    long = next(d for d in got.dropped if d.strategy.id == "s-long")
    assert long.reason == "over_budget" and "tokens," in long.detail
    assert len(got.chosen) == 3  # the next candidates filled the room the long entry could not use
    record = got.as_log()
    assert record["tokens"] == got.tokens and {d["reason"] for d in record["dropped"]} >= {"over_budget"}


def test_the_retriever_adapter_fits_the_student(lib: Library) -> None:
    retriever = MMRRetriever(lib, count_tokens=words, budget_tokens=200)
    hits = retriever.search(QUERY, k=2, task="shop")
    assert len(hits) == 2 and all(h.strategy.tasks == ["shop"] for h in hits)
    assert retriever.last is not None
    assert [h.strategy.id for h in hits] == [c.strategy.id for c in retriever.last.chosen]
    assert retrieve(lib, QUERY, k=0).chosen == []
