"""Bootstrap intervals on data whose answer is known, the paired difference, and arm names."""

from __future__ import annotations

import math

import pytest

from agentkd.errors import ConfigError
from agentkd.eval import bootstrap_ci, paired_bootstrap, parse_arm, parse_arms
from agentkd.eval.arms import default_baseline


def test_bootstrap_ci_of_a_proportion_matches_the_normal_approximation() -> None:
    values = [1.0] * 200 + [0.0] * 200  # p = 0.5, n = 400: standard error 0.025, 95% half-width ~0.049
    ci = bootstrap_ci(values, resamples=4000, seed=1)
    assert ci.value == 0.5
    half = 1.96 * math.sqrt(0.25 / 400)
    assert ci.low == pytest.approx(0.5 - half, abs=0.012)
    assert ci.high == pytest.approx(0.5 + half, abs=0.012)


def test_bootstrap_ci_is_reproducible_and_degenerate_data_has_no_width() -> None:
    values = [1, 1, 1, 0, 1, 0, 1, 1, 0, 1]
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    small = bootstrap_ci(values, seed=3)
    assert small.low < 0.7 < small.high and 0.3 <= small.low <= 0.5 and small.high >= 0.9
    same = bootstrap_ci([1.0] * 12)
    assert (same.value, same.low, same.high) == (1.0, 1.0, 1.0)
    assert bootstrap_ci([]).value == 0.0


def test_paired_bootstrap_sees_a_consistent_gain_that_unpaired_intervals_would_not() -> None:
    # the baseline is right on half the items; the treatment fixes 4 more and breaks none
    baseline = [1.0, 0.0] * 10
    treatment = list(baseline)
    for i in (1, 3, 5, 7):
        treatment[i] = 1.0
    paired = paired_bootstrap(baseline, treatment, seed=0)
    assert paired.diff.value == pytest.approx(0.2)
    assert (paired.wins, paired.losses) == (4, 0)
    assert paired.diff.excludes_zero() and paired.p_better >= 0.98
    # the two arms' own intervals overlap: only pairing the items shows the difference
    a, b = bootstrap_ci(baseline, seed=0), bootstrap_ci(treatment, seed=0)
    assert a.high > b.low


def test_paired_bootstrap_of_a_trade_is_centred_on_zero() -> None:
    baseline = [1.0] * 5 + [0.0] * 5
    treatment = [0.0] * 5 + [1.0] * 5
    d = paired_bootstrap(baseline, treatment, seed=0)
    assert d.diff.value == 0.0 and (d.wins, d.losses) == (5, 5)
    assert d.diff.low < 0 < d.diff.high and not d.diff.excludes_zero()
    assert d.diff.fmt(signed=True).startswith("+0 pp [")
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap([1.0], [1.0, 0.0])


def test_arm_names() -> None:
    arms = parse_arms("student+cot, student,student+library,student+library:other@http://h:8000,teacher,teacher+cot")
    assert [a.who for a in arms] == ["student", "student", "student", "student", "teacher", "teacher"]
    assert [a.library for a in arms] == [None, None, "", "other@http://h:8000", None, None]
    assert [a.tools for a in arms] == [False, True, True, True, True, False]
    assert arms[3].label == "student + library: other"
    assert parse_arm("student+library:strategies/math").label == "student + library: math"
    assert parse_arm("teacher+cot").label == "teacher (no tools)" and parse_arm("teacher+cot").slug == "teacher_cot"
    assert default_baseline(arms).name == "student"
    assert default_baseline(parse_arms("teacher,student+cot")).name == "student+cot"
    for bad, hint in (("pupil", "start with"), ("teacher+library", "alone"), ("student+lib", "library"),
                      ("student,student", "twice")):
        with pytest.raises(ConfigError, match=hint):
            parse_arms(bad)
