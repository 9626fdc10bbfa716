"""Rows of the energy table: per occurrence (samples), then per name and rail, by one method each.

``integrate``: each occurrence's energy is the integral of the rail's readings over it; the row is
the mean over iterations with a Student-t CI of their scatter. ``sequence``: the row's power comes
from the least-squares fit through the sensor model (:mod:`energy.attribute`), energy = that power x
the row's measured time; its CI comes from the fit. ``isolate`` rows (each layer measured alone, in a
loop) are merged in by :func:`streamline_bridge.energy.isolate.choose`. Every statistic of a row uses one set of iterations.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from streamline_bridge.energy import integrate, stats
from streamline_bridge.energy.attribute import MIN_BLOCKS, Fit, Layout
from streamline_bridge.energy.intervals import Intervals

STAT_COLUMNS = ("time_ms", "energy_mj", "dynamic_mj")
MW_MS_TO_MJ = 1e-3


def occurrences(iv: Intervals, by: str, warmup: int) -> pd.DataFrame:
    """What rows are made of: layer occurrences, or iterations' spans, from iteration ``warmup`` on."""
    if by == "iteration":
        it = iv.iterations[iv.iterations["end_ns"].notna()]
        occ = pd.DataFrame(
            {
                "name": it["label"],
                "layer_type": "",
                "group": "",
                "iteration": it["iteration"],
                "start_ns": it["start_ns"].astype(np.int64),
                "end_ns": it["end_ns"].astype(np.int64),
            }
        )
        occ["seq"] = np.arange(len(occ))
    else:
        occ = iv.layers.rename(columns={"name": "layer", "key": "name"})
    return occ[occ["iteration"] >= warmup].reset_index(drop=True)


def rail_samples(
    occ: pd.DataFrame,
    rail: str,
    energy: np.ndarray,
    idle_mw: float | None,
    baseline: str,
    by: str,
    coef: np.ndarray | None = None,
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Time, energy and dynamic energy of every occurrence on one rail; per-sample fit coefficients.

    An occurrence without energy has no time either (one iteration set per row). ``by="group"`` sums
    the layers of each group per iteration (any missing: unknown), coefficients too.
    """
    dur = (occ["end_ns"] - occ["start_ns"]).to_numpy(np.float64)
    energy = np.asarray(energy, np.float64)
    known = ~np.isnan(energy)
    dynamic = (
        energy - idle_mw * dur * integrate.NS_MW_TO_MJ
        if baseline == "idle" and idle_mw is not None
        else np.full(len(occ), np.nan)
    )
    samples = occ.assign(rail=rail, time_ms=np.where(known, dur / 1e6, np.nan), energy_mj=energy, dynamic_mj=dynamic)
    if by != "group":
        return samples, coef
    keys = ["rail", "iteration", "group"]
    g = samples.groupby(keys, sort=False)
    sums = g[list(STAT_COLUMNS)].sum(min_count=1)
    sums["energy_mj"] = sums["energy_mj"].where(g["energy_mj"].count() == g.size())
    sums["time_ms"] = sums["time_ms"].where(sums["energy_mj"].notna())
    out = pd.concat(
        [g.agg(seq=("seq", "min"), start_ns=("start_ns", "min"), end_ns=("end_ns", "max")), sums], axis=1
    ).reset_index()
    out["name"] = out["group"]
    out["layer_type"] = ""
    if coef is not None:
        member = g.ngroup().to_numpy()
        summed = np.zeros((len(out), coef.shape[1]))
        np.add.at(summed, member, coef)
        coef = summed
    return out, coef


def summarise(samples: pd.DataFrame, keys: list[str], confidence: float) -> pd.DataFrame:
    """n, mean, sd and CI half-width of every statistic per ``keys`` (Student t over iterations)."""
    g = samples.groupby(keys, sort=False, observed=True)
    out = g.agg(
        n=("energy_mj", "count"),
        **{f"{c}": (c, "mean") for c in STAT_COLUMNS},
        **{f"{c}_sd": (c, "std") for c in STAT_COLUMNS},
    ).reset_index()
    for c in STAT_COLUMNS:
        out[f"{c}_ci"] = stats.ci_half_width(out[f"{c}_sd"].to_numpy(), out["n"].to_numpy(), confidence)
    return out


def sequence_rows(
    rows: pd.DataFrame, coef: np.ndarray, fit: Fit, idle_mw: float | None, baseline: str, confidence: float
) -> None:
    """Energy of ``rows`` (one rail, with ``n`` and ``time_ms``) from the fit, in place.

    ``coef``: per row, the mean ms per iteration spent in each unknown. The CI is the fit's, at
    ``t(blocks - 1)``; ``_sd`` is the equivalent per-iteration sd (``se x sqrt(n)``) so that
    ``n_needed`` reads the same for both methods.
    """
    mean = coef @ fit.beta[: coef.shape[1]] * MW_MS_TO_MJ
    se = np.sqrt(fit.var(coef)) * MW_MS_TO_MJ
    t = stats.t_quantile(max(fit.blocks - 1, 1), confidence)
    n = rows["n"].to_numpy(np.float64)
    ci = t * se
    rows["energy_mj"] = mean
    rows["energy_mj_ci"] = ci
    rows["energy_mj_sd"] = se * np.sqrt(n)
    if baseline == "idle" and idle_mw is not None:
        rows["dynamic_mj"] = mean - idle_mw * rows["time_ms"].to_numpy(np.float64) * MW_MS_TO_MJ
        rows["dynamic_mj_ci"] = rows["energy_mj_ci"]
        rows["dynamic_mj_sd"] = rows["energy_mj_sd"]


def resolved(rows: pd.DataFrame, blocks: int | None, within: float) -> np.ndarray:
    """Rows whose CI is at most ``within`` x their value (a fit also needs MIN_BLOCKS jackknife groups)."""
    e = rows["energy_mj"].to_numpy(np.float64)
    ci = rows["energy_mj_ci"].to_numpy(np.float64)
    ok = np.isfinite(e) & ((rows["n"].to_numpy() < 2) | (ci <= within * np.abs(e)))
    return ok & (blocks is None or blocks >= MIN_BLOCKS)


def total_of(rows: pd.DataFrame, coef: np.ndarray | None, fit: Fit | None, confidence: float) -> tuple[float, float]:
    """Per-iteration total of a rail's rows (mean, CI): integrated rows' variances plus the fit's of the rest."""
    seq = (rows["method"] == "sequence").to_numpy()
    e = rows["energy_mj"].to_numpy(np.float64)
    ci = rows["energy_mj_ci"].to_numpy(np.float64)
    z = stats.t_quantile(10**6, confidence)
    var = float(np.nansum((ci[~seq] / z) ** 2))
    if fit is not None and coef is not None and seq.any():
        var += float(fit.var(coef[seq].sum(axis=0, keepdims=True))[0]) * MW_MS_TO_MJ**2
    return float(np.nansum(e)), z * np.sqrt(var)


def fit_coefficients(lay: Layout, samples: pd.DataFrame) -> np.ndarray:
    """ms per unknown of every sample's [start, end]."""
    return lay.time_in(samples["start_ns"].to_numpy(np.float64), samples["end_ns"].to_numpy(np.float64))
