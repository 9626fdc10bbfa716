"""How often a sensor really updates, estimated from when its readings change.

A sampler faster than the sensor sees runs of equal values; the intervals between changes are
the update period, sometimes a multiple of it (an update that repeated the previous value, a
stretch of missing samples), and jittered by the sampling period. Starting from the lower
quartile of the intervals, each interval counts as the whole number of periods closest to it,
and the period is the total time over the total count (refined three times): repeats do not
inflate it and jitter averages out. When every sample differs, the result is the sampling period: the sensor
is at least that fast.

:func:`fit_grid` goes further for the energy core: the refresh grid (period and phase) fitted
jointly over the rails of one chip across the whole record, robust to sampler stalls and to
rails that rarely change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence


def period_from_changes(change_ns: Sequence[int]) -> int | None:
    """The update period in ns from the times at which the value changed (None: fewer than 3 changes)."""
    intervals = sorted(b - a for a, b in zip(change_ns, change_ns[1:]) if b > a)
    if len(intervals) < 2:
        return None
    period = float(intervals[len(intervals) // 4])
    total = sum(intervals)
    for _ in range(3):
        period = total / sum(max(1, round(d / period)) for d in intervals)
    return int(period)


def change_times(time_ns: Any, values: Any) -> list[int]:
    """Times (numpy int64 array) at which ``values`` (float array, NaN = missing) differ from the previous value."""
    import numpy as np

    ok = ~np.isnan(values)
    t, v = time_ns[ok], values[ok]
    return t[1:][v[1:] != v[:-1]].tolist()


STALL_FACTOR = 1.5  # a change seen across a gap longer than this x the sampling interval is a stall: not timed
ON_GRID = 0.85  # share of well-timed changes that must fall on the fitted grid for the grid to stand


@dataclass(frozen=True)
class GridFit:
    """A refresh grid fitted to value changes: one period for a chip, one phase per rail (ns)."""

    period_ns: float
    phases_ns: tuple[float, ...]  # per series: a grid instant (a register load)
    on_grid: float  # share of well-timed changes within their sampling gap of the grid
    changes: int  # well-timed changes used


def _change_gaps(t: Any, v: Any) -> tuple[Any, Any, float]:
    """Midpoints and half-widths of the sampling gaps in which a value changed, and the sampling interval."""
    import numpy as np

    ok = ~np.isnan(v)
    t, v = np.asarray(t, np.float64)[ok], v[ok]
    if len(t) < 3:
        return np.zeros(0), np.zeros(0), 0.0
    spacing = float(np.median(np.diff(t)))
    i = np.flatnonzero(v[1:] != v[:-1]) + 1
    lo, hi = t[i - 1], t[i]
    timed = (hi - lo) <= STALL_FACTOR * spacing
    return (lo + hi)[timed] / 2, (hi - lo)[timed] / 2, spacing


def fit_grid(series: Sequence[tuple[Any, Any]], period_hint_ns: float | None = None) -> GridFit | None:
    """The refresh grid of the rails of one chip, from when their readings change (None: no grid to see).

    ``series``: (read times ns, values) per rail. Changes seen across a sampler stall are not timed.
    The period starts from ``period_hint_ns`` (the configuration) or :func:`period_from_changes`, and
    is refined by least squares of the change instants on whole periods (one period, one phase per
    rail) over a growing stretch of the record, so that a period a few % off (the INA3221's
    oscillator) still lands every change on its own period. None when the period is not longer than
    the sampling interval (the grid cannot be seen) or there are too few changes.
    """
    import numpy as np

    gaps = [_change_gaps(t, v) for t, v in series]
    spacing = max((g[2] for g in gaps), default=0.0)
    guesses = [p for p in (period_from_changes(np.sort(m).astype(np.int64).tolist()) for m, _, _ in gaps) if p]
    period = float(period_hint_ns or 0.0)
    if guesses:  # the data's own estimate starts closer than a configuration the chip may not keep
        data = float(min(guesses))  # a multiple of the hint when updates often repeat a value
        period = data / max(1, round(data / period)) if period else data
    if period <= STALL_FACTOR * spacing or sum(len(m) for m, _, _ in gaps) < 8:
        return None
    mids = [m for m, _, _ in gaps]
    t0 = min(m[0] for m in mids if len(m))
    t_end = max(m[-1] for m in mids if len(m))
    refs = [float(m[0]) if len(m) else t0 for m in mids]
    span = 10 * period
    while True:
        rows, ks, ys = [], [], []
        for r, m in enumerate(mids):
            sel = m[m <= t0 + span]
            k = np.round((sel - refs[r]) / period)
            rows.append(np.full(len(sel), r))
            ks.append(k)
            ys.append(sel - refs[r])
        r_all, k_all, y_all = np.concatenate(rows), np.concatenate(ks), np.concatenate(ys)
        keep = np.ones(len(y_all), bool)
        for _ in range(2):  # fit, drop changes more than a quarter period off, refit
            a = np.zeros((len(y_all), len(mids) + 1))
            a[np.arange(len(y_all)), r_all] = 1.0
            a[:, -1] = k_all
            sol = np.linalg.lstsq(a[keep], y_all[keep], rcond=None)[0]
            resid = y_all - a @ sol
            keep = np.abs(resid) <= period / 4
            if keep.sum() < len(mids) + 2:
                return None
        period = float(sol[-1])
        refs = [refs[r] + sol[r] for r in range(len(mids))]
        if span >= t_end - t0:
            break
        span *= 2
    half = np.concatenate([h for _, h, _ in gaps])
    on = np.abs(resid) <= half + 0.05 * period
    phases = tuple(float(ref % period) for ref in refs)
    return GridFit(period, phases, float(on.mean()), int(len(on)))
