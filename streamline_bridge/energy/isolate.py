"""The isolation method: each layer's settled power, measured while it ran alone in a loop.

A sensor that remembers (an INA3221 averaging over ~430 ms, a 100 ms window) cannot tell apart
layers of a few ms in sequence. Run alone in a loop for longer than the sensor's memory, a
layer's power settles, and the sensor reads it. The adapters' :func:`annotate.frameworks.run_isolated`
marks each loop with one interval on the channel named ``isolate``; here, for each such interval
and rail:

* the first ``SETTLE_CONSTANTS`` x the rail's memory (:attr:`SensorModel.memory_ns`; for a model
  left to the data, its update period), plus two sampling periods, is the sensor settling and is
  left out;
* the rest is cut into batches at least one memory long (at most ``MAX_BATCHES``), and the settled
  power is the mean of the batch means with a Student-t CI over them (batch means: readings one
  memory apart are nearly independent), widened by half the reading's resolution;
* fewer than two batches, or a loop shorter than its settling: ``resolved = False``.

Energy per invocation = settled power x the layer's time in sequence (the sequence table's
``time_ms``), its CI from both. :func:`choose` builds the table of a ``--method``: ``sequence``,
``isolate``, or ``auto`` (the sequence where its rows are ``resolved``, isolation where not);
:func:`side_by_side` compares the two (``--method both``). Pure functions on DataFrames.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from annotate.conventions import ISOLATE_CHANNEL, split_layer_text
from streamline_bridge.energy import stats
from streamline_bridge.energy.align import placed_markers
from streamline_bridge.model import Recording, rail_arrays
from streamline_bridge.sensor_model import SensorModel

METHODS = ("auto", "sequence", "isolate", "both")
SETTLE_CONSTANTS = 5  # time constants of the sensor's memory left out at the start of a loop
MIN_BATCHES, MAX_BATCHES = 5, 20  # batches a loop is made long enough for / at most cut into
MIN_MEASURE_NS = 50_000_000  # the shortest measured part of a loop (instant sensors; a sampler stall leaves enough)
ISOLATE_COLUMNS = (
    "order",
    "name",
    "layer_type",
    "group",
    "rail",
    "n",
    "time_ms",
    "time_ms_ci",
    "power_w",
    "power_w_ci",
    "energy_mj",
    "energy_mj_ci",
    "dynamic_mj",
    "method",
    "resolved",
    "sensor_model",
    "settle_ms",
    "measured_ms",
)


def memory_ns(model: SensorModel | None, update_ns: int | None) -> int:
    """How long a reading remembers: the model's memory, else (model left to the data) the update period."""
    return model.memory_ns if model is not None else int(update_ns or 0)


def loop_ns(model: SensorModel | None, update_ns: int | None) -> int:
    """How long a layer must run alone for this rail: settling, then ``MIN_BATCHES`` memories (at least 50 ms)."""
    memory = memory_ns(model, update_ns)
    step = max(memory, (model.update_ns or 0) if model is not None else 0)
    return SETTLE_CONSTANTS * memory + max(MIN_BATCHES * step, MIN_MEASURE_NS)


def loop_seconds(rails: Iterable[tuple[SensorModel | None, int | None]]) -> float:
    """The loop length for every rail at once: the longest :func:`loop_ns` of (model, update period) pairs."""
    return max((loop_ns(m, u) for m, u in rails), default=MIN_MEASURE_NS) / 1e9


def isolation_intervals(rec: Recording) -> pd.DataFrame:
    """The loops of the isolation phase: ``name``, ``layer_type``, ``start_ns``, ``end_ns`` (texts on
    the ``isolate`` channel, each closed by the next text or end on it)."""
    m = placed_markers(rec, None)
    m = m[(m["channel_name"].fillna("") == ISOLATE_CHANNEL) & m["kind"].isin(["text", "end"]) & m["time_ns"].notna()]
    m = m.sort_values(["pid", "tid", "time_ns"], kind="stable")
    end = m.groupby(["pid", "tid"], sort=False)["time_ns"].shift(-1)
    opened = (m["kind"] == "text") & (m["text"].fillna("") != "") & end.notna()
    text = m["text"][opened].astype(str)
    return pd.DataFrame(
        {
            "name": np.array([split_layer_text(x)[0] for x in text], dtype=object),
            "layer_type": np.array([split_layer_text(x)[1] for x in text], dtype=object),
            "start_ns": m["time_ns"][opened].to_numpy(np.int64),
            "end_ns": end[opened].to_numpy(np.int64),
        }
    )


