"""Sensor simulator: markers and power readings from a known true-power schedule (no real time).

A :class:`Schedule` says what runs (layers with durations and true power per rail, iterations,
pauses); :func:`run` lays it out on a timeline with seeded jitter and the true energy of every
occurrence; :func:`read` samples each rail through a sensor model (:mod:`energy.sensors`, the same
kernels the attribution inverts) at a sampler's read times; :func:`recording` gives the
:class:`~streamline_bridge.model.Recording` a reader would return, and :func:`write_logs` writes a
marker log and a power log through the project's own writers. Used by the tests and by
``python -m bench validity``; deterministic for a given seed.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from streamline_bridge.energy.sensors import Grid, forward
from streamline_bridge.model import (
    Meta,
    RailInfo,
    Recording,
    markers_frame,
    power_frame,
)
from streamline_bridge.sensor_model import SensorModel

MS = 1_000_000


@dataclass(frozen=True)
class Schedule:
    """What runs: ``layers`` = (name, duration ms, {rail: true mW}), ``iterations`` times."""

    layers: tuple[tuple[str, float, Mapping[str, float]], ...]
    iterations: int
    idle_mw: Mapping[str, float]
    gap_ms: float = 0.01  # between layers of one iteration (marker overhead)
    pause_ms: tuple[float, float] = (1.0, 9.0)  # uniform range between iterations
    lead_ms: float = 500.0  # idle before the first and after the last iteration
    time_jitter: float = 0.03  # relative sd of each occurrence's duration
    power_jitter: float = 0.01  # relative sd of each occurrence's power
    seed: int = 0

    @property
    def rails(self) -> list[str]:
        return list(self.idle_mw)


@dataclass
class Truth:
    """The laid-out schedule: piecewise-constant power per rail on ``edges`` and every occurrence."""

    edges: np.ndarray  # ns
    power: dict[str, np.ndarray]  # rail -> mW per segment
    occurrences: pd.DataFrame  # name, iteration, start_ns, end_ns, then "<rail>" true mJ columns
    end_ns: int

    def layer_energy(self, warmup: int = 0) -> pd.DataFrame:
        """Mean true mJ and ms per (layer, rail) over iterations from ``warmup`` on (long, like the table)."""
        occ = self.occurrences[self.occurrences["iteration"] >= warmup]
        occ = occ.assign(time_ms=(occ["end_ns"] - occ["start_ns"]) / 1e6)
        rails = list(self.power)
        g = occ.groupby("name", sort=False)[rails + ["time_ms"]].mean().reset_index()
        return g.melt(id_vars=["name", "time_ms"], value_vars=rails, var_name="rail", value_name="energy_mj")


def run(s: Schedule, start_ns: int = 1_000 * MS) -> Truth:
    """Lay out the schedule (seeded): each occurrence's duration and power jittered."""
    rng = np.random.default_rng(s.seed)
    rails = s.rails
    seg_power: dict[str, list[float]] = {r: [] for r in rails}
    edges, rows = [start_ns], []
    t = start_ns + int(s.lead_ms * MS)
    for r in rails:
        seg_power[r].append(s.idle_mw[r])
    edges.append(t)
    for it in range(s.iterations):
        for k, (name, ms, mw) in enumerate(s.layers):
            d = max(int(ms * MS * (1 + s.time_jitter * rng.standard_normal())), 1_000)
            p = {r: mw.get(r, s.idle_mw[r]) * (1 + s.power_jitter * rng.standard_normal()) for r in rails}
            rows.append((name, it, t, t + d, *(p[r] * d / 1e9 for r in rails)))
            for r in rails:
                seg_power[r].append(p[r])
            t += d
            edges.append(t)
            pause = s.gap_ms if k < len(s.layers) - 1 else rng.uniform(*s.pause_ms)
            if pause > 0:
                for r in rails:
                    seg_power[r].append(s.idle_mw[r])
                t += int(pause * MS)
                edges.append(t)
    t += int(s.lead_ms * MS)
    edges.append(t)
    for r in rails:
        seg_power[r].append(s.idle_mw[r])
    occ = pd.DataFrame(rows, columns=["name", "iteration", "start_ns", "end_ns", *rails])
    return Truth(np.asarray(edges, np.int64), {r: np.asarray(v) for r, v in seg_power.items()}, occ, t)


@dataclass(frozen=True)
class Sensor:
    """How one rail is read: its model, the true refresh grid (period, phase), noise, quantisation."""

    model: SensorModel
    period_ns: float | None = None  # true refresh period (default: the model's; a real chip is a few % off)
    phase_ns: float = 0.0
    noise_mw: float = 0.0
    quantum_mw: float = 1.0

    def grid(self) -> Grid | None:
        period = self.period_ns or self.model.update_ns
        return Grid(float(period), self.phase_ns) if period else None


