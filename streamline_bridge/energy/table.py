"""The per-layer (or per-group, per-iteration) energy table of a recording: the Python API.

>>> result = energy_table(recording, by="layer")      # doctest: +SKIP
>>> result.table        # long DataFrame: one row per (layer, rail), columns in docs/energy-table.md
>>> result.warnings     # what the reader must know (estimated power, layers under the sensor period ...)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from streamline_bridge.energy import align, integrate, stats
from streamline_bridge.energy.intervals import GroupSpec, Intervals, find_intervals
from streamline_bridge.errors import InputError
from streamline_bridge.model import Recording, rail_arrays
from streamline_bridge.power.period import change_times, period_from_changes

TABLE_VERSION = 1
BY = ("layer", "group", "iteration")
BASELINES = ("idle", "none")
SENSORS = ("auto", "held", "instant")
HELD_FACTOR = 2  # values changing on average at most every 2nd sample are a sensor's held updates
STAT_COLUMNS = ("time_ms", "energy_mj", "dynamic_mj")
COLUMNS = (
    "order", "name", "layer_type", "group", "iteration", "rail", "n",
    "time_ms", "time_ms_sd", "time_ms_ci",
    "energy_mj", "energy_mj_sd", "energy_mj_ci",
    "dynamic_mj", "dynamic_mj_sd", "dynamic_mj_ci",
    "power_w", "dynamic_w", "share", "sensor_period_ms", "under_period", "n_needed", "estimated",
)


@dataclass
class EnergyResult:
    """The table (``COLUMNS``, one row per name and rail, execution order), totals, samples and warnings."""

    table: pd.DataFrame
    totals: pd.DataFrame  # one row per rail: statistics of the per-iteration sum over the rows
    samples: pd.DataFrame  # per occurrence and rail (rail-major, same occurrence order for every rail)
    warnings: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def estimated(self) -> bool:
        """True when any rail's power is a model rather than a measurement."""
        return bool(self.meta.get("estimated"))


@dataclass
class _RailFacts:
    period_ns: int | None
    period_source: str
    idle_mw: float | None
    held: bool  # values are a windowed sensor's held updates (integrate.held_windows)
    samples: int  # valid (not NaN) samples


def _median_spacing(t: np.ndarray, at_most: int = 100_000) -> int | None:
    """Median interval between samples, from at most ``at_most`` evenly spread pairs (None: < 2 samples)."""
    if len(t) < 2:
        return None
    i = np.unique(np.linspace(0, len(t) - 2, min(at_most, len(t) - 1)).astype(np.int64))
    return int(np.median(t[i + 1] - t[i]))


def _rail_facts(rec: Recording, name: str, t: np.ndarray, p: np.ndarray, sensor: str) -> _RailFacts:
    info = rec.meta.rails.get(name)
    spacing = _median_spacing(t)
    period, source = (info.update_period_ns, "measured") if info and info.update_period_ns else (None, "")
    valid = p[~np.isnan(p)]
    n_changes = int(np.count_nonzero(valid[1:] != valid[:-1]))
    held = sensor == "held" or (sensor == "auto" and n_changes >= 2 and n_changes * HELD_FACTOR <= len(valid))
    if period is None:
        period, source = period_from_changes(change_times(t, p)), "estimated from value changes"
    if spacing is not None and (period is None or spacing > period):
        period, source = spacing, "sampling period"
    idle = rec.meta.extra.get("idle_mw", {}).get(name)
    return _RailFacts(period, source, None if idle is None else float(idle), held, len(valid))


def _occurrences(iv: Intervals, by: str, warmup: int) -> pd.DataFrame:
    """What is integrated: layer occurrences, or iterations' spans, from iteration ``warmup`` on."""
    if by == "iteration":
        it = iv.iterations[iv.iterations["end_ns"].notna()]
        occ = pd.DataFrame({"name": it["label"], "layer_type": "", "group": "", "iteration": it["iteration"],
                            "start_ns": it["start_ns"].astype(np.int64), "end_ns": it["end_ns"].astype(np.int64)})
        occ["seq"] = np.arange(len(occ))
    else:
        occ = iv.layers.rename(columns={"name": "layer", "key": "name"})
    return occ[occ["iteration"] >= warmup].reset_index(drop=True)


def _sample_table(occ: pd.DataFrame, rails: dict[str, integrate.Rail], facts: dict[str, _RailFacts],
                  baseline: str, by: str) -> pd.DataFrame:
    """Time, energy and dynamic energy of every occurrence on every rail (long)."""
    start = occ["start_ns"].to_numpy(np.int64)
    end = occ["end_ns"].to_numpy(np.int64)
    dur = (end - start).astype(np.float64)
    parts = []
    for name, rail in rails.items():
        energy = integrate.energy_between(rail, start, end)
        idle = facts[name].idle_mw
        dynamic = energy - idle * dur * integrate.NS_MW_TO_MJ if baseline == "idle" and idle is not None \
            else np.full(len(occ), np.nan)
        parts.append(occ.assign(rail=name, time_ms=dur / 1e6, energy_mj=energy, dynamic_mj=dynamic))
    samples = pd.concat(parts, ignore_index=True)
    if by == "group":
        g = samples.groupby(["rail", "iteration", "group"], sort=False)
        sums = g[list(STAT_COLUMNS)].sum(min_count=1)
        sums["energy_mj"] = sums["energy_mj"].where(g["energy_mj"].count() == g.size())  # any NaN: unknown
        samples = pd.concat([g.agg(seq=("seq", "min"), start_ns=("start_ns", "min"), end_ns=("end_ns", "max")),
                             sums], axis=1).reset_index()
        samples["name"] = samples["group"]
        samples["layer_type"] = ""
    return samples


