"""A Perfetto / Chrome trace (JSON) of the energy table: open it in https://ui.perfetto.dev.

Each layer (group, iteration) occurrence is a complete ``X`` slice on its thread with its energy
per rail in ``args``; each rail is a counter ``C`` track (mW, written where the value changes);
each iteration start is a global instant ``i`` event. Times are µs from the recording's start. Power
is written from 1 s before the first slice to 1 s after the last (a long record stays small).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from streamline_bridge.energy import EnergyResult
from streamline_bridge.model import Recording, rail_arrays

# pseudo processes above Linux's largest pid (2^22), so they never collide with the profiled ones
POWER_PID = 10_000_001  # holds the rails' counter tracks
ENERGY_PID = 10_000_002  # holds the iteration instants and the group / iteration slices
MARGIN_NS = 1_000_000_000  # power shown before the first and after the last slice


def _us(ns: np.ndarray, base: int) -> np.ndarray:
    return (np.asarray(ns, dtype=np.int64) - base) / 1e3


def _slices(result: EnergyResult, base: int) -> tuple[list[dict[str, Any]], set[tuple[int, int]]]:
    s = result.samples  # rail-major, the occurrences in the same order for every rail
    rails = list(dict.fromkeys(s["rail"]))
    info = s[s["rail"] == rails[0]]
    energy = {r: s.loc[s["rail"] == r, "energy_mj"].to_numpy(np.float64) for r in rails}
    by_layer = result.meta["by"] == "layer"
    pid = info["pid"].to_numpy(np.int64) if by_layer else np.full(len(info), ENERGY_PID)
    tid = info["tid"].to_numpy(np.int64) if by_layer else np.full(len(info), ENERGY_PID)
    ts = _us(info["start_ns"], base)
    dur = _us(info["end_ns"], base) - ts
    cat = "estimated" if result.estimated else result.meta["by"]
    events = []
    for i, (name, iteration, group) in enumerate(zip(info["name"], info["iteration"], info["group"])):
        args: dict[str, Any] = {f"{r} mJ": round(float(energy[r][i]), 6) for r in rails if np.isfinite(energy[r][i])}
        args["iteration"] = int(iteration)
        if group:
            args["group"] = str(group)
        events.append({"ph": "X", "name": str(name), "cat": cat, "pid": int(pid[i]), "tid": int(tid[i]),
                       "ts": float(ts[i]), "dur": float(dur[i]), "args": args})
    return events, set(zip(pid.tolist(), tid.tolist()))


def _counters(recording: Recording, result: EnergyResult, base: int) -> list[dict[str, Any]]:
    """Each rail's power where it changes, from just before the first slice to just after the last."""
    lo = int(result.samples["start_ns"].min()) - MARGIN_NS
    hi = int(result.samples["end_ns"].max()) + MARGIN_NS
    events = []
    for rail, (t, p) in rail_arrays(recording.power).items():
        ok = ~np.isnan(p)
        t, p = t[ok], p[ok]
        first, last = np.searchsorted(t, [lo, hi])
        t, p = t[max(first - 1, 0):last + 1], p[max(first - 1, 0):last + 1]
        keep = np.ones(len(p), dtype=bool)
        keep[1:] = p[1:] != p[:-1]
        keep[-1:] = True
        name = rail + (" (ESTIMATED) mW" if result.meta["rails"].get(rail, {}).get("estimated") else " mW")
        events += [{"ph": "C", "name": name, "pid": POWER_PID, "ts": float(ts), "args": {"mW": float(v)}}
                   for ts, v in zip(_us(t[keep], base), p[keep])]
    return events


def build(result: EnergyResult, recording: Recording) -> dict[str, Any]:
    """The trace as a JSON-ready dict (Chrome Trace Event Format, JSON object form)."""
    times = [recording.power["time_ns"].min()] if len(recording.power) else []
    times += [result.samples["start_ns"].min()]
    base = recording.meta.clock_base_ns if recording.meta.clock_base_ns is not None else int(min(times))
    slices, threads = _slices(result, base)
    starts = result.samples.groupby("iteration")["start_ns"].min()
    instants = [{"ph": "i", "s": "g", "name": f"iteration {int(i)}", "pid": ENERGY_PID, "tid": ENERGY_PID,
                 "ts": float(ts)} for i, ts in zip(starts.index, _us(starts.to_numpy(), base))]
    title = "power rails" + (" (ESTIMATED)" if result.estimated else "")
    meta = [{"ph": "M", "name": "process_name", "pid": POWER_PID, "args": {"name": title}},
            {"ph": "M", "name": "process_name", "pid": ENERGY_PID, "args": {"name": f"energy per {result.meta['by']}"}},
            {"ph": "M", "name": "thread_name", "pid": ENERGY_PID, "tid": ENERGY_PID, "args": {"name": "iterations"}}]
    for p in sorted({p for p, _ in threads} - {ENERGY_PID}):
        meta.append({"ph": "M", "name": "process_name", "pid": p, "args": {"name": f"process {p}"}})
    meta += [{"ph": "M", "name": "thread_name", "pid": p, "tid": t, "args": {"name": f"thread {t}"}}
             for p, t in sorted(threads) if (p, t) != (ENERGY_PID, ENERGY_PID)]
    return {
        "traceEvents": meta + slices + instants + _counters(recording, result, base),
        "displayTimeUnit": "ms",
        "otherData": {"generator": "streamline-bridge report", "clock": "CLOCK_MONOTONIC_RAW",
                      "clock_base_ns": int(base), "estimated_power": result.estimated,
                      "warnings": list(result.warnings)},
    }


def write(result: EnergyResult, recording: Recording, path: str | Path) -> Path:
    """Write the trace JSON to ``path``."""
    path = Path(path)
    doc = build(result, recording)
    path.write_text(json.dumps(doc, separators=(",", ":"), allow_nan=False))
    return path


