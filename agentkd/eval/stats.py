"""Bootstrap confidence intervals: of a mean over items, and of the paired difference between two arms.

Percentile bootstrap with a fixed seed, so a report is reproducible to the digit. Paired means the two
arms answered the *same* items: resampling items (not answers) keeps each item's pair together, which
is what makes a small difference on a small held-out set detectable at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

DEFAULT_RESAMPLES = 2000
DEFAULT_LEVEL = 0.95


class Interval(BaseModel):
    """A point estimate with its confidence interval (``level`` e.g. 0.95)."""

    value: float
    low: float
    high: float
    level: float = DEFAULT_LEVEL

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def fmt(self, pct: bool = True, signed: bool = False) -> str:
        """``"43% [30%, 57%]"`` (or ``"+12 pp [-3, +27]"`` for a signed difference in points)."""
        if signed:
            return f"{self.value * 100:+.0f} pp [{self.low * 100:+.0f}, {self.high * 100:+.0f}]"
        if pct:
            return f"{self.value:.0%} [{self.low:.0%}, {self.high:.0%}]"
        return f"{self.value:.3g} [{self.low:.3g}, {self.high:.3g}]"


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _percentiles(samples: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1 - level) / 2
    low, high = np.quantile(samples, [alpha, 1 - alpha])
    return float(low), float(high)


def bootstrap_ci(
    values: Sequence[float], *, resamples: int = DEFAULT_RESAMPLES, level: float = DEFAULT_LEVEL, seed: int = 0
) -> Interval:
    """The mean of ``values`` (e.g. 0/1 correctness per item) with a percentile-bootstrap interval."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return Interval(value=0.0, low=0.0, high=0.0, level=level)
    idx = _rng(seed).integers(0, data.size, size=(resamples, data.size))
    low, high = _percentiles(data[idx].mean(axis=1), level)
    return Interval(value=float(data.mean()), low=low, high=high, level=level)


class PairedDifference(BaseModel):
    """``treatment - baseline`` on the same items, with its interval and how the pairs split."""

    diff: Interval
    wins: int  # items the treatment got right and the baseline wrong
    losses: int  # items the baseline got right and the treatment wrong
    p_better: float  # share of resamples where the treatment's mean is higher


def paired_bootstrap(
    baseline: Sequence[float],
    treatment: Sequence[float],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> PairedDifference:
    """The paired difference of means, resampling items so each keeps its two outcomes together."""
    a, b = np.asarray(baseline, dtype=float), np.asarray(treatment, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples need the same items: {a.size} baseline values, {b.size} treatment values")
    if a.size == 0:
        zero = Interval(value=0.0, low=0.0, high=0.0, level=level)
        return PairedDifference(diff=zero, wins=0, losses=0, p_better=0.0)
    delta = b - a
    idx = _rng(seed).integers(0, a.size, size=(resamples, a.size))
    means = delta[idx].mean(axis=1)
    low, high = _percentiles(means, level)
    return PairedDifference(
        diff=Interval(value=float(delta.mean()), low=low, high=high, level=level),
        wins=int((delta > 0).sum()),
        losses=int((delta < 0).sum()),
        p_better=float((means > 0).mean()),
    )
