"""How often a sensor really updates, estimated from when its readings change.

A sampler faster than the sensor sees runs of equal values; the intervals between changes are
the update period, occasionally a multiple of it (an update that repeated the previous value,
or one the sampler missed). The estimate keeps the intervals within 1.5x of the 10th percentile
and takes their median, so repeats do not inflate it. When every sample differs, the result is
the sampling period: the sensor is at least that fast.
"""

from __future__ import annotations

from typing import Any, Sequence


def period_from_changes(change_ns: Sequence[int]) -> int | None:
    """The update period in ns from the times at which the value changed (None: fewer than 3 changes)."""
    intervals = sorted(b - a for a, b in zip(change_ns, change_ns[1:]) if b > a)
    if len(intervals) < 2:
        return None
    floor = intervals[len(intervals) // 10]
    kept = [d for d in intervals if d <= 1.5 * floor]
    return int(kept[len(kept) // 2])


def change_times(time_ns: Any, values: Any) -> list[int]:
    """Times (numpy int64 array) at which ``values`` (float array, NaN = missing) differ from the previous value."""
    import numpy as np

    ok = ~np.isnan(values)
    t, v = time_ns[ok], values[ok]
    return t[1:][v[1:] != v[:-1]].tolist()
