"""A Perfetto / Chrome trace (JSON) of the energy table: open it in https://ui.perfetto.dev.

Each layer (group, iteration) occurrence is a complete ``X`` slice on its thread with its energy
per rail in ``args``; each rail is a counter ``C`` track (mW, written where the value changes);
each iteration start is a global instant ``i`` event; a run folder's phases (idle before, run, idle
after) are slices on a ``phases`` track; its board samples (``board.jsonl``) are temperature and clock
counters of a ``board`` process. Times are µs from the earliest event (never negative:
Perfetto does not take negative times); ``otherData.clock_base_ns`` is that instant. Power is written
from 1 s before the first slice to 1 s after the last (a long record stays small).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamline_bridge.report import Renderer

if TYPE_CHECKING:
    import numpy as np

    from streamline_bridge.energy import EnergyResult
    from streamline_bridge.model import Recording

# pseudo processes above Linux's largest pid (2^22), so they never collide with the profiled ones
POWER_PID = 10_000_001  # holds the rails' counter tracks
ENERGY_PID = 10_000_002  # holds the iteration instants and the group / iteration slices
PHASES_TID = 10_000_003  # the run folder's phases, a thread of ENERGY_PID
BOARD_PID = 10_000_004  # the board's temperatures and clocks (a run folder's board.jsonl)
MARGIN_NS = 1_000_000_000  # power shown before the first and after the last slice


def _us(ns: np.ndarray, base: int) -> np.ndarray:
    import numpy as np

    return (np.asarray(ns, dtype=np.int64) - base) / 1e3


def _slices(result: EnergyResult, base: int) -> tuple[list[dict[str, Any]], set[tuple[int, int]]]:
    import numpy as np

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
        events.append(
            {
                "ph": "X",
                "name": str(name),
                "cat": cat,
                "pid": int(pid[i]),
                "tid": int(tid[i]),
                "ts": float(ts[i]),
                "dur": float(dur[i]),
                "args": args,
            }
        )
    return events, set(zip(pid.tolist(), tid.tolist()))


def _power(recording: Recording, result: EnergyResult) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each rail's (time_ns, mW) where it changes, from just before the first slice to just after the last."""
    import numpy as np

    from streamline_bridge.model import rail_arrays

    lo = int(result.samples["start_ns"].min()) - MARGIN_NS
    hi = int(result.samples["end_ns"].max()) + MARGIN_NS
    out = {}
    for rail, (t, p) in rail_arrays(recording.power).items():
        ok = ~np.isnan(p)
        t, p = t[ok], p[ok]
        first, last = np.searchsorted(t, [lo, hi])
        t, p = t[max(first - 1, 0) : last + 1], p[max(first - 1, 0) : last + 1]
        keep = np.ones(len(p), dtype=bool)
        keep[1:] = p[1:] != p[:-1]
        keep[-1:] = True
        out[rail] = (t[keep], p[keep])
    return out


def _counters(power: dict[str, tuple[np.ndarray, np.ndarray]], result: EnergyResult, base: int) -> list[dict[str, Any]]:
    """One counter track per rail: the event's name is the rail, its one argument ``mW`` (viewers name
    a counter track ``<name> <argument>``: ``VDD_IN mW``)."""
    events = []
    for rail, (t, p) in power.items():
        name = rail + (" (ESTIMATED)" if result.meta["rails"].get(rail, {}).get("estimated") else "")
        events += [
            {"ph": "C", "name": name, "pid": POWER_PID, "ts": float(ts), "args": {"mW": float(v)}}
            for ts, v in zip(_us(t, base), p)
        ]
    return events


def _board(recording: Recording, base: int) -> list[dict[str, Any]]:
    """The board's samples (``board.jsonl``) as counters: temperatures (°C) and clocks (MHz) per zone and device."""
    events = []
    from streamline_bridge.board import samples_of

    def numbers(values: Any, scale: float, prefix: str = "") -> dict[str, float]:
        items = values.items() if isinstance(values, dict) else ()
        return {f"{prefix}{k}": v / scale for k, v in items if isinstance(v, (int, float)) and not isinstance(v, bool)}

    for s in samples_of(recording):
        tracks = {
            "temperature °C": numbers(s.get("thermal_c"), 1),
            "CPU MHz": numbers(s.get("cpu_khz"), 1e3, "cpu"),
            "clock MHz": {**numbers(s.get("devfreq_hz"), 1e6), **numbers({"EMC": s.get("emc_hz")}, 1e6)},
        }
        events += [
            {"ph": "C", "name": name, "pid": BOARD_PID, "ts": (s["time_ns"] - base) / 1e3, "args": args}
            for name, args in tracks.items()
            if args
        ]
    return events


