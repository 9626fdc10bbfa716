"""Combine the in-sequence table with layers measured alone (the isolation method).

The isolation method runs each layer by itself in a loop until the rail's reading has settled and
measures its power there (``isolated``: one row per ``name`` and ``rail`` with ``power_w``,
``power_w_ci``, ``n`` and ``sensor_model``). Energy per invocation = that power x the layer's
measured in-sequence time (``time_ms`` of the sequence row). :func:`with_isolated` puts such rows in
an :class:`EnergyResult`:

``isolate``  every row that has an isolated power is replaced by it;
``auto``     only rows the sequence did not resolve are replaced;
``both``     isolated rows are added beside the sequence rows (column ``method``), and a warning
             names the rows where the two disagree beyond their CIs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import numpy as np
import pandas as pd

from streamline_bridge.energy.table import COLUMNS, EnergyResult

Mode = Literal["isolate", "auto", "both"]
ISOLATED_COLUMNS = ("name", "rail", "power_w", "power_w_ci", "n", "sensor_model")


def isolated_rows(table: pd.DataFrame, isolated: pd.DataFrame) -> pd.DataFrame:
    """The table's rows with an isolated power, re-made from it (``method`` = ``isolate``)."""
    missing = set(ISOLATED_COLUMNS) - set(isolated.columns)
    if missing:
        raise ValueError(f"isolated powers need the columns {', '.join(sorted(missing))}")
    iso = isolated.set_index(["name", "rail"])
    rows = table[pd.MultiIndex.from_frame(table[["name", "rail"]]).isin(iso.index)].copy()
    got = iso.loc[pd.MultiIndex.from_frame(rows[["name", "rail"]])]
    time_ms = rows["time_ms"].to_numpy(np.float64)
    rows["power_w"] = got["power_w"].to_numpy(np.float64)
    rows["power_w_ci"] = got["power_w_ci"].to_numpy(np.float64)
    rows["energy_mj"] = rows["power_w"] * time_ms
    rows["energy_mj_ci"] = rows["power_w_ci"] * time_ms
    rows["energy_mj_sd"] = np.nan
    idle_w = (rows["energy_mj"] - rows["dynamic_mj"]) / time_ms  # unchanged by the method: P_idle
    rows["dynamic_mj"] = rows["energy_mj"] - idle_w * time_ms
    rows["dynamic_w"] = rows["dynamic_mj"] / time_ms
    rows["dynamic_mj_ci"] = rows["energy_mj_ci"]
    rows["n"] = got["n"].to_numpy()
    rows["sensor_model"] = got["sensor_model"].to_numpy()
    rows["method"] = "isolate"
    rows["resolved"] = np.isfinite(rows["energy_mj"]) & (rows["power_w_ci"] <= 0.1 * rows["power_w"].abs())
    rows["n_needed"] = pd.array([pd.NA] * len(rows), dtype="Int64")
    return rows


def with_isolated(result: EnergyResult, isolated: pd.DataFrame, mode: Mode = "auto") -> EnergyResult:
    """``result`` with isolated powers merged in as ``mode`` says (see the module docstring)."""
    if mode not in ("isolate", "auto", "both"):
        raise ValueError(f"mode must be isolate, auto or both, not {mode!r}")
    table = result.table
    iso = isolated_rows(table, isolated)
    warnings = list(result.warnings)
    key = ["name", "rail"]
    if mode == "both":
        seq = table.set_index(key).loc[pd.MultiIndex.from_frame(iso[key])]
        apart = (seq["energy_mj"].to_numpy() - iso["energy_mj"].to_numpy())
        width = np.nan_to_num(seq["energy_mj_ci"].to_numpy()) + np.nan_to_num(iso["energy_mj_ci"].to_numpy())
        off = iso.loc[np.abs(apart) > width, key]
        if len(off):
            warnings.append(f"sequence and isolate disagree beyond their CIs for {len(off)} row(s): "
                            + ", ".join(f"{n} ({r})" for n, r in off.itertuples(index=False, name=None)))
        out = pd.concat([table, iso]).sort_values(["order", "method"], kind="stable")
    else:
        replace_rows = iso if mode == "isolate" else iso[~table.set_index(key).loc[
            pd.MultiIndex.from_frame(iso[key]), "resolved"].to_numpy(bool)]
        keep = ~pd.MultiIndex.from_frame(table[key]).isin(pd.MultiIndex.from_frame(replace_rows[key]))
        out = pd.concat([table[keep], replace_rows]).sort_values(["order"], kind="stable")
    out = out.reset_index(drop=True)[list(COLUMNS)]
    with np.errstate(invalid="ignore", divide="ignore"):
        share_base = out[out["method"] == out.groupby(["name", "rail"])["method"].transform("first")]
        total = share_base.groupby("rail")["energy_mj"].sum()
        out["share"] = out["energy_mj"] / out["rail"].map(total)
    return replace(result, table=out, warnings=warnings)
