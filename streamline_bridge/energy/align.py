"""Put markers and power on one clock: combine inputs, place relative-time markers, check the overlap.

Markers and power logs share CLOCK_MONOTONIC_RAW (``time_ns``). A capture's markers carry it too
(converted with the Summary's monotonic-raw start). An export's times are relative to the capture
start (markers: only ``time_rel_ns``; timeline power: ``time_ns`` = ``time_rel_ns``). They are placed
with an explicit offset (the capture's start, in ns after the start of the other inputs' power
record), else with the start of a capture given alongside, else, when all the power comes from
exports too, left on the capture's relative clock.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from streamline_bridge.errors import InputError
from streamline_bridge.model import Meta, Recording, empty_markers, empty_power

CAPTURE_FORMATS = ("apc",)  # formats whose clock base is the capture start of its exports
EXPORT_FORMATS = ("streamline-export",)  # formats whose times are relative to a capture's start


def name_of(rec: Recording) -> str:
    """How to name a recording in messages: its sources, else its format."""
    return ", ".join(rec.meta.sources) or rec.meta.format or "<recording>"


def _power_base(recs: Sequence[Recording]) -> int | None:
    for rec in recs:
        if rec.meta.clock_base_ns is not None:
            return rec.meta.clock_base_ns
        if len(rec.power):
            return int(rec.power["time_ns"].min())
    return None


def placed_markers(rec: Recording, base_ns: int | None) -> pd.DataFrame:
    """Markers of ``rec`` with ``time_ns`` set: from ``time_rel_ns`` + ``base_ns`` where it is missing."""
    m = rec.markers
    missing = m["time_ns"].isna() & m["time_rel_ns"].notna()
    if not missing.any():
        return m
    if base_ns is None:
        raise InputError(
            name_of(rec),
            "markers have only times relative to the capture start (an export?): "
            "give the capture too, or --offset SECONDS",
        )
    m = m.copy()
    m.loc[missing, "time_ns"] = m.loc[missing, "time_rel_ns"] + base_ns
    return m


def _export_base(recordings: Sequence[Recording], offset_ns: int | None) -> int | None:
    """CLOCK_MONOTONIC_RAW ns of the capture start that exports' times count from (None: unknown)."""
    native = [r for r in recordings if r.meta.format not in EXPORT_FORMATS and (len(r.power) or len(r.markers))]
    if offset_ns is not None:
        return (_power_base([r for r in native if len(r.power)]) or 0) + offset_ns
    capture = next(
        (
            r.meta.clock_base_ns
            for r in recordings
            if r.meta.format in CAPTURE_FORMATS and r.meta.clock_base_ns is not None
        ),
        None,
    )
    if capture is not None:
        return capture
    return 0 if not native else None  # only exports: they share the capture's relative clock


def _placed_power(rec: Recording, base_ns: int | None) -> pd.DataFrame:
    """Power of ``rec`` on CLOCK_MONOTONIC_RAW: an export's relative times moved by ``base_ns``."""
    if rec.meta.format not in EXPORT_FORMATS or base_ns == 0:
        return rec.power
    if base_ns is None:
        raise InputError(
            name_of(rec),
            "power times are relative to the capture start (an export): give the capture too, or --offset SECONDS",
        )
    return rec.power.assign(time_ns=rec.power["time_rel_ns"] + base_ns)


def combine(recordings: Sequence[Recording], offset_ns: int | None = None) -> Recording:
    """One recording from several: markers from the marker-bearing inputs, power from the power-bearing.

    ``offset_ns`` places exports (times relative to a capture's start): their zero is ``offset_ns``
    after the start of the other inputs' power record. Without it, the clock base of a capture among
    the inputs is used. Markers repeated across inputs (a capture and its export) are kept once. A
    rail found in two inputs is an error.
    """
    if not recordings:
        raise InputError(None, "no input")
    if len(recordings) == 1 and offset_ns is None:
        return recordings[0]
    marker_recs = [r for r in recordings if len(r.markers)]
    power_recs = [r for r in recordings if len(r.power)]
    base = _export_base(recordings, offset_ns)
    parts = [placed_markers(r, base) for r in marker_recs]
    markers = pd.concat(parts, ignore_index=True) if parts else empty_markers()
    if len(parts) > 1:
        markers = markers.drop_duplicates(["time_ns", "pid", "tid", "kind", "channel", "text"], ignore_index=True)
    meta = Meta(format="+".join(r.meta.format for r in recordings))
    for rec in recordings:
        meta.sources += rec.meta.sources
        meta.issues += rec.meta.issues
        meta.partial |= rec.meta.partial
        meta.counter_keys.update(rec.meta.counter_keys)
        meta.counters.update(rec.meta.counters)
        idle = {**meta.extra.get("idle_mw", {}), **rec.meta.extra.get("idle_mw", {})}
        meta.extra.update(rec.meta.extra)
        if idle:
            meta.extra["idle_mw"] = idle
    seen: dict[str, str] = {}
    for rec in power_recs:
        for rail in rec.power["rail"].unique():
            if str(rail) in seen:
                raise InputError(name_of(rec), f"rail {rail} is also in {seen[str(rail)]}: give it once")
            seen[str(rail)] = name_of(rec)
            if str(rail) in rec.meta.rails:
                meta.rails[str(rail)] = rec.meta.rails[str(rail)]
    power_parts = [_placed_power(r, base) for r in power_recs]
    power = pd.concat(power_parts, ignore_index=True) if power_parts else empty_power()
    if power_parts:
        power["rail"] = pd.Categorical(power["rail"].astype(str), categories=list(seen))
    native = [
        r.meta.clock_base_ns
        for r in recordings
        if r.meta.format not in EXPORT_FORMATS and r.meta.clock_base_ns is not None
    ]
    starts = [
        t
        for t in (power["time_ns"].min() if len(power) else None, markers["time_ns"].min() if len(markers) else None)
        if t is not None and not pd.isna(t)
    ]
    meta.clock_base_ns = native[0] if native else (int(min(starts)) if starts else None)
    return Recording(markers, power, meta)


def check_overlap(
    rec: Recording, start_ns: np.ndarray, end_ns: np.ndarray, spans: dict[str, tuple[int, int]]
) -> list[str]:
    """Warnings for intervals outside a rail's record; :class:`InputError` when none is inside any."""
    warnings = []
    inside_any = np.zeros(len(start_ns), dtype=bool)
    for rail, (first, last) in spans.items():
        inside = (start_ns >= first) & (end_ns <= last)
        inside_any |= inside
        if not inside.all():
            out = int((~inside).sum())
            warnings.append(
                f"{out} of {len(inside)} intervals fall (partly) outside the {rail} power record "
                f"({(last - first) / 1e9:.3f} s): their {rail} energy is left empty"
            )
    if len(start_ns) and not inside_any.any():
        lo, hi = int(start_ns.min()), int(end_ns.max())
        first = min(s[0] for s in spans.values())
        last = max(s[1] for s in spans.values())
        raise InputError(
            name_of(rec),
            f"the markers ({lo / 1e9:.3f}..{hi / 1e9:.3f} s) do not overlap the power "
            f"record ({first / 1e9:.3f}..{last / 1e9:.3f} s, CLOCK_MONOTONIC_RAW): "
            "wrong clock or offset?",
        )
    return warnings
