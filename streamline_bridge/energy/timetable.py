"""The time table of markers without (overlapping) power: time per layer, group or iteration only.

The same :class:`EnergyResult` as :func:`streamline_bridge.energy.energy_table`, with ``meta["time_only"]``
set, no rails (``meta["rails"]`` empty, the ``rail`` column ""), the energy columns empty and ``share``
the share of the time. :func:`power_gap` says when a recording needs it (``report`` chooses by it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from streamline_bridge.energy import align, stats
from streamline_bridge.energy.intervals import GroupSpec, Intervals, find_intervals
from streamline_bridge.energy.table import COLUMNS, TABLE_VERSION, EnergyResult
from streamline_bridge.errors import InputError
from streamline_bridge.model import Recording, rail_arrays


def power_gap(recording: Recording) -> str | None:
    """Why the recording's power cannot give energies for its markers (None: it can be tried)."""
    if recording.power.empty or recording.power["power_mw"].isna().all():
        return "no power samples"
    times = align.placed_markers(recording, None)["time_ns"].dropna()
    if times.empty:
        return None  # no markers: energy_table says so
    lo, hi = int(times.min()), int(times.max())
    spans = [
        (t[~np.isnan(p)].min(), t[~np.isnan(p)].max())
        for t, p in rail_arrays(recording.power).values()
        if (~np.isnan(p)).any()
    ]
    if any(first <= hi and last >= lo for first, last in spans):
        return None
    first, last = min(s[0] for s in spans), max(s[1] for s in spans)
    return (
        f"the power record ({first / 1e9:.3f}..{last / 1e9:.3f} s) does not overlap the markers "
        f"({lo / 1e9:.3f}..{hi / 1e9:.3f} s, CLOCK_MONOTONIC_RAW)"
    )


def layer_intervals(recording: Recording, style: str, groups: GroupSpec, warmup: int) -> tuple[Intervals, int]:
    """The recording's layer intervals and its number of iterations; InputError naming the recording
    when it has no markers, no layer intervals, or no iteration left after ``warmup``.

    (The same checks as :func:`streamline_bridge.energy.energy_table`'s first step; one of the two
    should call the other once the energy core is split into steps.)
    """
    where = align.name_of(recording)
    if recording.markers.empty:
        raise InputError(where, "no markers: nothing says when the layers ran")
    iv = find_intervals(align.placed_markers(recording, None), style, groups)
    if iv.layers.empty:
        raise InputError(where, f"no layer intervals in the markers (style {iv.style})")
    n_iter = int(iv.iterations["iteration"].max()) + 1
    if warmup >= n_iter:
        raise InputError(where, f"--warmup {warmup} drops all {n_iter} iteration(s)")
    return iv, n_iter


def _occurrences(
    recording: Recording, by: str, style: str, groups: GroupSpec, warmup: int
) -> tuple[pd.DataFrame, dict, list[str]]:
    """One row per occurrence (name, iteration, seq, start_ns, end_ns ...) from ``warmup`` on, facts, warnings."""
    iv, n_iter = layer_intervals(recording, style, groups, warmup)
    layers = iv.layers.assign(duration_ns=iv.layers["end_ns"] - iv.layers["start_ns"])
    if by == "iteration":
        done = iv.iterations[iv.iterations["end_ns"].notna()]
        occ = pd.DataFrame(
            {
                "name": done["label"],
                "layer_type": "",
                "group": "",
                "iteration": done["iteration"],
                "seq": done["iteration"],
                "start_ns": done["start_ns"].astype(np.int64),
                "end_ns": done["end_ns"].astype(np.int64),
            }
        )
        occ["duration_ns"] = occ["end_ns"] - occ["start_ns"]
    elif by == "group":
        occ = (
            layers.groupby(["iteration", "group"], sort=False)
            .agg(
                seq=("seq", "min"),
                start_ns=("start_ns", "min"),
                end_ns=("end_ns", "max"),
                duration_ns=("duration_ns", "sum"),
            )
            .reset_index()
        )
        occ = occ.assign(name=occ["group"], layer_type="")
    else:
        occ = layers.drop(columns="name").rename(columns={"key": "name"})
    occ = occ[occ["iteration"] >= warmup].reset_index(drop=True)
    if occ.empty:
        raise InputError(align.name_of(recording), f"no complete {by} intervals after warm-up")
    facts = {"style": iv.style, "iteration_source": iv.iteration_source, "iterations": n_iter}
    return occ, facts, list(iv.warnings)


def _stats(frame: pd.DataFrame, keys: list[str], confidence: float) -> pd.DataFrame:
    g = frame.groupby(keys, sort=False)["time_ms"]
    out = pd.DataFrame({"n": g.count(), "time_ms": g.mean(), "time_ms_sd": g.std()}).reset_index()
    out["time_ms_ci"] = stats.ci_half_width(out["time_ms_sd"].to_numpy(), out["n"].to_numpy(), confidence)
    return out


def time_table(
    recording: Recording,
    by: str = "layer",
    style: str = "auto",
    groups: GroupSpec = None,
    warmup: int = 0,
    confidence: float = 0.95,
    reason: str = "no power",
) -> EnergyResult:
    """Time per layer (``by="layer"``), group or iteration, with statistics over iterations; no energy.

    ``reason`` (why there is no energy) is the first warning.
    """
    occ, facts, warnings = _occurrences(recording, by, style, groups, warmup)
    samples = occ.assign(rail="", time_ms=occ["duration_ns"] / 1e6, energy_mj=np.nan, dynamic_mj=np.nan)
    table = _stats(samples, ["name"], confidence)
    first = samples.groupby("name", sort=False).agg(
        seq=("seq", "min"),
        layer_type=("layer_type", "first"),
        group=("group", "first"),
        iteration=("iteration", "first"),
    )
    table = table.join(first, on="name").sort_values("seq", kind="stable").reset_index(drop=True)
    table["order"] = np.arange(len(table))
    table["iteration"] = pd.array(table["iteration"] if by == "iteration" else [pd.NA] * len(table), dtype="Int64")
    per_iteration = samples.groupby("iteration", sort=False)["time_ms"].sum().reset_index()
    totals = _stats(per_iteration.assign(rail=""), ["rail"], confidence)
    table["share"] = table["time_ms"] / table["time_ms"].sum()
    table = table.assign(
        rail="",
        under_period=False,
        estimated=False,
        n_needed=pd.array([pd.NA] * len(table), dtype="Int64"),
        sensor_period_ms=pd.array([pd.NA] * len(table), dtype="Float64"),
    )
    for column in COLUMNS:
        if column not in table:
            table[column] = np.nan
    meta = {
        "version": TABLE_VERSION,
        "by": by,
        "baseline": "none",
        **facts,
        "warmup": warmup,
        "iterations_used": int(occ["iteration"].nunique()),
        "confidence": confidence,
        "precision": None,
        "estimated": False,
        "time_only": True,
        "sources": list(recording.meta.sources),
        "clock_base_ns": recording.meta.clock_base_ns,
        "rails": {},
    }
    return EnergyResult(table[list(COLUMNS)], totals, samples, [f"time only: {reason}", *warnings], meta)