def _summarise(samples: pd.DataFrame, keys: list[str], confidence: float) -> pd.DataFrame:
    """n, mean, sd and CI half-width of every statistic per ``keys``."""
    g = samples.groupby(keys, sort=False, observed=True)
    out = g.agg(n=("energy_mj", "count"), **{f"{c}": (c, "mean") for c in STAT_COLUMNS},
                **{f"{c}_sd": (c, "std") for c in STAT_COLUMNS}).reset_index()
    for c in STAT_COLUMNS:
        out[f"{c}_ci"] = stats.ci_half_width(out[f"{c}_sd"].to_numpy(), out["n"].to_numpy(), confidence)
    return out


def energy_table(recording: Recording, by: str = "layer", baseline: str = "idle", style: str = "auto",
                 groups: GroupSpec = None, warmup: int = 0, confidence: float = 0.95,
                 precision: float = 0.05, sensor: str = "auto") -> EnergyResult:
    """Time and energy per layer (``by="layer"``), group or iteration, with statistics over iterations.

    ``baseline="idle"`` also gives the energy above the idle power that ``record`` measured
    (``meta.extra["idle_mw"]``). ``warmup`` iterations are dropped first. ``precision`` is the
    relative CI half-width that ``n_needed`` (iterations needed) aims at. ``sensor``: ``held`` treats
    each rail's values as a windowed sensor's updates, each the mean power since the previous one
    (:func:`integrate.held_windows`); ``instant`` as instantaneous samples; ``auto`` picks ``held``
    where values change at most every other sample.
    """
    if by not in BY:
        raise ValueError(f"by must be one of {BY}, not {by!r}")
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, not {baseline!r}")
    if sensor not in SENSORS:
        raise ValueError(f"sensor must be one of {SENSORS}, not {sensor!r}")
    where = align.name_of(recording)
    if recording.markers.empty:
        raise InputError(where, "no markers: nothing says when the layers ran")
    if recording.power.empty:
        raise InputError(where, "no power samples: give a power log (--power) or a run folder")
    iv = find_intervals(align.placed_markers(recording, None), style, groups)
    if iv.layers.empty:
        raise InputError(where, f"no layer intervals in the markers (style {iv.style})")
    n_iter = int(iv.iterations["iteration"].max()) + 1
    if warmup >= n_iter:
        raise InputError(where, f"--warmup {warmup} drops all {n_iter} iteration(s)")
    occ = _occurrences(iv, by, warmup)
    if occ.empty:
        raise InputError(where, f"no complete {by} intervals after warm-up")
    warnings = list(iv.warnings)
    arrays = rail_arrays(recording.power)
    rails, facts = {}, {}
    for name, (t, p) in arrays.items():
        if np.isnan(p).all():
            warnings.append(f"rail {name} has no valid power sample and is left out")
            continue
        facts[name] = _rail_facts(recording, name, t, p, sensor)
        rails[name] = integrate.prepare(t, p, facts[name].period_ns if facts[name].held else None)
    if not rails:
        raise InputError(where, "no valid power samples on any rail")
    spans = {n: (r.first_ns, r.last_ns) for n, r in rails.items()}
    warnings += align.check_overlap(recording, occ["start_ns"].to_numpy(np.int64),
                                    occ["end_ns"].to_numpy(np.int64), spans)
    samples = _sample_table(occ, rails, facts, baseline, by)
    table = _summarise(samples, ["name", "rail"], confidence)
    first = samples.groupby("name", sort=False)["seq"].min()
    table["order"] = table["name"].map(first.rank(method="first").astype(np.int64) - 1)
    descr = samples.drop_duplicates("name").set_index("name")
    table["layer_type"] = table["name"].map(descr["layer_type"]).fillna("")
    table["group"] = table["name"].map(descr["group"]).fillna("")
    table["iteration"] = pd.array(table["name"].map(descr["iteration"]) if by == "iteration"
                                  else [pd.NA] * len(table), dtype="Int64")
    rail_rank = table["rail"].map({n: i for i, n in enumerate(rails)})
    table = table.iloc[np.lexsort((rail_rank.to_numpy(), table["order"].to_numpy()))].reset_index(drop=True)
    _derived(table, rails, facts, recording, confidence, precision)
    totals = _totals(samples, by, confidence)
    kept = int(occ["iteration"].nunique())
    warnings += _warnings(table, facts, recording, baseline, rails, by, kept, confidence, precision)
    meta = _meta(recording, iv, by, baseline, warmup, kept, confidence, precision, rails, facts, samples,
                 n_iter)
    return EnergyResult(table[list(COLUMNS)], totals, samples, warnings, meta)


