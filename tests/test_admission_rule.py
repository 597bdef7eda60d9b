"""The admission rule itself: a one-sided exact sign test on discordant pairs at a stated level.

Under the null (the candidate makes no difference) it must admit at most alpha of the candidates; it must
admit a candidate that clearly helps; retirement is the same test the other way round.
"""

from __future__ import annotations

import random

import pytest

from agentkd.distill.admission import Measurement, Trial, admit
from agentkd.library.curation import ALPHA, discordant, harmful, net_bounds, p_helps, sign_test
from agentkd.library.merge import merge
from agentkd.schema import Effect, Strategy


def measurement(pairs: list[tuple[bool, bool]], *, wanted: int = 8, available: int = 8) -> Measurement:
    trials = [Trial(scenario=f"sc-{i}", item="sometimes", passed_with=w, passed_without=wo)
              for i, (w, wo) in enumerate(pairs)]
    return Measurement(candidate="s-x", category="c", iteration=0, trials=trials, wanted=wanted, available=available)


def test_sign_test_values() -> None:
    assert sign_test(5, 0) == pytest.approx(1 / 32)
    assert sign_test(7, 1) == pytest.approx(9 / 256)
    assert sign_test(0, 0) == 1.0
    lower, upper = net_bounds(Effect(trials=8, wins_with=5, helped=5))
    assert lower > 0 and upper == pytest.approx(1.0)  # bound above zero exactly when p <= alpha


@pytest.mark.parametrize("pass_rates", [(0.5,), (0.2, 0.5, 0.8), (0.05, 0.95), (0.3, 0.7)])
def test_false_admissions_under_the_null_stay_below_alpha(pass_rates: tuple[float, ...]) -> None:
    # a useless candidate: on each item "with" and "without" are independent draws of the same pass rate
    rng = random.Random(15)
    runs, admitted = 20_000, 0
    for _ in range(runs):
        pairs = []
        for _ in range(8):
            p = rng.choice(pass_rates)
            pairs.append((rng.random() < p, rng.random() < p))
        admitted += admit(measurement(pairs)).admitted
    assert admitted / runs <= ALPHA


def test_a_clearly_helpful_candidate_is_admitted_and_a_harmful_one_is_not() -> None:
    helpful = admit(measurement([(True, False)] * 6 + [(True, True), (False, False)]))
    assert helpful.admitted and helpful.p_value == pytest.approx(1 / 64) and helpful.lower_bound > 0
    assert "helped 6, hurt 0" in helpful.reason and "sometimes 8" in helpful.reason
    harmful_one = admit(measurement([(False, True)] * 6 + [(True, True)] * 2))
    assert not harmful_one.admitted and harmful_one.reason.startswith("did not help")
    # power: a candidate that turns 70% of failing items into passes is admitted most of the time
    rng = random.Random(7)
    wins = sum(admit(measurement([(rng.random() < 0.85, rng.random() < 0.15) for _ in range(8)])).admitted
               for _ in range(2000))
    assert wins / 2000 > 0.6


def test_too_few_items_is_a_rejection_unless_the_category_has_no_more() -> None:
    four = [(True, False)] * 5
    assert not admit(measurement(four, wanted=8, available=8)).admitted  # 5 of 8 asked for: too few
    assert admit(measurement(four, wanted=8, available=5)).admitted  # the category had only 5 items
    assert "too few items" in admit(measurement([], wanted=8, available=0)).reason


def test_retirement_is_the_same_test_the_other_way_round() -> None:
    lost_all = Effect(trials=6, wins_without=6, hurt=6)
    assert harmful(lost_all) and net_bounds(lost_all)[1] < 0
    assert not harmful(Effect(trials=4, wins_with=1, wins_without=3, helped=1, hurt=3))
    assert not harmful(Effect(trials=5, wins_without=5, hurt=5)), "fewer than MIN_TRIALS"
    # entries measured before helped/hurt were counted: the fewest discordant pairs the wins allow
    assert discordant(Effect(trials=8, wins_with=6, wins_without=2)) == (4, 0)
    assert p_helps(Effect(trials=8, wins_with=6, wins_without=2)) == pytest.approx(1 / 16)


def test_a_rejected_record_never_absorbs_an_admitted_near_duplicate() -> None:
    rejected = Strategy(id="s-r", title="Rule r", trigger="When the price drops", body="Do the thing first.",
                        status="rejected", effect=Effect(trials=3, wins_with=3, helped=3))
    admitted = Strategy(id="s-a", title="Rule a", trigger="When the price drops", body="Do the thing first!",
                        status="admitted", effect=Effect(trials=8, wins_with=5, helped=5))
    assert merge(rejected, admitted)[0].id == "s-a" and merge(admitted, rejected)[0].id == "s-a"


def test_futility_stopping_never_admits_what_the_full_measurement_would_reject() -> None:
    from agentkd.distill.admission import _reachable

    # after 4 hurt pairs of 8, even 4 more helped (4-4) cannot reach alpha: stop
    assert not _reachable(measurement([(False, True)] * 4).effect, 4, ALPHA)
    # after one hurt pair, 7 helped of the rest could still (7-1, p = 8/256 <= 0.05): go on
    assert _reachable(measurement([(False, True)]).effect, 7, ALPHA)
    # every outcome a stopped run could go on to is rejected by the full rule: stopping changes no decision
    rng = random.Random(3)
    for _ in range(2000):
        pairs = [(rng.random() < 0.5, rng.random() < 0.5) for _ in range(8)]
        for i in range(8):
            m = measurement(pairs[: i + 1])
            if not _reachable(m.effect, sum(not wo for _, wo in pairs[i + 1:]), ALPHA):
                assert not admit(measurement(pairs)).admitted
                stopped = m.model_copy(update={"stopped": True})
                assert not admit(stopped).admitted and "stopped after" in admit(stopped).reason
                break