def _phases(recording: Recording) -> dict[str, tuple[int, int]]:
    """A run folder's phases that have a start and an end (ns)."""
    phases = recording.meta.extra.get("phases") or {}
    return {k: (int(v[0]), int(v[1])) for k, v in phases.items() if v and len(v) == 2 and None not in v}


def build(result: EnergyResult, recording: Recording) -> dict[str, Any]:
    """The trace as a JSON-ready dict (Chrome Trace Event Format, JSON object form)."""
    power, phases = _power(recording, result), _phases(recording)
    times = [int(result.samples["start_ns"].min())] + [int(t[0]) for t, _ in power.values() if len(t)]
    from streamline_bridge.board import samples_of

    samples = samples_of(recording)
    base = min(times + [a for a, _ in phases.values()] + [s["time_ns"] for s in samples])  # zero: the earliest event
    slices, threads = _slices(result, base)
    slices += [
        {
            "ph": "X",
            "name": name.replace("_", " "),
            "cat": "phase",
            "pid": ENERGY_PID,
            "tid": PHASES_TID,
            "ts": (a - base) / 1e3,
            "dur": (b - a) / 1e3,
        }
        for name, (a, b) in phases.items()
    ]
    starts = result.samples.groupby("iteration")["start_ns"].min()
    instants = [
        {"ph": "i", "s": "g", "name": f"iteration {int(i)}", "pid": ENERGY_PID, "tid": ENERGY_PID, "ts": float(ts)}
        for i, ts in zip(starts.index, _us(starts.to_numpy(), base))
    ]
    title = "power rails" + (" (ESTIMATED)" if result.estimated else "")
    meta = [
        {"ph": "M", "name": "process_name", "pid": POWER_PID, "args": {"name": title}},
        {"ph": "M", "name": "process_name", "pid": ENERGY_PID, "args": {"name": f"energy per {result.meta['by']}"}},
        {"ph": "M", "name": "thread_name", "pid": ENERGY_PID, "tid": ENERGY_PID, "args": {"name": "iterations"}},
    ]
    if phases:
        meta.append(
            {"ph": "M", "name": "thread_name", "pid": ENERGY_PID, "tid": PHASES_TID, "args": {"name": "phases"}}
        )
    if samples:
        meta.append({"ph": "M", "name": "process_name", "pid": BOARD_PID, "args": {"name": "board"}})
    for p in sorted({p for p, _ in threads} - {ENERGY_PID}):
        meta.append({"ph": "M", "name": "process_name", "pid": p, "args": {"name": f"process {p}"}})
    meta += [
        {"ph": "M", "name": "thread_name", "pid": p, "tid": t, "args": {"name": f"thread {t}"}}
        for p, t in sorted(threads)
        if (p, t) != (ENERGY_PID, ENERGY_PID)
    ]
    return {
        "traceEvents": meta + slices + instants + _counters(power, result, base) + _board(recording, base),
        "displayTimeUnit": "ms",
        "otherData": {
            "generator": "streamline-bridge report",
            "clock": "CLOCK_MONOTONIC_RAW",
            "clock_base_ns": int(base),
            "estimated_power": result.estimated,
            "warnings": list(result.warnings),
        },
    }


def write(result: EnergyResult, recording: Recording, path: str | Path) -> list[Path]:
    """Write the trace JSON to ``path``."""
    path = Path(path)
    doc = build(result, recording)
    path.write_text(json.dumps(doc, separators=(",", ":"), allow_nan=False))
    return [path]


RENDERERS = [
    Renderer(
        "trace",
        (".json",),
        write,
        ("EnergyResult",),
        "Perfetto / Chrome trace (JSON)",
        option="trace",
        run_file="trace.json",
    )
]