def _derived(table: pd.DataFrame, rails: dict, facts: dict[str, _RailFacts], rec: Recording,
             confidence: float, precision: float) -> None:
    """Power, share, sensor period, flags and iterations needed (in place)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        table["power_w"] = table["energy_mj"] / table["time_ms"]
        table["dynamic_w"] = table["dynamic_mj"] / table["time_ms"]
        total = table.groupby("rail", sort=False)["energy_mj"].transform("sum")
        table["share"] = table["energy_mj"] / total
    period = table["rail"].map({n: f.period_ns for n, f in facts.items()}).astype("Float64") / 1e6
    table["sensor_period_ms"] = period
    table["under_period"] = (table["time_ms"] < period).fillna(False).astype(bool)
    table["n_needed"] = stats.iterations_needed(table["energy_mj"].to_numpy(), table["energy_mj_sd"].to_numpy(),
                                                table["n"].to_numpy(), precision, confidence)
    table["estimated"] = table["rail"].map(lambda r: bool(r in rec.meta.rails and rec.meta.rails[r].estimated))


def _totals(samples: pd.DataFrame, by: str, confidence: float) -> pd.DataFrame:
    """Per rail: statistics of the per-iteration sum over all rows (one iteration = one sample)."""
    if by == "iteration":
        per_iter = samples
    else:
        per_iter = samples.groupby(["rail", "iteration"], sort=False)[list(STAT_COLUMNS)].sum(min_count=1)
        per_iter = per_iter.reset_index()
    return _summarise(per_iter, ["rail"], confidence)


def _warnings(table: pd.DataFrame, facts: dict[str, _RailFacts], rec: Recording, baseline: str,
              rails: dict[str, integrate.Rail], by: str, kept: int, confidence: float,
              precision: float) -> list[str]:
    out = []
    estimated = {n: rec.meta.rails[n].source or "estimate" for n in rails
                 if n in rec.meta.rails and rec.meta.rails[n].estimated}
    if estimated:
        out.append(f"ESTIMATED power: {', '.join(estimated)} "
                   f"({', '.join(sorted(set(estimated.values())))}) modelled, not measured")
    for name in rails:
        if rails[name].missing:
            out.append(f"rail {name}: {rails[name].missing} missing sample(s) dropped and interpolated across")
        under = table[(table["rail"] == name) & table["under_period"]]
        period = facts[name].period_ns
        if len(under) and period:
            worst = under["n_needed"].max()
            need = f"; ±{precision:.0%} needs up to {worst} iterations (column n_needed)" if not pd.isna(worst) else ""
            out.append(
                f"{len(under)} of {int((table['rail'] == name).sum())} {by}s are shorter than {name}'s sensor "
                f"period ({period / 1e6:.3g} ms, {facts[name].period_source}): their values are statistical, "
                f"averages over {kept} iteration(s) whose markers fall at random phases of the sensor's updates; "
                f"the ±{confidence:.0%} CI covers that scatter, not the sensor's smoothing across neighbouring "
                f"layers{need}")
    if baseline == "idle":
        unknown = [n for n in rails if facts[n].idle_mw is None]
        if unknown:
            out.append(f"no idle power known for {', '.join(unknown)}: dynamic energy left empty "
                       "(record measures it; or use --baseline none)")
    return out


def _meta(rec: Recording, iv: Intervals, by: str, baseline: str, warmup: int, kept: int, confidence: float,
          precision: float, rails: dict[str, integrate.Rail], facts: dict[str, _RailFacts],
          samples: pd.DataFrame, n_iter: int) -> dict[str, Any]:
    rail_meta = {}
    for name, rail in rails.items():
        info = rec.meta.rails.get(name)
        rail_meta[name] = {
            "sensor_period_ms": None if facts[name].period_ns is None else facts[name].period_ns / 1e6,
            "period_source": facts[name].period_source,
            "samples_model": "held" if facts[name].held else "instant",
            "estimated": bool(info and info.estimated),
            "source": info.source if info else "",
            "sensor_model": None if info is None or info.sensor_model is None else info.sensor_model.spec,
            "sensor_model_source": "data" if info is None or info.sensor_model is None else info.sensor_model.source,
            "idle_mw": facts[name].idle_mw,
            "samples": facts[name].samples,
            "missing_samples": rail.missing,
            "record_s": (rail.last_ns - rail.first_ns) / 1e9,
            "record_mj": rail.total_mj,
        }
    return {
        "version": TABLE_VERSION,
        "by": by,
        "baseline": baseline,
        "style": iv.style,
        "iteration_source": iv.iteration_source,
        "iterations": n_iter,
        "warmup": warmup,
        "iterations_used": kept,
        "confidence": confidence,
        "precision": precision,
        "estimated": any(r["estimated"] for r in rail_meta.values()),
        "sources": list(rec.meta.sources),
        "clock_base_ns": rec.meta.clock_base_ns,
        "rails": rail_meta,
    }
