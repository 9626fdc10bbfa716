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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


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
MIN_SCORE = 0.5  # ... and at least this share of those chance would leave off it (few changes fit some grid)
LATE = 0.25  # a change seen up to this share of a period late still counts as on the grid
SUBMULTIPLES = 8  # sparse changes: the period may be the data's estimate over up to this
MAX_SCAN = 50_000  # candidate periods a scan tries at most
POLISH_STEPS = 4  # the whole-record scan looks this many steps of the first scan around its period


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
    The period starts from ``period_hint_ns`` (the configuration), from :func:`period_from_changes`
    and its submultiples (sparse changes repeat values over several periods), and is refined by least squares of the
    change instants on whole periods (one period, one phase per rail) over a growing stretch of the
    record, so that a period a few % off (the INA3221's oscillator) still lands every change on its
    own period; the start whose grid holds the most changes beyond what chance would put on it wins. None when the period is not
    longer than the sampling interval (the grid cannot be seen) or there are too few changes.
    """
    import numpy as np

    gaps = [_change_gaps(t, v) for t, v in series]
    spacing = max((g[2] for g in gaps), default=0.0)
    mids = [m for m, _, _ in gaps]
    half = np.concatenate([h for _, h, _ in gaps])
    if len(half) < 8:
        return None
    guesses = [p for p in (period_from_changes(np.sort(m).astype(np.int64).tolist()) for m in mids) if p]
    starts = {float(period_hint_ns)} if period_hint_ns else set()
    spans: dict[float, float] = {}  # a start known precisely over this stretch: the least squares start there
    if guesses:  # the data's estimate, or a multiple of the period when updates often repeat a value
        data = float(min(guesses))
        starts.add(data)
        # a period not a whole number of sampling intervals shows as intervals of floor and ceil
        # of it, which the estimate can undercount: the scan reaches the upper quartile interval
        upper = (
            min(float(np.quantile(np.diff(np.sort(m)), 0.75)) for m in mids if len(m) > 4)
            if any(len(m) > 4 for m in mids)
            else data
        )
        scanned = _scan(mids, max(STALL_FACTOR * spacing, data / SUBMULTIPLES), 1.2 * max(data, upper))
        if scanned:
            starts.add(scanned[0])
            # sampled near a multiple of the period, the changes' sampling gaps slide slowly across the
            # grid and short stretches mislead the least squares: a scan of the whole record near the
            # first one gives a start precise enough to fit the whole record at once
            band = POLISH_STEPS * scanned[0] / (8 * max(scanned[1], scanned[0]))  # a few of the first scan's steps
            whole = _scan(mids, (1 - band) * scanned[0], (1 + band) * scanned[0], None, False)
            if whole:
                starts.add(whole[0])
                spans[whole[0]] = whole[1]
    best, best_score = None, MIN_SCORE
    for start in sorted(starts, reverse=True):  # on a tie the longer period: a submultiple fits as well
        if start <= STALL_FACTOR * spacing:
            continue
        fit = _refine(mids, start, spans.get(start, 0.0))
        if fit is None:
            continue
        period, refs, resid = fit
        # on the grid: within the sampling gap, or late by up to LATE x period (a value written late);
        # scored against the share that changes at random instants would reach (a fine grid catches all)
        on = float(np.mean((resid >= -half - 0.05 * period) & (resid <= half + LATE * period)))
        chance = float(np.mean(np.minimum(1.0, (2 * half + (0.05 + LATE) * period) / period)))
        score = (on - chance) / (1 - chance) if chance < 1 else 0.0
        if score > best_score + 1e-6:
            refs = _within_gaps(refs, resid, half, [len(m) for m in mids], period)
            best, best_score = GridFit(period, tuple(float(r % period) for r in refs), on, int(len(resid))), score
    return best


def _within_gaps(refs: list[float], resid: Any, half: Any, counts: list[int], period: float) -> list[float]:
    """Each series' grid instant moved to the middle of the shifts that keep its changes inside their
    sampling gaps (a change at update u is seen in the gap that holds u; 2 % of the changes may
    disagree). The least squares put it at the mean of the gaps' midpoints, which is off where the
    gaps slide slowly across the grid (sampling near a multiple of the period)."""
    import numpy as np

    out = []
    for r, part in zip(refs, np.split(np.arange(len(resid)), np.cumsum(counts)[:-1])):
        res, h = resid[part], half[part]
        ok = np.abs(res) <= h + 0.05 * period
        if ok.sum() < 8:
            out.append(r)
            continue
        lo, hi = np.quantile(res[ok] - h[ok], 0.98), np.quantile(res[ok] + h[ok], 0.02)
        out.append(r + (lo + hi) / 2 if lo <= hi else r)
    return out


def _scan(
    mids: list[Any], lo: float, hi: float, changes: int | None = 300, longest: bool = True
) -> tuple[float, float] | None:
    """The period in [lo, hi] at which the first ``changes`` (None: all) changes line up best (phase
    coherence, each series its own phase), and the stretch scanned: a start for :func:`_refine`.
    ``longest``: the longest of the near-best (not a submultiple), else the best."""
    import numpy as np

    if not lo < hi:
        return None
    t0 = min(m[0] for m in mids if len(m))
    first = np.sort(np.concatenate(mids))[:changes]
    most = MAX_SCAN * lo / (8 * np.log(hi / lo))  # the stretch that keeps the scan to MAX_SCAN periods
    until = min(float(first[-1]), t0 + most)
    parts = [m[m <= until] - t0 for m in mids if len(m)]
    span = max(until - t0, hi)
    if len(np.concatenate(parts)) < 8:
        return None
    step = 1 + lo / (8 * span)  # the phase of the last change moves by < 1/8 period per step
    periods = lo * step ** np.arange(int(np.log(hi / lo) / np.log(step)) + 1)
    score = np.zeros(len(periods))
    for m in parts:
        rows = max(1, 2_000_000 // max(len(m), 1))  # periods per batch: a bounded array
        for i in range(0, len(periods), rows):
            ph = np.exp(2j * np.pi * m[None, :] / periods[i : i + rows, None])
            score[i : i + rows] += np.abs(ph.sum(axis=1))
    best = np.flatnonzero(score >= 0.98 * score.max())[-1] if longest else int(np.argmax(score))
    return float(periods[best]), until - t0


def _refine(mids: list[Any], period: float, known_over: float = 0.0) -> tuple[float, list[float], Any] | None:
    """Period, a grid instant per series and each change's residual, by least squares on whole periods
    over a stretch of the record that doubles until it is the whole record (None: too few changes)."""
    import numpy as np

    t0 = min(m[0] for m in mids if len(m))
    t_end = max(m[-1] for m in mids if len(m))
    refs = [float(m[0]) if len(m) else t0 for m in mids]
    everything = np.sort(np.concatenate(mids))
    span = max(10 * period, known_over, float(everything[min(len(everything) - 1, 4 * len(mids) + 8)] - t0))
    while True:
        rows, ks, ys = [], [], []
        for r, m in enumerate(mids):
            sel = m[m <= t0 + span]
            rows.append(np.full(len(sel), r))
            ks.append(np.round((sel - refs[r]) / period))
            ys.append(sel - refs[r])
        r_all, k_all, y_all = np.concatenate(rows), np.concatenate(ks), np.concatenate(ys)
        keep = np.ones(len(y_all), bool)
        for _ in range(2):  # fit, drop changes more than a quarter period off, refit
            a = np.zeros((len(y_all), len(mids) + 1))
            a[np.arange(len(y_all)), r_all] = 1.0
            a[:, -1] = k_all
            if keep.sum() < len(mids) + 2:
                return None
            sol = np.linalg.lstsq(a[keep], y_all[keep], rcond=None)[0]
            resid = y_all - a @ sol
            keep = np.abs(resid) <= period / 4
        if not sol[-1] > 0:
            return None
        period = float(sol[-1])
        refs = [refs[r] + sol[r] for r in range(len(mids))]
        if span >= t_end - t0:
            return period, refs, resid
        span *= 2
