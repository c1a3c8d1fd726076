"""Confidence intervals over seeds: a bootstrap for means, Wilson's interval for rates.

Both are deterministic (a fixed resampling seed), so aggregating the same
units twice gives the same table.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

N_RESAMPLES = 9999
RESAMPLING_SEED = 0


@dataclass(frozen=True)
class Interval:
    """A point estimate and its confidence interval; ``lo``/``hi`` are NaN where none can be given."""

    value: float
    lo: float
    hi: float
    n: int

    @property
    def text(self) -> str:
        if math.isnan(self.value):
            return "-"
        if math.isnan(self.lo):
            return f"{self.value:.3g}"
        return f"{self.value:.3g} [{self.lo:.3g}, {self.hi:.3g}]"


NONE = Interval(math.nan, math.nan, math.nan, 0)


def bootstrap_mean(values, confidence: float = 0.95) -> Interval:
    """Mean of ``values`` (NaN dropped) with a percentile-bootstrap confidence interval (``scipy.stats.bootstrap``,
    :data:`N_RESAMPLES` resamples, fixed seed). One value has no interval (NaN bounds); equal values have a
    zero-width one.

    The percentile method, rather than BCa, because BCa's corrections are unstable at the handful of seeds a
    sweep has. With 2 or 3 values the interval is exactly [min, max]: every other resampled mean lies between
    them, and the all-min and all-max resamples each have probability >= 1/27 > 2.5%.
    """
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if len(x) == 0:
        return NONE
    mean = float(x.mean())
    if len(x) == 1:
        return Interval(mean, math.nan, math.nan, 1)
    if np.all(x == x[0]):
        return Interval(mean, mean, mean, len(x))
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about small samples; the docs say what the interval means
        res = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=N_RESAMPLES,
                              method="percentile", random_state=np.random.default_rng(RESAMPLING_SEED))
    return Interval(mean, float(res.confidence_interval.low), float(res.confidence_interval.high), len(x))


def wilson(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """The rate ``successes / n`` with Wilson's score interval (NaN for ``n = 0``)."""
    if n <= 0:
        return NONE
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)  # the standard library's, not scipy.stats: 0.7 s of import
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    lo = 0.0 if successes == 0 else max(0.0, centre - half)   # exact ends: no 1e-17 from rounding
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(p, lo, hi, n)
