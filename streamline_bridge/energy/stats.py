"""Statistics over iterations: Student-t quantiles (numpy only), confidence intervals, iterations needed.

The two-sided t quantile solves ``A(t | df) = confidence`` by bisection, where ``A`` is the exact
finite series for integer degrees of freedom (Abramowitz & Stegun 26.7.3-4); above 200 degrees of
freedom the Cornish-Fisher expansion around the normal quantile (A&S 26.7.5) is used.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pandas as pd

SERIES_MAX_DF = 200
MAX_ITERATIONS = 10**9  # iterations_needed says at most this (a mean near 0 needs 'more than anyone runs')


def t_two_sided_probability(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with integer ``df`` >= 1."""
    theta = math.atan(t / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 0:
        term, total = 1.0, 1.0
        for k in range(1, df // 2):  # (1*3*...*(2k-1)) / (2*4*...*2k) cos^(2k)
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        return s * total
    if df == 1:
        return 2.0 * theta / math.pi
    term = math.cos(theta)
    total = term
    for k in range(1, (df - 1) // 2):  # (2*4*...*2k) / (3*5*...*(2k+1)) cos^(2k+1)
        term *= c2 * (2 * k) / (2 * k + 1)
        total += term
    return 2.0 / math.pi * (theta + s * total)


def _bisect(f, target: float, lo: float, hi: float) -> float:
    while f(hi) < target:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * hi:
            break
    return 0.5 * (lo + hi)


@lru_cache(maxsize=4096)
def t_quantile(df: int, confidence: float = 0.95) -> float:
    """t such that P(|T| <= t) = ``confidence`` for Student's t with ``df`` degrees of freedom."""
    if df < 1:
        return math.nan
    if df <= SERIES_MAX_DF:
        return _bisect(lambda x: t_two_sided_probability(x, df), confidence, 0.0, 4.0)
    z = _bisect(lambda x: math.erf(x / math.sqrt(2.0)), confidence, 0.0, 4.0)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def t_quantiles(df: np.ndarray, confidence: float = 0.95) -> np.ndarray:
    """:func:`t_quantile` for an array of degrees of freedom (one evaluation per distinct value)."""
    df = np.asarray(df, dtype=np.int64)
    values, inverse = np.unique(df, return_inverse=True)
    return np.array([t_quantile(int(v), confidence) for v in values], dtype=np.float64)[inverse.reshape(df.shape)]


def ci_half_width(sd: np.ndarray, n: np.ndarray, confidence: float = 0.95) -> np.ndarray:
    """Half-width of the Student-t confidence interval of a mean (NaN where n < 2)."""
    n = np.asarray(n, dtype=np.int64)
    t = t_quantiles(np.maximum(n - 1, 0), confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n >= 2, t * np.asarray(sd, dtype=np.float64) / np.sqrt(n), np.nan)


def iterations_needed(
    mean: np.ndarray, sd: np.ndarray, n: np.ndarray, precision: float = 0.05, confidence: float = 0.95
) -> pd.api.extensions.ExtensionArray:
    """Iterations for a CI half-width of ``precision`` x |mean|: ``ceil((t sd / (precision mean))^2)``.

    ``t`` is taken at the answer's own degrees of freedom (three fixed-point steps from the
    sample's). <NA> where it cannot be said (fewer than 2 iterations, or a zero mean).
    """
    mean = np.abs(np.asarray(mean, dtype=np.float64))
    sd = np.asarray(sd, dtype=np.float64)
    ok = (np.asarray(n) >= 2) & np.isfinite(sd) & (mean > 0)
    ratio = np.where(ok, sd / np.where(ok, mean, 1.0) / precision, 0.0)
    guess = np.maximum(np.asarray(n, dtype=np.int64), 2)
    for _ in range(3):
        t = t_quantiles(np.maximum(guess - 1, 1), confidence)
        guess = np.clip(np.ceil((t * ratio) ** 2), 2, MAX_ITERATIONS).astype(np.int64)
    out = np.where(ratio == 0, 1, guess)
    result = pd.array(np.where(ok, out, 0), dtype="Int64")
    result[~ok] = pd.NA
    return result
