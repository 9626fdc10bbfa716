"""Two runs side by side: per row, the difference B - A of time and energy with its Welch CI.

>>> comparison = compare(result_a, result_b)     # doctest: +SKIP
>>> comparison.table      # one row per (name, rail) found in both runs, columns COLUMNS
>>> comparison.warnings   # rows in one run only, different board states, estimated power ...

The difference of two means with unequal variances: ``d = mean_b - mean_a``, standard error
``se = sqrt(sd_a^2/n_a + sd_b^2/n_b)``, Welch-Satterthwaite degrees of freedom (rounded down, so the
interval errs wide), half-width ``t(conf, df) x se``. ``significant`` is true when the interval
excludes 0, <NA> when it cannot be said (fewer than 2 iterations in a run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from streamline_bridge import board
from streamline_bridge.energy import stats
from streamline_bridge.energy.table import EnergyResult

VERSION = 1
METRICS = ("time_ms", "energy_mj")
COLUMNS = ("order", "name", "rail", "n_a", "n_b") + tuple(
    f"{m}{suffix}" for m in METRICS for suffix in ("_a", "_b", "_diff", "_diff_ci", "_diff_pct", "_significant")
)


@dataclass
class Comparison:
    """The rows (``COLUMNS``, the order of run A), the warnings and what was compared."""

    table: pd.DataFrame
    warnings: list[str]
    meta: dict[str, Any] = field(default_factory=dict)


def welch(
    mean_a: np.ndarray,
    sd_a: np.ndarray,
    n_a: np.ndarray,
    mean_b: np.ndarray,
    sd_b: np.ndarray,
    n_b: np.ndarray,
    confidence: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    """``mean_b - mean_a`` and the half-width of its Welch confidence interval (NaN where n < 2)."""
    n_a, n_b = np.asarray(n_a, np.float64), np.asarray(n_b, np.float64)
    a = np.asarray(sd_a, np.float64) ** 2 / n_a
    b = np.asarray(sd_b, np.float64) ** 2 / n_b
    with np.errstate(invalid="ignore", divide="ignore"):
        den = a**2 / (n_a - 1) + b**2 / (n_b - 1)
        df = np.where(den > 0, (a + b) ** 2 / den, n_a + n_b - 2)
    ok = (n_a >= 2) & (n_b >= 2) & np.isfinite(df)
    t = stats.t_quantiles(np.where(ok, np.floor(df + 1e-9), 0).astype(np.int64), confidence)  # 1e-9: rounding
    half = np.where(ok, t * np.sqrt(a + b), np.nan)
    return np.asarray(mean_b, np.float64) - np.asarray(mean_a, np.float64), half


def _key_table(result: EnergyResult) -> pd.DataFrame:
    tab = result.table.assign(rail=result.table["rail"].astype(str))
    return tab.set_index(["name", "rail"])


def compare(result_a: EnergyResult, result_b: EnergyResult, confidence: float | None = None) -> Comparison:
    """Run B against run A, row by row (same ``by``); ``confidence`` defaults to run A's."""
    if result_a.meta["by"] != result_b.meta["by"]:
        raise ValueError(
            f"the runs are tables by {result_a.meta['by']} and by {result_b.meta['by']}: compare like with like"
        )
    confidence = confidence or result_a.meta["confidence"]
    a, b = _key_table(result_a), _key_table(result_b)
    both = [k for k in a.index if k in b.index]
    ta, tb = a.loc[both], b.loc[both]
    out = pd.DataFrame(
        {
            "order": np.arange(len(both)),
            "name": [k[0] for k in both],
            "rail": [k[1] for k in both],
            "n_a": ta["n"].to_numpy(),
            "n_b": tb["n"].to_numpy(),
        }
    )
    for m in METRICS:
        diff, half = welch(ta[m], ta[f"{m}_sd"], ta["n"], tb[m], tb[f"{m}_sd"], tb["n"], confidence)
        out[f"{m}_a"], out[f"{m}_b"] = ta[m].to_numpy(np.float64), tb[m].to_numpy(np.float64)
        out[f"{m}_diff"], out[f"{m}_diff_ci"] = diff, half
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"{m}_diff_pct"] = 100 * diff / out[f"{m}_a"]
        sig = pd.array(np.abs(diff) > half, dtype="boolean")
        sig[np.isnan(half)] = pd.NA
        out[f"{m}_significant"] = sig
    warnings = _warnings(result_a, result_b, a, b)
    meta = {
        "version": VERSION,
        "by": result_a.meta["by"],
        "confidence": confidence,
        "a": {
            "sources": result_a.meta.get("sources"),
            "iterations_used": result_a.meta.get("iterations_used"),
            "board": result_a.meta.get("board"),
        },
        "b": {
            "sources": result_b.meta.get("sources"),
            "iterations_used": result_b.meta.get("iterations_used"),
            "board": result_b.meta.get("board"),
        },
    }
    return Comparison(out[list(COLUMNS)], warnings, meta)


def _warnings(result_a: EnergyResult, result_b: EnergyResult, a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    out = []
    for label, (x, y) in (("A", (a, b)), ("B", (b, a))):
        only = [f"{n} ({r})" if r else n for n, r in x.index if (n, r) not in y.index]
        if only:
            out.append(
                f"{len(only)} row(s) only in run {label}, not compared: {', '.join(only[:5])}"
                + (" ..." if len(only) > 5 else "")
            )
    differ = board.differences(result_a.meta.get("board"), result_b.meta.get("board"))
    if differ:
        out.append("the runs' board states differ (energy depends on them): " + "; ".join(differ))
    for label, r in (("A", result_a), ("B", result_b)):
        if r.estimated:
            out.append(f"ESTIMATED power in run {label}: its energies are modelled, not measured")
        if r.meta.get("time_only"):
            out.append(f"run {label} has no power: energy not compared")
    return out
