"""Curation: paired trials retire a harmful entry automatically; people approve, edit and retire, all logged."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentkd.errors import LibraryError
from agentkd.library import Library
from agentkd.library.curation import MIN_TRIALS, harmful
from agentkd.schema import Effect, Strategy


def entry(id: str, trigger: str, **fields: object) -> Strategy:
    return Strategy(id=id, title=f"Rule {id}", trigger=trigger, body="Do the thing, then check it.",
                    status="admitted", **fields)  # type: ignore[arg-type]


@pytest.fixture
def lib(tmp_path: Path) -> Library:
    library = Library.open(str(tmp_path / "lib"), "curation")
    library.add(entry("s-harmful", "When a question mentions a discount on a price"))
    library.add(entry("s-helpful", "When a tool call needs JSON arguments"))
    return library


def test_a_harmful_entry_is_retired_once_the_evidence_is_in(lib: Library) -> None:
    # The student keeps failing with the entry and passing without it.
    for n in range(1, MIN_TRIALS):
        s = lib.record_trial("s-harmful", won_with=False, won_without=True)
        assert s is not None and s.status == "admitted", f"retired after only {n} trials"
    s = lib.record_trial("s-harmful", won_with=False, won_without=True)
    assert s is not None and s.status == "retired"
    stored = lib.get("s-harmful")
    assert stored is not None and stored.status == "retired"
    assert stored.effect == Effect(trials=6, wins_without=6, hurt=6)
    assert stored.status_reason.startswith("auto-retired: lift -1.00 over 6 paired trials: helped 0, hurt 6 "
                                           "(sign test p=1.000 that it helps, p=0.016 that it hurts")
    last = lib.history("s-harmful")[-1]
    assert (last["action"], last["before"], last["after"]) == ("retired", "admitted", "retired")
    assert last["reason"] == stored.status_reason
    assert [r["action"] for r in lib.history("s-harmful")] == ["added", *["trial"] * 5, "retired"]
    assert [h.strategy.id for h in lib.search("a discount on the price", min_score=-1)] == ["s-helpful"]


def test_mixed_evidence_keeps_an_entry_measuring(lib: Library) -> None:
    for won_with, won_without in [(True, False), (False, True), (False, True), (True, True), (False, False)] * 2:
        lib.record_trial("s-helpful", won_with=won_with, won_without=won_without)
    s = lib.get("s-helpful")
    assert s is not None and s.status == "admitted" and s.effect.trials == 10 and not harmful(s.effect)
    assert s.effect.lift_upper_bound > 0 > s.effect.lift
    assert (s.effect.helped, s.effect.hurt) == (2, 4)  # the paired test counts only the discordant pairs
    assert lib.record_trial("s-gone", won_with=True, won_without=False) is None


def test_review_decisions_change_the_entry_and_are_logged(lib: Library) -> None:
    assert lib.review("s-helpful", "approve", by="ana").review == "approved"
    edited = lib.review("s-helpful", "edit", changes={"body": "Validate the JSON, then call."}, by="ana")
    assert (edited.review, edited.body, edited.provenance.version) == ("edited", "Validate the JSON, then call.", 2)
    retired = lib.review("s-harmful", "retire", reason="wrong advice", by="bo")
    assert (retired.status, retired.status_reason) == ("retired", "retired by bo: wrong advice")
    log = [(r["id"], r["decision"], r["by"]) for r in lib.history() if r["action"] == "review"]
    assert log == [("s-helpful", "approve", "ana"), ("s-helpful", "edit", "ana"), ("s-harmful", "retire", "bo")]
    with pytest.raises(LibraryError, match="needs a reason"):
        lib.review("s-helpful", "retire")
    with pytest.raises(LibraryError, match="may not change effect"):
        lib.review("s-helpful", "edit", changes={"effect": Effect(trials=9, wins_with=9)})
    with pytest.raises(LibraryError, match="unchanged"):
        lib.review("s-helpful", "edit", changes={"body": "Validate the JSON, then call."})
    with pytest.raises(LibraryError, match="no entry 's-nope'"):
        lib.review("s-nope", "approve")