@dataclass
class Readings:
    """What a sampler read: times (ns, read completion) and mW per rail."""

    t_ns: np.ndarray
    values: dict[str, np.ndarray]
    sensors: dict[str, Sensor] = field(default_factory=dict)


def read_times(
    start_ns: int, end_ns: int, interval_ns: int, jitter_ns: int = 50_000, stalls: float = 0.0, seed: int = 0
) -> np.ndarray:
    """A sampler's read times: every ``interval_ns`` with jitter; ``stalls``: share of reads delayed 5-20 intervals."""
    rng = np.random.default_rng(seed + 1)
    n = int((end_ns - start_ns) // interval_ns)
    step = interval_ns + rng.integers(-jitter_ns, jitter_ns + 1, n) if jitter_ns else np.full(n, interval_ns)
    if stalls:
        hit = rng.random(n) < stalls
        step[hit] += rng.integers(5, 20, int(hit.sum())) * interval_ns
    t = start_ns + np.cumsum(np.maximum(step, 1))
    return t[t < end_ns].astype(np.int64)


def read(truth: Truth, sensors: Mapping[str, Sensor], t_ns: np.ndarray, seed: int = 0) -> Readings:
    """Every rail read through its sensor at ``t_ns``."""
    rng = np.random.default_rng(seed + 2)
    values = {
        r: forward(s.model, s.grid(), truth.edges, truth.power[r], t_ns, s.quantum_mw, s.noise_mw, rng)
        for r, s in sensors.items()
    }
    return Readings(t_ns, values, dict(sensors))


def markers(truth: Truth) -> pd.DataFrame:
    """The markers a framework adapter writes: ``iteration <n>`` on channel 2, each layer on channel 3."""
    occ = truth.occurrences
    it = occ.groupby("iteration").agg(start=("start_ns", "min"), end=("end_ns", "max"))
    t = np.concatenate([it["start"], it["end"], occ["start_ns"], occ["end_ns"]])
    kind = ["text"] * len(it) + ["end"] * len(it) + ["text"] * len(occ) + ["end"] * len(occ)
    channel = [2] * (2 * len(it)) + [3] * (2 * len(occ))
    text = [f"iteration {i}" for i in it.index] + [""] * len(it) + list(occ["name"]) + [""] * len(occ)
    order = np.lexsort((np.array([k == "text" for k in kind]), t))  # an end before a text at one instant
    cols = {
        "time_ns": t[order],
        "kind": np.array(kind)[order],
        "channel": np.array(channel)[order],
        "text": np.array(text, dtype=object)[order],
    }
    return markers_frame(cols, 0)


def recording(truth: Truth, readings: Readings, known_models: bool = False, idle: bool = True) -> Recording:
    """The recording a reader returns; ``known_models``: each rail's RailInfo carries its sensor model."""
    rails = {
        r: RailInfo(r, source="simulator", sensor_model=s.model.with_source("source") if known_models else None)
        for r, s in readings.sensors.items()
    }
    extra = {"idle_mw": {r: float(truth.power[r][0]) for r in rails}} if idle else {}
    meta = Meta(format="simulated", sources=["simulator"], clock_base_ns=0, rails=rails, extra=extra)
    return Recording(markers(truth), power_frame(readings.t_ns, readings.values, 0), meta)


def write_logs(truth: Truth, readings: Readings, folder: str | os.PathLike[str]) -> tuple[Path, Path]:
    """A marker log (``markers.sbm``) and a power log (``power.sbp``) through the project's writers."""
    from annotate import mirror, wire
    from streamline_bridge.power.log import PowerLogWriter

    folder = Path(folder)
    m_path, p_path = folder / "markers.sbm", folder / "power.sbp"
    m = markers(truth)
    log = mirror.MarkerLog(m_path, protocol=wire.DEFAULT_PROTOCOL, writer="simulator")
    msgs = b"".join(
        wire.text(int(t), int(ch), txt) for t, ch, txt in zip(m["time_ns"], m["channel"], m["text"].fillna(""))
    )
    log.write(
        mirror.record(mirror.OPENED, 1, wire.handshake(1, 1, wire.DEFAULT_PROTOCOL))
        + mirror.record(mirror.MESSAGES, 1, msgs)
        + mirror.record(mirror.CLOSED, 1)
    )
    log.close()
    rails = list(readings.values)
    meta = {
        "rails": [
            {"name": r, "unit": "mW", "sensor_model": readings.sensors[r].model.with_source("source").to_dict()}
            for r in rails
        ],
        "source": "simulator",
        "monotonic_raw_ns": 0,
        "clock": "CLOCK_MONOTONIC_RAW",
    }
    w = PowerLogWriter(p_path, meta)
    t = readings.t_ns
    w.write_samples(
        array("q", (t - 1000).tolist()),
        array("I", [1000] * len(t)),
        [array("f", readings.values[r].astype(np.float32).tolist()) for r in rails],
        0,
    )
    w.write_trailer({"samples": len(t)})
    w.close()
    return m_path, p_path
