"""Energy between instants from power samples: cumulative trapezoid, linear interpolation at the edges.

``E(a, b) = F(b) - F(a)`` where ``F`` is the integral of the piecewise-linear interpolation of the
samples from the first sample on. ``F`` at the samples is one cumulative sum; at any other instant
it adds the trapezoid from the sample before it. The result is exact for power that is linear
between samples, and intervals plus the gaps between them add up to the whole record.
Units: time in ns, power in mW, energy in mJ (1 mW x 1 ns = 1e-9 mJ).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NS_MW_TO_MJ = 1e-9


@dataclass
class Rail:
    """One rail ready to integrate: sample times (ns, int64), power (mW) and its running integral."""

    t_ns: np.ndarray
    p_mw: np.ndarray
    cum2: np.ndarray  # cum2[i] = 2 x integral from t_ns[0] to t_ns[i], in mW*ns, of (p - offset_mw)
    offset_mw: float  # subtracted before summing so that the running sum stays small (precision)
    missing: int  # NaN samples dropped before integrating

    @property
    def first_ns(self) -> int:
        return int(self.t_ns[0])

    @property
    def last_ns(self) -> int:
        return int(self.t_ns[-1])

    @property
    def total_mj(self) -> float:
        """Energy of the whole record."""
        return float(0.5 * self.cum2[-1] + self.offset_mw * (self.t_ns[-1] - self.t_ns[0])) * NS_MW_TO_MJ


def held_windows(t_ns: np.ndarray, p_mw: np.ndarray, period_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """Samples of a sensor that holds each value, as the step function of what the values mean.

    A sensor that updates every ``period_ns`` with the mean power of its last period is read faster
    than it updates: runs of equal values. A new value is seen at an update, placed halfway between
    the last sample of the run and the first of the next; it covers the period before its update (or
    the time since the previous change, if shorter), and the previous value fills any time between
    (updates that repeated it). Returned as points with repeated times (steps are exact for the
    trapezoid). After the last change nothing is known. Fewer than two changes: returned as given.
    """
    change = np.flatnonzero(p_mw[1:] != p_mw[:-1]) + 1
    if len(change) < 2:
        return t_ns, p_mw
    updates = np.concatenate([[t_ns[0]], (t_ns[change - 1] + t_ns[change]) // 2])
    values = np.concatenate([[p_mw[0]], p_mw[change]])
    starts = np.maximum(updates[:-1], updates[1:] - period_ns)  # where each new value's window begins
    x = np.empty(2 * len(updates), dtype=np.int64)
    x[0], x[-1] = updates[0], updates[-1]
    x[1:-1] = np.repeat(starts, 2)
    return x, np.repeat(values, 2)


def prepare(t_ns: np.ndarray, p_mw: np.ndarray, held_period_ns: int | None = None) -> Rail:
    """Drop missing samples (NaN; integration interpolates across them) and build the running integral.

    ``t_ns`` must be sorted; at least one valid sample is needed. ``held_period_ns``: the values are
    the held updates of a sensor averaging over this period (:func:`held_windows`). Five passes over the samples, all in
    place in the output buffer but one.
    """
    t_ns = np.asarray(t_ns, dtype=np.int64)
    p_mw = np.asarray(p_mw, dtype=np.float64)
    missing = 0
    if np.isnan(np.sum(p_mw)):  # one pass; the mask only when something is missing
        ok = ~np.isnan(p_mw)
        missing = int(len(p_mw) - np.count_nonzero(ok))
        t_ns, p_mw = t_ns[ok], p_mw[ok]
    if len(t_ns) == 0:
        raise ValueError("no valid power samples")
    if held_period_ns:
        t_ns, p_mw = held_windows(t_ns, p_mw, held_period_ns)
    offset = float(p_mw[0])
    cum2 = np.empty(len(t_ns), dtype=np.float64)
    cum2[0] = 0.0
    seg = cum2[1:]
    np.subtract(t_ns[1:], t_ns[:-1], out=seg, casting="unsafe")  # dt, as float
    pair = np.add(p_mw[1:], p_mw[:-1])
    pair -= 2.0 * offset
    seg *= pair  # 2 x trapezoid of each sample step
    np.cumsum(seg, out=seg)
    return Rail(t_ns, p_mw, cum2, offset, missing)


def integral_at(rail: Rail, x_ns: np.ndarray) -> np.ndarray:
    """Integral (mW*ns, of power minus ``rail.offset_mw``) from the first sample to each ``x_ns``.

    NaN where ``x_ns`` lies outside the samples.
    """
    t = rail.t_ns
    x = np.asarray(x_ns, dtype=np.int64)
    k = np.clip(np.searchsorted(t, x, side="right") - 1, 0, max(len(t) - 2, 0))
    if len(t) == 1:
        out = np.zeros(len(x))
    else:
        q0 = rail.p_mw[k] - rail.offset_mw
        q1 = rail.p_mw[k + 1] - rail.offset_mw
        span = (t[k + 1] - t[k]).astype(np.float64)
        h = (x - t[k]).astype(np.float64)
        slope = np.divide(q1 - q0, span, out=np.zeros_like(span), where=span > 0)
        out = 0.5 * rail.cum2[k] + h * (q0 + 0.5 * slope * h)
    out[(x < t[0]) | (x > t[-1])] = np.nan
    return out


def energy_between(rail: Rail, start_ns: np.ndarray, end_ns: np.ndarray) -> np.ndarray:
    """Energy in mJ over each ``[start_ns, end_ns]``; NaN where an interval leaves the record."""
    start = np.asarray(start_ns, dtype=np.int64)
    end = np.asarray(end_ns, dtype=np.int64)
    inner = integral_at(rail, end) - integral_at(rail, start)
    return (inner + rail.offset_mw * (end - start).astype(np.float64)) * NS_MW_TO_MJ