def without_isolation(rec: Recording) -> Recording:
    """``rec`` without the markers of the ``isolate`` channel: the sequence the energy table reads."""
    keep = rec.markers["channel_name"].fillna("") != ISOLATE_CHANNEL
    keep &= ~((rec.markers["kind"] == "name_group") & (rec.markers["group_name"].fillna("") == ISOLATE_CHANNEL))
    return Recording(rec.markers[keep].reset_index(drop=True), rec.power, rec.meta)


def settled_power(
    t: np.ndarray, p: np.ndarray, start: int, end: int, settle: int, batch: int, confidence: float = 0.95
) -> tuple[float, float, int]:
    """(mean mW, CI half-width mW, batches) of the readings in ``[start + settle, end]``, in batches of
    at least ``batch`` ns; CI NaN with fewer than two batches."""
    lo, hi = np.searchsorted(t, start + settle), np.searchsorted(t, end)  # readings before the loop ends
    tt, pp = t[lo:hi], p[lo:hi]
    ok = ~np.isnan(pp)
    tt, pp = tt[ok], pp[ok]
    if len(pp) == 0:
        return float("nan"), float("nan"), 0
    span = end - (start + settle)
    k = int(min(MAX_BATCHES, len(pp), span // max(batch, 1)))
    if k < 2:
        return float(pp.mean()), float("nan"), max(k, 1)
    which = np.minimum(((tt - (start + settle)) * k) // max(span, 1), k - 1)
    counts = np.bincount(which, minlength=k)
    means = np.bincount(which, pp, minlength=k)[counts > 0] / counts[counts > 0]
    k = len(means)
    if k < 2:
        return float(pp.mean()), float("nan"), k
    steps = np.diff(np.unique(pp))
    resolution = float(steps.min()) / 2 if len(steps) else 0.0
    ci = float(stats.ci_half_width(np.array([means.std(ddof=1)]), np.array([k]), confidence)[0])
    return float(means.mean()), float(np.hypot(ci, resolution)), k


def isolate_table(rec: Recording, sequence: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """One row per (layer, rail) of ``sequence`` that has an isolation loop: the sequence row's columns
    with the isolation's power and energy, and :data:`ISOLATE_COLUMNS`."""
    loops = isolation_intervals(rec)
    loops = loops.drop_duplicates("name", keep="last").set_index("name")
    columns = list(dict.fromkeys([*sequence.columns, *ISOLATE_COLUMNS]))
    if loops.empty:
        return pd.DataFrame(columns=columns)
    arrays = rail_arrays(rec.power)
    idle = rec.meta.extra.get("idle_mw", {})
    rows = []
    for row in sequence.itertuples(index=False):
        name = row.name if row.name in loops.index else str(row.name).rsplit("#", 1)[0]
        if name not in loops.index or row.rail not in arrays:
            continue
        info = rec.meta.rails.get(row.rail)
        model = info.sensor_model if info else None
        memory = memory_ns(model, info.update_period_ns if info else None)
        t, p = arrays[row.rail]
        start, end = int(loops.at[name, "start_ns"]), int(loops.at[name, "end_ns"])
        spacing = int(np.median(np.diff(t))) if len(t) > 1 else 0
        settle = SETTLE_CONSTANTS * memory + 2 * spacing  # and the read in progress at the start
        batch = max(memory, (model.update_ns or 0) if model is not None else 0, 2 * spacing)
        mw, ci, k = settled_power(t, p, start, end, min(settle, end - start), batch, confidence)
        time_ms, time_ci = float(row.time_ms), float(getattr(row, "time_ms_ci", np.nan))
        energy = mw / 1e3 * time_ms
        energy_ci = float(np.hypot(ci / 1e3 * time_ms, mw / 1e3 * np.nan_to_num(time_ci)))
        base = idle.get(row.rail)
        dynamic = np.nan if base is None else (mw - base) / 1e3 * time_ms
        rows.append(
            {
                **row._asdict(),
                "n": k,
                "time_ms": time_ms,
                "time_ms_ci": time_ci,
                "power_w": mw / 1e3,
                "power_w_ci": ci / 1e3,
                "energy_mj": energy,
                "energy_mj_sd": np.nan,
                "energy_mj_ci": energy_ci,
                "dynamic_mj": dynamic,
                "dynamic_mj_sd": np.nan,
                "dynamic_w": np.nan if base is None else dynamic / time_ms,
                "dynamic_mj_ci": energy_ci if base is not None else np.nan,
                "under_period": False,
                "n_needed": pd.NA,
                "method": "isolate",
                "resolved": bool(np.isfinite(ci) and settle <= end - start),
                "sensor_model": model.spec if model else "",
                "settle_ms": settle / 1e6,
                "measured_ms": max(0, end - start - settle) / 1e6,
            }
        )
    return pd.DataFrame(rows, columns=columns)


def _resolved(sequence: pd.DataFrame) -> pd.Series:
    """The sequence's ``resolved`` column (every row resolved when it has none)."""
    if "resolved" in sequence.columns:
        return sequence["resolved"].fillna(False).astype(bool)
    return pd.Series(True, index=sequence.index)


def to_isolate(sequence: pd.DataFrame, seconds: float, budget_s: float) -> list[str]:
    """``auto``'s loops: the layers with a row the sequence does not resolve (none without a ``resolved``
    column), longest first, as many as ``budget_s`` holds at ``seconds`` each (at least one)."""
    unresolved = sequence[~_resolved(sequence).to_numpy(bool)]
    longest = unresolved.groupby("name", sort=False)["time_ms"].max().sort_values(ascending=False, kind="stable")
    names = list(dict.fromkeys(str(n).rsplit("#", 1)[0] for n in longest.index))
    return names[: max(1, int(budget_s // max(seconds, 1e-9)))]


def choose(sequence: pd.DataFrame, isolated: pd.DataFrame, method: str) -> tuple[pd.DataFrame, list[str]]:
    """The table of ``method`` (``sequence``, ``isolate`` or ``auto``) and notes saying which rows came from where.

    ``auto``: a sequence row that is not ``resolved`` is replaced by its isolation row when there
    is one. Every row's ``method`` column says which method made it.
    """
    if method not in ("sequence", "isolate", "auto"):
        raise ValueError(f"method must be sequence, isolate or auto, not {method!r}")
    seq = sequence.copy()
    if "method" not in seq.columns:
        seq["method"] = "sequence"
    if method == "sequence":
        return seq, []
    key = ["name", "rail"]
    have = pd.MultiIndex.from_frame(isolated[key]) if len(isolated) else pd.MultiIndex.from_tuples([], names=key)
    in_iso = pd.MultiIndex.from_frame(seq[key]).isin(have)
    replace = in_iso if method == "isolate" else in_iso & ~_resolved(seq).to_numpy(bool)
    notes = []
    if method == "isolate" and (~in_iso).any():
        notes.append(f"{int((~in_iso).sum())} row(s) had no isolation loop: left in sequence")
    unresolved = int((~_resolved(seq)).sum())
    if method == "auto" and (unresolved or len(isolated)):  # nothing to say when all is resolved, no loop run
        notes.append(
            f"method auto: {int(replace.sum())} of {len(seq)} rows by isolation (not resolved in "
            f"sequence by their rails' sensor models), {len(seq) - int(replace.sum())} in sequence"
            + (
                f"; {unresolved - int(replace.sum())} unresolved row(s) had no isolation loop "
                "(profile --method isolate loops every layer)"
                if unresolved > replace.sum()
                else ""
            )
        )
    iso = isolated.set_index(key)
    if not replace.any():  # the sequence's table as it is (no isolation-only columns)
        return seq, notes
    picked = iso.loc[pd.MultiIndex.from_frame(seq.loc[replace, key])].reset_index()
    out = pd.concat([seq[~replace], picked], ignore_index=True)
    rank = {r: i for i, r in enumerate(dict.fromkeys(seq["rail"]))}
    out = out.iloc[np.lexsort((out["rail"].map(rank).to_numpy(), out["order"].to_numpy()))].reset_index(drop=True)
    if "share" in out.columns:
        out["share"] = out["energy_mj"] / out.groupby("rail", sort=False)["energy_mj"].transform("sum")
    return out, notes


def side_by_side(sequence: pd.DataFrame, isolated: pd.DataFrame) -> pd.DataFrame:
    """``--method both``: each (layer, rail) with both energies and CIs, ``disagree`` when the CIs do not overlap."""
    cols = ["name", "rail", "energy_mj", "energy_mj_ci"]
    seq = sequence[["order", *cols]].copy()
    seq["resolved"] = _resolved(sequence).to_numpy(bool)
    out = seq.merge(isolated[[*cols, "resolved"]], on=["name", "rail"], how="left", suffixes=("_sequence", "_isolate"))
    gap = (out["energy_mj_sequence"] - out["energy_mj_isolate"]).abs()
    reach = out["energy_mj_ci_sequence"].fillna(np.inf) + out["energy_mj_ci_isolate"].fillna(np.inf)
    out["disagree"] = (gap > reach).fillna(False).astype(bool)
    return out.sort_values("order", kind="stable").reset_index(drop=True)
