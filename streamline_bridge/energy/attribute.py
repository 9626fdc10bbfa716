"""Attribution through the sensor model: each layer's mean power by least squares over the readings.

The fit's timeline (:class:`Layout`) splits the kept iterations into segments, each belonging to
one *unknown*: a layer (pooled over iterations), the gaps between layers inside an iteration, or
the time between iterations. Through the rail's sensor model every reading is a known linear
combination of the unknowns (:func:`design`); an averaging INA3221 adds one more unknown, its
output register before the first modelled conversion. The unknowns are solved by least squares with
a weak Gaussian prior (mean: the mean reading; sd: as large as the readings themselves), so an
unknown that no reading sees keeps an honest, wide uncertainty instead of a singular matrix.

Uncertainty: a grouped jackknife over blocks of consecutive iterations (each block at least two
sensor memories long; at most 40 groups) re-sums the groups' normal equations leaving one group out
at a time; it holds smoothing, quantisation and iteration scatter together. The posterior
covariance of the prior-regularised fit is its floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from streamline_bridge.energy import sensors
from streamline_bridge.energy.sensors import Grid
from streamline_bridge.sensor_model import SensorModel

GAP, BETWEEN, DRIFT, STATE = "(gaps)", "(between iterations)", "(drift, mW/s)", "(sensor state)"
MIN_BLOCKS = 10  # fewer jackknife groups than this: nothing is resolved
MAX_GROUPS = 40
MAX_CELLS = 20_000_000  # jackknife groups x unknowns^2 held at once
PHASES = 6  # phases averaged over where the grid's phase is unknown
DRIFT_SHARE = 0.1  # prior sd of the drift: this share of the readings' scale over the span


@dataclass
class Layout:
    """The fit's timeline: segments on ``edges`` (ns), each an index into ``names`` (the unknowns)."""

    edges: np.ndarray
    unknown: np.ndarray
    names: list[str]
    iter_starts: np.ndarray  # ns, kept iterations in order
    iter_period_ns: float  # median start-to-start time of iterations

    @property
    def span(self) -> tuple[float, float]:
        return float(self.edges[0]), float(self.edges[-1])

    def indicator(self) -> np.ndarray:
        """One row per segment, one column per unknown: 1 where the segment belongs to it (the drift
        column is 0 here: it is linear in time, see :meth:`means`)."""
        rate = np.zeros((len(self.unknown), len(self.names)))
        rate[np.arange(len(self.unknown)), self.unknown] = 1.0
        return rate

    def means(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Mean of every unknown's indicator over each [lo, hi] (the value at ``hi`` where empty); the
        drift column: the mean time from the middle of the span, in s (the drift is linear in time)."""
        x = sensors.means(self.edges, self.indicator(), lo, hi)
        x[:, self.names.index(DRIFT)] = ((np.asarray(lo) + np.asarray(hi)) / 2 - sum(self.span) / 2) / 1e9
        return x

    def time_in(self, start_ns: np.ndarray, end_ns: np.ndarray) -> np.ndarray:
        """ms spent in each unknown within each [start, end] (rows)."""
        dur = np.asarray(end_ns, np.float64) - np.asarray(start_ns, np.float64)
        return self.means(start_ns, end_ns) * (dur / 1e6)[:, None]


def layout(occ: pd.DataFrame) -> Layout:
    """The timeline of the occurrences ``occ`` (``name``, ``iteration``, ``start_ns``, ``end_ns``).

    A layer that overlaps the next one (another thread) is cut at the next one's start.
    """
    occ = occ.sort_values(["start_ns", "end_ns"], kind="stable")
    start = occ["start_ns"].to_numpy(np.float64)
    end = np.minimum(occ["end_ns"].to_numpy(np.float64), np.append(start[1:], np.inf))
    it = occ["iteration"].to_numpy(np.int64)
    names = list(dict.fromkeys(occ["name"].astype(str)))
    idx = {n: i for i, n in enumerate(names)}
    names += [GAP, BETWEEN, DRIFT]
    lay_unknown = np.array([idx[n] for n in occ["name"].astype(str)], dtype=np.int64)
    after = np.where(np.append(it[1:] == it[:-1], False), len(names) - 3, len(names) - 2)[:-1]
    edges = np.empty(2 * len(start))
    edges[0::2], edges[1::2] = start, end
    unknown = np.empty(2 * len(start) - 1, dtype=np.int64)
    unknown[0::2], unknown[1::2] = lay_unknown, after
    starts = occ.groupby("iteration", sort=True)["start_ns"].min().to_numpy(np.float64)
    period = float(np.median(np.diff(starts))) if len(starts) > 1 else float(end[-1] - start[0])
    return Layout(edges, unknown, names, starts, period)


@dataclass
class Design:
    """Rows of the least squares: ``x`` (rows x unknowns), ``y`` (mW), the reads behind each row."""

    x: np.ndarray
    y: np.ndarray
    row_of_read: np.ndarray  # per read used: its row
    reads: np.ndarray  # the read values used (mW)
    times: np.ndarray  # per row: the instant it describes (ns)


def design(model: SensorModel, grid: Grid | None, lay: Layout, t_ns: np.ndarray, v: np.ndarray) -> Design | None:
    """The linear model of the reads (``t_ns``, ``v``, NaN dropped) inside the layout's span (None: no row)."""
    ok = ~np.isnan(v)
    t, v = np.asarray(t_ns, np.float64)[ok], v[ok]
    if model.kind == "instant":
        lo, hi = lay.span
        sel = (t >= lo) & (t <= hi)
        if not sel.any():
            return None
        t, v = t[sel], v[sel]
        return Design(lay.means(t, t), v, np.arange(len(v)), v, t)
    assert grid is not None, "a window or ina3221 model is read on a grid"
    if grid.at_reads:  # the update a read shows ended at the read
        ap = sensors.aperture_ns(model, grid)
        lo, hi = lay.span
        sel = (t - ap >= lo) & (t <= hi)
        if not sel.any():
            return None
        t, v = t[sel], v[sel]
        return Design(lay.means(t - ap, t), v, np.arange(len(v)), v, t)
    if grid.phase_known:
        return _grid_design(model, grid, lay, t, v)
    # the phase is unknown: iterations start at random phases of the grid, so each read is the mean
    # over phases of what it would be (one row per read)
    lo, hi = lay.span
    inside = (t >= lo + sensors.aperture_ns(model, grid) + 2 * grid.period_ns) & (t <= hi)
    t, v = t[inside], v[inside]
    parts = [
        _grid_design(model, Grid(grid.period_ns, grid.phase_ns + k * grid.period_ns / PHASES), lay, t, v)
        for k in range(PHASES)
    ]
    known = [p for p in parts if p is not None]
    if len(known) < len(parts):
        return None
    x = np.mean([p.x[p.row_of_read] for p in known], axis=0)
    return Design(x, v, np.arange(len(v)), v, t)


def _grid_design(model: SensorModel, grid: Grid, lay: Layout, t: np.ndarray, v: np.ndarray) -> Design | None:
    """One row per update of ``grid`` that a read saw (reads of one update averaged)."""
    lo, hi = lay.span
    ap = sensors.aperture_ns(model, grid)
    first = int(grid.index(np.array([lo + ap]))[0]) + 1  # first update whose sample lies in the span
    j = grid.index(t)
    sel = (j >= first) & (grid.at(j) <= hi)
    if not sel.any():
        return None
    t, v, j = t[sel], v[sel], j[sel]
    rows, row_of_read = np.unique(j, return_inverse=True)
    if model.kind == "ina3221" and model.averages > 1:
        u = sensors.update_times(grid, first, int(rows[-1]))
        samples = np.hstack([lay.means(u - ap, u), np.zeros((len(u), 1))])
        state = np.zeros(samples.shape[1])
        state[-1] = 1.0  # one more unknown: the output register before the first update
        x = sensors.ema(samples, model.averages, state)[rows - first]
    else:
        u = grid.at(rows)
        x = lay.means(u - ap, u)
    y = np.bincount(row_of_read, weights=v) / np.bincount(row_of_read)
    return Design(x, y, row_of_read, v, grid.at(rows))


@dataclass
class Fit:
    """Estimated unknowns (mW) and their covariance (jackknife, and the regularised posterior floor)."""

    names: list[str]
    beta: np.ndarray
    cov_jack: np.ndarray
    cov_post: np.ndarray
    blocks: int
    rss_reads: float  # residual sum of squares over the reads (model selection)
    n_reads: int
    replicates: np.ndarray  # jackknife estimates, one group left out each (groups x unknowns)
    timing: np.ndarray | None = None  # how far the estimates move over the timing's uncertainty (unknowns)

    def var(self, c: np.ndarray) -> np.ndarray:
        """Variance of each linear combination (rows of ``c``, over the unknowns): jackknife, or the posterior floor."""
        c = np.atleast_2d(c)
        c = np.hstack([c, np.zeros((len(c), len(self.beta) - c.shape[1]))])  # nothing on the sensor state
        jack = np.einsum("ij,jk,ik->i", c, self.cov_jack, c)
        post = np.einsum("ij,jk,ik->i", c, self.cov_post, c)
        timing = (c @ self.timing) ** 2 if self.timing is not None else 0.0
        return np.maximum(jack, post) + timing

    def bic(self, extra_params: int = 0) -> float:
        n = max(self.n_reads, 1)
        return n * np.log(max(self.rss_reads / n, 1e-12)) + (len(self.beta) + extra_params) * np.log(n)


def iterations_per_block(lay: Layout, memory_ns: float) -> int:
    """Consecutive iterations in one jackknife block: at least two sensor memories long."""
    return max(1, int(np.ceil(2 * memory_ns / max(lay.iter_period_ns, 1.0))))


def _blocks(d: Design, lay: Layout, memory_ns: float) -> np.ndarray:
    """Jackknife block of each row: runs of consecutive iterations at least two sensor memories long."""
    per = iterations_per_block(lay, memory_ns)
    it = np.clip(np.searchsorted(lay.iter_starts, d.times, side="right") - 1, 0, None)
    return it // per


def solve(d: Design, lay: Layout, memory_ns: float, jackknife: bool = True) -> Fit:
    """Prior-regularised least squares of ``d`` with a grouped jackknife over blocks of iterations."""
    x, y = d.x, d.y
    p = x.shape[1]
    names = lay.names + ([STATE] if p > len(lay.names) else [])
    scale = max(float(np.mean(np.abs(d.reads))), float(np.std(d.reads)), 1.0)
    prior_mean = np.full(p, float(np.mean(d.reads)))
    prior_sd = np.full(p, scale)
    drift = names.index(DRIFT)
    prior_mean[drift] = 0.0
    prior_sd[drift] = DRIFT_SHARE * scale / max((lay.span[1] - lay.span[0]) / 1e9, 1e-3)
    block = _blocks(d, lay, memory_ns)
    groups = int(min(len(np.unique(block)), max(MIN_BLOCKS, min(MAX_GROUPS, MAX_CELLS // (p * p)))))
    uniq, block = np.unique(block, return_inverse=True)
    block = block * groups // len(uniq)  # contiguous runs of blocks, as even as they come
    xtx = np.zeros((groups, p, p))
    xty = np.zeros((groups, p))
    order = np.argsort(block, kind="stable")
    cuts = np.searchsorted(block[order], np.arange(groups + 1))
    for g in range(groups):
        rows = order[cuts[g] : cuts[g + 1]]
        xtx[g] = x[rows].T @ x[rows]
        xty[g] = x[rows].T @ y[rows]
    a_all, b_all = xtx.sum(0), xty.sum(0)
    beta0 = np.linalg.lstsq(a_all + 1e-9 * np.trace(a_all) / p * np.eye(p), b_all, rcond=None)[0]
    dof = max(len(y) - p, 1)
    sigma2 = max(float(np.sum((y - x @ beta0) ** 2)) / dof, 1e-6)
    lam = np.full(p, sigma2 / prior_sd**2)
    a_reg = a_all + np.diag(lam)
    beta = np.linalg.solve(a_reg, b_all + lam * prior_mean)
    sigma2 = max(float(np.sum((y - x @ beta) ** 2)) / dof, 1e-6)
    cov_post = sigma2 * np.linalg.inv(a_reg)
    reps = np.zeros((0, p))
    cov_jack = np.zeros((p, p))
    if jackknife and groups > 1:
        reps = np.linalg.solve(a_reg[None] - xtx, (b_all + lam * prior_mean)[None, :, None] - xty[..., None])[..., 0]
        dev = reps - reps.mean(axis=0)
        cov_jack = (groups - 1) / groups * dev.T @ dev
    beta = _not_negative(a_all, b_all, lam, prior_mean, beta, len(lay.names) - 1)
    resid = d.reads - (x @ beta)[d.row_of_read]
    return Fit(names, beta, cov_jack, cov_post, groups, float(resid @ resid), len(d.reads), reps)


def _not_negative(
    a: np.ndarray, b: np.ndarray, lam: np.ndarray, mean: np.ndarray, beta: np.ndarray, powers: int
) -> np.ndarray:
    """The estimate with no negative power among the first ``powers`` unknowns (layers, gaps, between): those the
    fit puts below 0 are held at 0 and the rest re-fitted (an active set; the readings' total stays
    explained). The covariances stay the unconstrained fit's: a layer held at 0 keeps its wide CI."""
    held = np.zeros(len(beta), bool)
    for _ in range(20):
        below = (beta[:powers] < 0) & ~held[:powers]
        if not below.any():
            return beta
        held[:powers] |= below
        strong = np.where(held, 1e9 * (np.trace(a) / len(a) + 1.0), lam)
        beta = np.linalg.solve(a + np.diag(strong), b + strong * np.where(held, 0.0, mean))
    return beta
