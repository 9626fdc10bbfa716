"""Sensor forward models: what a sampler reading at time t sees, given power over time.

True power is piecewise constant on ``edges`` (ns, sorted): segment k = [edges[k], edges[k+1]) has
``rate[k]``. ``rate`` is either a power per segment (1-D, mW: the *forward* model, what a simulator
writes) or one row per segment of a 0/1 indicator over the unknowns (2-D: the *design* model, what
the attribution inverts). The same kernels serve both, so the inversion is exactly the model a
simulator runs:

``instant``  the reading is the power at the read.
``window``   each update ``u_j = phase + j x period`` loads the mean power over ``[u_j - period, u_j]``.
``ina3221``  each round of the chip (``SensorModel.update_ns``) the rail's shunt conversion averages
             the power over its aperture ``[u_j - VSHCT, u_j]`` (``u_j`` = when the register loads)
             and the output register follows ``out += (sample - out) / AVG`` (a running exponential
             average). The bus voltage hardly moves, so power = bus x shunt is linear in the shunt.

A sampler reading at ``t`` sees the last update at or before ``t`` (:func:`update_index`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamline_bridge.sensor_model import SensorModel


@dataclass(frozen=True)
class Grid:
    """When a sensor's value can change: ``phase_ns + k x period_ns`` (float ns, k any integer)."""

    period_ns: float
    phase_ns: float
    phase_known: bool = True  # False: the phase could not be seen (the grid is finer than the sampling)
    at_reads: bool = False  # each read is its own update (a source read once per period: tegrastats)

    def index(self, t_ns: np.ndarray) -> np.ndarray:
        """Index of the last grid instant at or before each ``t_ns``."""
        return np.floor((np.asarray(t_ns, dtype=np.float64) - self.phase_ns) / self.period_ns).astype(np.int64)

    def at(self, k: np.ndarray) -> np.ndarray:
        """Grid instants of indices ``k`` (float ns)."""
        return self.phase_ns + np.asarray(k, dtype=np.float64) * self.period_ns


def aperture_ns(model: SensorModel, grid: Grid) -> float:
    """How long before an update its sample begins: 0 (instant), the window, the shunt conversion."""
    if model.kind == "window":
        return grid.period_ns
    if model.kind == "ina3221":
        return float(model.shunt_ct_ns)
    return 0.0


def integral(edges: np.ndarray, rate: np.ndarray, t_ns: np.ndarray) -> np.ndarray:
    """Integral of ``rate`` (per ns) from ``edges[0]`` to each ``t_ns`` (clipped to the edges)."""
    edges = np.asarray(edges, dtype=np.float64)
    t = np.clip(np.asarray(t_ns, dtype=np.float64), edges[0], edges[-1])
    k = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, len(edges) - 2)
    seg = np.diff(edges)
    cum = np.zeros((len(edges),) + rate.shape[1:])
    np.cumsum(rate * (seg if rate.ndim == 1 else seg[:, None]), axis=0, out=cum[1:])
    h = t - edges[k]
    return cum[k] + (rate[k] * (h if rate.ndim == 1 else h[:, None]))


def value_at(edges: np.ndarray, rate: np.ndarray, t_ns: np.ndarray) -> np.ndarray:
    """``rate`` of the segment holding each ``t_ns`` (an instant reading)."""
    k = np.clip(
        np.searchsorted(np.asarray(edges, np.float64), np.asarray(t_ns, np.float64), side="right") - 1,
        0,
        len(edges) - 2,
    )
    return rate[k]


