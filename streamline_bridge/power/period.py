"""How often a sensor really updates, estimated from when its readings change.

A sampler faster than the sensor sees runs of equal values; the intervals between changes are
the update period, sometimes a multiple of it (an update that repeated the previous value, a
stretch of missing samples), and jittered by the sampling period. Starting from the lower
quartile of the intervals, each interval counts as the whole number of periods closest to it,
and the period is the total time over the total count (refined three times): repeats do not
inflate it and jitter averages out. When every sample differs, the result is the sampling period: the sensor
is at least that fast.
"""

from __future__ import annotations

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
