"""The update-period estimate from value-change times."""

from __future__ import annotations

import numpy as np

from streamline_bridge.power.period import change_times, period_from_changes


def test_a_steady_sensor() -> None:
    assert period_from_changes([7_000_000 * i for i in range(50)]) == 7_000_000


def test_repeated_values_do_not_inflate_it() -> None:
    times = [7_000_000 * i for i in range(200) if i % 3 != 1]  # every third update repeated the value
    assert period_from_changes(times) == 7_000_000


def test_sampling_jitter_averages_out() -> None:
    rng = np.random.default_rng(1)
    times = np.arange(300) * 7_000_000 + rng.integers(0, 1_000_000, 300)  # seen at the next 1 kHz sample
    assert abs(period_from_changes(times.tolist()) - 7_000_000) < 0.02 * 7_000_000


def test_a_long_gap_counts_as_many_periods() -> None:
    times = [7_000_000 * i for i in range(40)] + [7_000_000 * i for i in range(200, 240)]
    assert period_from_changes(times) == 7_000_000


def test_too_few_changes() -> None:
    assert period_from_changes([]) is None and period_from_changes([5, 10]) is None


def test_change_times_skip_missing_samples() -> None:
    t = np.array([0, 1, 2, 3, 4, 5], dtype=np.int64)
    v = np.array([1.0, 1.0, np.nan, 1.0, 2.0, 2.0])
    assert change_times(t, v) == [4]
