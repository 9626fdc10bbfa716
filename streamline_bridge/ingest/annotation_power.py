"""Power samples from annotation counters: counters titled ``Power`` in mW, W or µW become rails.

``record --streamline`` sends every rail this way (``power/streamline_feed.py``), and any
application may do the same with ``annotate.counter(key, "Power", "VDD_GPU", units="mW", ...)``.
Used by every reader of annotation streams — captures (EXTERNAL streams), marker logs (ours and
the listener's) — so that ``report CAPTURE.apc`` or ``report markers.sbm`` has power without a
separate power log.

A counter is a rail when its definition's title is ``Power`` (any case) and its units are ``mW``,
``W``, ``uW`` or ``µW``; its values are divided by the definition's ``modifier`` (the
``ANNOTATE_COUNTER_VALUE_SCALE`` convention) and converted to mW. Keys belong to the process that
defined them (Streamline makes them unique per process), so definitions and values are matched
per (pid, key), across the threads of a process. The rail is named after the counter; counters of
the same name from several processes (two ``record`` runs in one capture) are one rail; a name the
reader's own power counters already use gets `` (annotations)``.
Each rail's :class:`~streamline_bridge.model.RailInfo` says ``source = "annotation counters"``
and carries the rate of its values; its update period is the sensor's, estimated from when the
values change (``power/period.py``), as for a power log; its sensor model is the one the counter's
description carries (``record --streamline``: the sampler's), else left to the data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from annotate import wire
from streamline_bridge.ingest.annotation_stream import DecodedStream
from streamline_bridge.ingest.units import mw_per_unit
from streamline_bridge.model import RailInfo, Recording
from streamline_bridge.power.period import change_times, period_from_changes
from streamline_bridge.sensor_model import SensorModel, from_text

SOURCE = "annotation counters"
TITLE = "power"
_U32 = 0xFFFFFFFF


_Definition = tuple[str, str, float, SensorModel | None]


def _definitions(streams: Sequence[DecodedStream]) -> dict[tuple[int, int], _Definition]:
    """``{(pid, key): (name, units, mW per raw unit, sensor model)}`` of the power counters (last
    definition wins); the model is the one the description carries (``sensor_model.in_text``)."""
    defs: dict[tuple[int, int], _Definition] = {}
    for st in streams:
        group = st.fields.get(wire.COUNTER)
        if group is None:
            continue
        pid = st.handshake.pid if st.handshake else 0
        c = group.columns
        for key, title, name, units, modifier, text in zip(
            c["key"], c["title"], c["name"], c["units"], c["modifier"], c["description"]
        ):
            factor = mw_per_unit(units)
            if str(title).strip().lower() == TITLE and factor is not None:
                defs[(pid, int(key) & _U32)] = (
                    str(name) or f"key {int(key) & _U32:#x}",
                    str(units),
                    factor / (modifier if modifier > 0 else 1),
                    from_text(str(text)),
                )
    return defs


def _values(streams: Sequence[DecodedStream], pid: int, key: int) -> tuple[np.ndarray, np.ndarray]:
    """Times and raw values of counter ``key`` of process ``pid``, in time order."""
    times, values = [], []
    for st in streams:
        group = st.fields.get(wire.COUNTER_VALUE)
        if group is None or (st.handshake.pid if st.handshake else 0) != pid:
            continue
        mine = (group.columns["key"] & _U32) == key
        times.append(group.columns["time"][mine])
        values.append(group.columns["value"][mine])
    t = np.concatenate(times) if times else np.empty(0, np.int64)
    v = np.concatenate(values) if values else np.empty(0, np.int64)
    order = np.argsort(t, kind="stable")
    return t[order], v[order]


def add_power(rec: Recording, streams: Iterable[DecodedStream]) -> Recording:
    """``rec`` with the power counters of ``streams`` added to its power table and rails."""
    streams = [st for st in streams if st is not None]
    defs = _definitions(streams)
    if not defs:
        return rec
    base = rec.meta.clock_base_ns
    rails = dict(rec.meta.rails)
    taken = set(rails) | {str(r) for r in rec.power["rail"].unique()}
    found: dict[str, list[tuple[int, int, str, np.ndarray, np.ndarray, SensorModel | None]]] = {}
    for (pid, key), (name, units, to_mw, model) in defs.items():
        t, raw = _values(streams, pid, key)
        if len(t):
            found.setdefault(name, []).append((pid, key, units, t, raw.astype(np.float64) * to_mw, model))
    parts: list[pd.DataFrame] = []
    for name, counters in found.items():
        rail = name if name not in taken else f"{name} (annotations)"
        t = np.concatenate([c[3] for c in counters])
        mw = np.concatenate([c[4] for c in counters])
        order = np.argsort(t, kind="stable")
        t, mw = t[order], mw[order]
        rates = [(len(c[3]) - 1) / ((c[3][-1] - c[3][0]) / 1e9) for c in counters if c[3][-1] > c[3][0]]
        rails[rail] = RailInfo(
            name=rail,
            source=SOURCE,
            unit=counters[0][2],
            update_period_ns=period_from_changes(change_times(t, mw)),
            extra={
                "counter": name,
                "rate_hz": max(rates) if rates else None,
                "pids": [c[0] for c in counters],
                "keys": [hex(c[1]) for c in counters],
            },
            sensor_model=counters[0][5],
        )
        parts.append(
            pd.DataFrame(
                {"time_ns": t, "time_rel_ns": t - (base if base is not None else 0), "rail": rail, "power_mw": mw}
            )
        )
    if not parts:
        return rec
    power = pd.concat([p for p in (rec.power, *parts) if len(p)], ignore_index=True)
    power["rail"] = pd.Categorical(power["rail"].astype(str), categories=list(dict.fromkeys(power["rail"].astype(str))))
    extra = dict(rec.meta.extra, power_source=describe(rails))
    return Recording(rec.markers, power, replace(rec.meta, rails=rails, extra=extra))


def is_annotation_rail(info: RailInfo | None) -> bool:
    """True for a rail that :func:`add_power` made."""
    return info is not None and info.source == SOURCE


def describe(rails: dict[str, RailInfo]) -> str:
    """One line naming each source of the rails and their sensor model, e.g. ``annotation counters at
    1000 Hz: VDD_IN, VDD_GPU (sensor model ina3221:0x7c07 from device tree)``."""
    by_source: dict[tuple[str, str], list[str]] = {}
    for name, info in rails.items():
        label = info.source or "unknown source"
        rate = info.extra.get("rate_hz") if is_annotation_rail(info) else None
        if rate:
            label += f" at {rate:.0f} Hz"
        model = info.sensor_model
        how = "from the data" if model is None else f"{model.spec} from {model.source}"
        by_source.setdefault((label, how), []).append(name)
    return "; ".join(f"{label}: {', '.join(names)} (sensor model {how})" for (label, how), names in by_source.items())


def prefer_measured(recordings: Sequence[Recording]) -> tuple[list[Recording], list[str]]:
    """Drop annotation-counter rails that another input has from its own record (a power log).

    The sampler's power log is the full-resolution record of what ``record --streamline`` sent
    to Streamline; given both, the log is used. Returns the recordings and a note per drop.
    """
    measured = {
        str(r)
        for rec in recordings
        for r in rec.power["rail"].unique()
        if not is_annotation_rail(rec.meta.rails.get(str(r)))
    }
    out, notes = [], []
    for rec in recordings:
        dup = [name for name, info in rec.meta.rails.items() if is_annotation_rail(info) and name in measured]
        if not dup:
            out.append(rec)
            continue
        keep = ~rec.power["rail"].astype(str).isin(dup)
        power = rec.power[keep].reset_index(drop=True)
        power["rail"] = power["rail"].cat.remove_unused_categories()
        rails = {n: i for n, i in rec.meta.rails.items() if n not in dup}
        out.append(Recording(rec.markers, power, replace(rec.meta, rails=rails)))
        notes.append(
            f"{', '.join(dup)} from {SOURCE} in {', '.join(rec.meta.sources)} left out: "
            "the power log given alongside has them"
        )
    return out, notes