def means(edges: np.ndarray, rate: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Mean of ``rate`` over each ``[lo, hi]``; the value at ``hi`` where the interval is empty."""
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    width = hi - lo
    if not np.any(width > 0):
        return value_at(edges, rate, hi)
    out = integral(edges, rate, hi) - integral(edges, rate, lo)
    w = np.where(width > 0, width, 1.0)
    out = out / (w if rate.ndim == 1 else w[:, None])
    empty = width <= 0
    if empty.any():
        out[empty] = value_at(edges, rate, hi[empty])
    return out


def ema(x: np.ndarray, averages: int, state: np.ndarray | float) -> np.ndarray:
    """``out_j = out_{j-1} + (x_j - out_{j-1}) / averages`` along axis 0, from ``out_{-1} = state``.

    Closed form per block (a scaled cumulative sum), blocks short enough that the scale stays finite.
    """
    if averages <= 1:
        return np.array(x, dtype=np.float64, copy=True)
    a = 1.0 / averages
    r = 1.0 - a
    block = max(1, int(200.0 / -np.log(r)))  # r^-block <= e^200
    out = np.empty_like(np.asarray(x, dtype=np.float64))
    prev = np.asarray(state, dtype=np.float64)
    for s in range(0, len(x), block):
        chunk = x[s : s + block]
        n = len(chunk)
        up = r ** -np.arange(1, n + 1, dtype=np.float64)  # r^-(i+1)
        down = r ** np.arange(1, n + 1, dtype=np.float64)  # r^(i+1)
        shape = (n,) + (1,) * (chunk.ndim - 1)
        acc = np.cumsum(chunk * up.reshape(shape), axis=0) * a
        out[s : s + n] = (acc + prev) * down.reshape(shape)
        prev = out[s + n - 1]
    return out


def update_times(grid: Grid, first: int, last: int) -> np.ndarray:
    """Grid instants ``first..last`` (inclusive), float ns."""
    return grid.at(np.arange(first, last + 1))


def sensor_output(
    model: SensorModel,
    grid: Grid | None,
    edges: np.ndarray,
    rate: np.ndarray,
    first: int,
    last: int,
    state: np.ndarray | float | None = None,
    noise: np.ndarray | None = None,
) -> np.ndarray:
    """The sensor's register after updates ``first..last`` of ``grid`` (rows), for window and ina3221.

    ``state``: the EMA output before update ``first`` (ina3221 with AVG > 1); None = the first sample.
    ``noise``: added to each update's sample (a simulator's ADC noise).
    """
    assert grid is not None, "a window or ina3221 model is read on a grid"
    u = update_times(grid, first, last)
    samples = means(edges, rate, u - aperture_ns(model, grid), u)
    if noise is not None:
        samples = samples + noise[: len(samples)]
    if model.kind != "ina3221" or model.averages <= 1:
        return samples
    return ema(samples, model.averages, samples[0] if state is None else state)


def forward(
    model: SensorModel,
    grid: Grid | None,
    edges: np.ndarray,
    power_mw: np.ndarray,
    read_ns: np.ndarray,
    quantum_mw: float = 0.0,
    noise_mw: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """What a sampler reading at ``read_ns`` sees of the power ``power_mw`` on ``edges`` (a simulator).

    The EMA starts from the first sample at the first update after ``edges[0]``. ``noise_mw``: the
    sd of Gaussian noise on each sample (each read for ``instant``, each conversion otherwise);
    ``quantum_mw`` > 0 rounds the readings (the drivers give integer mW).
    """
    read_ns = np.asarray(read_ns, dtype=np.float64)
    power_mw = np.asarray(power_mw, dtype=np.float64)
    rng = rng or np.random.default_rng(0)
    if model.kind == "instant":
        out = value_at(edges, power_mw, read_ns) + noise_mw * rng.standard_normal(len(read_ns))
    else:
        assert grid is not None, "a window or ina3221 model is read on a grid"
        j = grid.index(read_ns)
        first = int(grid.index(np.array([edges[0]]))[0]) + 1
        noise = noise_mw * rng.standard_normal(int(j.max()) - first + 1) if noise_mw else None
        reg = sensor_output(model, grid, edges, power_mw, first, int(j.max()), noise=noise)
        out = reg[np.clip(j - first, 0, None)]
    return np.round(out / quantum_mw) * quantum_mw if quantum_mw > 0 else out
