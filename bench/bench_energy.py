"""Per-layer energy speed: ``python -m bench energy [--quick]``.

10,000,000 samples x 3 rails (1 kHz for 2.8 hours, or 10 kHz for 17 minutes) and 100,000 layer
intervals. Measured in the same run: one ``numpy.cumsum`` over the same samples (the floor of any
cumulative integration), the core (arrays in: prepare + energy of every interval on every rail,
arrays out), the same on held values (a 7 ms sensor read at 1 kHz, turned into its step function
first), and the DataFrame-level API (``energy_table`` on a Recording, statistics included).
Goal for the core: under 1 s and within 5x of the floor.
"""

from __future__ import annotations

import numpy as np

from bench.run import Result, best_of
from streamline_bridge.energy import energy_table, integrate
from streamline_bridge.model import Meta, RailInfo, Recording, markers_frame, power_frame

RAILS = ("VDD_IN", "VDD_GPU", "VDD_CPU")
NAMES = (
    "conv1",
    "relu_conv1",
    "pool1",
    "fire2/squeeze1x1",
    "fire2/expand1x1",
    "fire2/expand3x3",
    "fire2/concat",
    "conv10",
    "pool10",
    "prob",
)


def make_power(n: int, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``n`` samples at ~1 ms with jitter, held values as a 7 ms sensor gives them, per rail."""
    rng = np.random.default_rng(seed)
    t = 1_000_000_000_000 + np.cumsum(rng.integers(950_000, 1_050_000, n, dtype=np.int64))
    held = np.repeat(np.arange(n // 7 + 1), 7)[:n]
    return t, {r: (1000.0 * (i + 1) + rng.standard_normal(n // 7 + 1) * 100)[held] for i, r in enumerate(RAILS)}


def make_intervals(t: np.ndarray, n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``n`` back-to-back intervals of 0.05-5 ms spread over the record (sorted, inside it)."""
    rng = np.random.default_rng(seed)
    starts = np.sort(rng.integers(t[0], t[-1] - 10_000_000, n))
    return starts, starts + rng.integers(50_000, 5_000_000, n)


def _core(
    t: np.ndarray, rails: dict[str, np.ndarray], start: np.ndarray, end: np.ndarray, held_period_ns: int | None = None
) -> list[np.ndarray]:
    return [integrate.energy_between(integrate.prepare(t, p, held_period_ns), start, end) for p in rails.values()]


def _recording(t: np.ndarray, rails: dict[str, np.ndarray], start: np.ndarray, end: np.ndarray) -> Recording:
    n = len(start)
    names = [NAMES[i % len(NAMES)] for i in range(n)]
    times = np.empty(2 * n, dtype=np.int64)
    times[0::2], times[1::2] = start, np.minimum(end, np.append(start[1:], end[-1]))
    texts = np.empty(2 * n, dtype=object)
    texts[0::2], texts[1::2] = names, ""
    kinds = np.tile(np.array(["text", "end"], dtype=object), n)
    markers = markers_frame(
        {"time_ns": times, "kind": kinds, "channel": np.ones(2 * n, dtype=np.int64), "text": texts}, int(t[0])
    )
    meta = Meta(
        format="bench",
        sources=["bench"],
        clock_base_ns=int(t[0]),
        rails={r: RailInfo(r, update_period_ns=7_000_000) for r in rails},
    )
    return Recording(markers, power_frame(t, rails, int(t[0])), meta)


def run(quick: bool) -> list[Result]:
    n_samples = 1_000_000 if quick else 10_000_000
    n_intervals = 10_000 if quick else 100_000
    repeat = 2 if quick else 3
    t, rails = make_power(n_samples)
    start, end = make_intervals(t, n_intervals)
    stacked = np.stack(list(rails.values()))
    floor = best_of(lambda: np.cumsum(stacked, axis=1), repeat)
    core = best_of(lambda: _core(t, rails, start, end), repeat)
    held = best_of(lambda: _core(t, rails, start, end, 7_000_000), repeat)
    rec = _recording(t, rails, start, end)
    api = best_of(lambda: energy_table(rec, baseline="none"), 1)
    total = n_samples * len(RAILS)
    size = f"{n_samples:,} samples x {len(RAILS)} rails, {n_intervals:,} intervals"
    return [
        Result(
            "energy",
            f"core: prepare + integrate ({size})",
            core,
            "s",
            floor,
            "numpy.cumsum, same samples",
            "< 1 s and <= 5x floor",
            core < 1.0 and core <= 5 * floor,
        ),
        Result("energy", "core throughput", total / core, "samples/s", total / floor, "numpy.cumsum"),
        Result(
            "energy",
            "core, held values (7 ms sensor, step reconstruction)",
            held,
            "s",
            floor,
            "numpy.cumsum",
            "< 1 s and <= 5x floor",
            held < 1.0 and held <= 5 * floor,
        ),
        Result("energy", "energy_table (DataFrame API, statistics)", api, "s", core, "core"),
        Result("energy", "energy_table throughput", total / api, "samples/s", total / core, "core"),
    ]
