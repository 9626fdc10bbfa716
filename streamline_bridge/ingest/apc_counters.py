"""The counter samples of a capture as one table, and the power samples (mW) of its power counters.

Power counters are those whose ``events.xml`` units are W/mW/µW or whose title is "Power"
(:mod:`.apc_xml`); their samples become the recording's power table, one rail per counter.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from streamline_bridge.ingest import apc_frames as fr
from streamline_bridge.ingest.apc_counter_frames import CounterColumns, block_counters, counter_messages
from streamline_bridge.ingest.apc_xml import CapturedXml, EventInfo, event_for
from streamline_bridge.model import RailInfo, empty_power
from streamline_bridge.power.period import change_times, period_from_changes
from streamline_bridge.sensor_model import INSTANT_SOURCE

if TYPE_CHECKING:
    from streamline_bridge.ingest.apc import CaptureReader


def counters_table(r: CaptureReader, buf, w: fr.Walk, keys: dict[int, str]) -> pd.DataFrame:
    """Every BLOCK_COUNTER and COUNTER sample, raw values, times relative to the start."""
    cols = CounterColumns()
    block_counters(buf, w.frames[fr.BLOCK_COUNTER], cols)
    counter_messages(buf, w.frames[fr.COUNTER], cols)
    for err in cols.errors:
        r.issue(str(err), err.offset, action="rest of the frame skipped")
    if cols.backwards:
        r.issue(
            f"counter time goes backwards in {len(cols.backwards)} frame(s)",
            cols.backwards[0] - 4,
            action="kept in file order",
        )
    a = cols.arrays()
    uniq, inverse = np.unique(a["key"], return_inverse=True)
    names = {int(k): keys.get(int(k), f"key {int(k):#x}") for k in uniq}
    missing = sorted(k for k in names if k not in keys)
    if missing and keys:
        r.issue(
            "counter keys not in captured.xml: " + ", ".join(f"{k:#x}" for k in missing),
            damage=False,
            action="kept under their key",
        )
    counter = pd.Series(np.array([names[int(k)] for k in uniq], dtype=object)[inverse.reshape(-1)], dtype="category")
    return pd.DataFrame(
        {
            "t_rel_ns": a["t_rel_ns"],
            "core": a["core"],
            "tid": a["tid"],
            "key": a["key"],
            "counter": counter,
            "value": a["value"],
        }
    )


def power_from_counters(
    counters: pd.DataFrame,
    keys: dict[int, str],
    captured: CapturedXml | None,
    events: dict[str, EventInfo],
    base: int | None,
):
    """Power samples (mW) of the power counters, their RailInfo, and a summary of every counter."""
    infos: dict[int, EventInfo | None] = {}
    for key in counters["key"].unique().tolist():
        attrs = captured.counters.get(key) if captured else None
        infos[key] = event_for(attrs, events) if attrs else None
    power = {k: ev for k, ev in infos.items() if ev is not None and ev.is_power}
    wanted = Counter(ev.name or keys[k] for k, ev in power.items())
    summary: dict[str, Any] = {}
    rails: dict[str, RailInfo] = {}
    parts: list[tuple[str, np.ndarray, np.ndarray]] = []
    for key, part in counters.groupby("key", sort=False):
        ev = infos[key]
        ctype = keys.get(key, f"key {key:#x}")
        raw = part["value"].to_numpy(np.int64)
        mult = ev.multiplier if ev else 1.0
        entry: dict[str, Any] = {"key": hex(key), "samples": int(len(part))}
        if ev:
            entry.update(title=ev.title, name=ev.name, units=ev.units, multiplier=ev.multiplier, cls=ev.cls)
        entry.update(min=float(raw.min()) * mult, max=float(raw.max()) * mult)
        if ev is not None and key in power:
            rail = ev.name if ev.name and wanted[ev.name] == 1 else ctype
            t = part["t_rel_ns"].to_numpy(np.int64)
            order = np.argsort(t, kind="stable")
            t, raw = t[order], raw[order]
            parts.append((rail, t, raw * ev.to_mw))
            rails[rail] = RailInfo(
                name=rail,
                source=f"apc counter {ctype}",
                unit=ev.units or "W",
                update_period_ns=_update_period(t, raw),
                extra={"counter": ctype, "key": hex(key), "multiplier": ev.multiplier},
                sensor_model=INSTANT_SOURCE,
            )  # gatord polls the value as it is
            entry["rail"] = rail
        summary[ctype] = entry
    if not parts:
        return empty_power(), rails, summary
    names = [p[0] for p in parts]
    rel = np.concatenate([p[1] for p in parts])
    power = pd.DataFrame(
        {
            "time_ns": rel + (base or 0),
            "time_rel_ns": rel,
            "rail": pd.Categorical(np.repeat(names, [len(p[1]) for p in parts]), categories=names),
            "power_mw": np.concatenate([p[2] for p in parts]).astype(np.float64),
        }
    )
    return power, rails, summary


def _update_period(t: np.ndarray, values: np.ndarray) -> int | None:
    """The sensor's update period from when the values change (``power/period.py``); the sampling
    period when they change fewer than 3 times."""
    return period_from_changes(change_times(t, values.astype(np.float64))) or period_from_changes(t.tolist())
