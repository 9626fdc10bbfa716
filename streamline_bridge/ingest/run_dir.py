"""Reader of a run folder written by ``streamline-bridge record`` (docs/run-folder.md): FORMAT "run-dir".

The manifest, the power log and the marker log (if the command made markers) become one
:class:`Recording`. ``meta.clock_base_ns`` is the start of the run phase (when the command
started), so ``time_rel_ns`` is negative during the idle phase before it. ``meta.extra`` holds
``phases`` ({"idle_before": [t0, t1], "run": [t1, t2], "idle_after": [t2, t3]}, ns) and
``idle_mw`` ({rail: mean mW over both idle phases}) for baseline subtraction, plus the command,
its exit status and the power log's facts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from streamline_bridge import board
from streamline_bridge.errors import InputError
from streamline_bridge.ingest.files import check_input
from streamline_bridge.model import Issue, Meta, Recording, empty_markers, empty_power, rail_arrays
from streamline_bridge.runfolder import (
    MANIFEST,
    MARKERS_FILE,
    POWER_FILE,
    Phases,
    being_recorded,
    is_run_folder,
    read_manifest,
)

FORMAT = "run-dir"


def sniff(path: Path) -> bool:
    """A folder with a run manifest."""
    return is_run_folder(path)


def idle_means(power: Any, phases: Phases | None) -> dict[str, float | None]:
    """Mean mW per rail over the samples inside the idle phases (None: no sample there)."""
    out: dict[str, float | None] = {}
    spans = phases.idle_spans() if phases is not None else []
    for rail, (t, p) in rail_arrays(power).items():
        inside = np.zeros(len(t), dtype=bool)
        for a, b in spans:
            inside |= (t >= a) & (t <= b)
        values = p[inside & ~np.isnan(p)]
        out[rail] = float(values.mean()) if len(values) else None
    return out


def _part(path: Path, reader: str, issues: list[Issue]) -> Recording | None:
    """Read one file of the folder with the named reader; a missing or unreadable file is an Issue."""
    import importlib

    if not path.exists() or reader == "marker_log" and path.is_file() and path.stat().st_size == 0:
        return None  # no marker log, or the empty one record made for the command: no markers
    try:
        check_input(path)
        return importlib.import_module(f"streamline_bridge.ingest.{reader}").read(path)
    except InputError as exc:
        issues.append(Issue(str(path), exc.message, exc.offset, "not read"))
        return None


def _power_issues(power_rec: Recording, recording: bool) -> list[Issue]:
    """The power log's issues; while the run is being recorded its sampler is still running, so the
    log has no trailer yet: said as such, not as a sampler that did not stop cleanly."""
    if not recording or "sampler" in power_rec.meta.extra:  # "sampler": the trailer's facts
        return list(power_rec.meta.issues)
    return [
        Issue(
            i.file,
            "no trailer yet: the sampler is still running; update periods estimated from the samples so far",
            i.offset,
            i.action,
        )
        if i.message.startswith("no trailer")
        else i
        for i in power_rec.meta.issues
    ]


def read(path: Path) -> Recording:
    """The run's markers and power on one clock base, with its phases and idle power."""
    path = Path(path)
    m = read_manifest(path)
    files = m.get("files") or {}
    issues: list[Issue] = []
    recording = not m.get("complete") and being_recorded(path)
    if not m.get("complete"):
        why = "the run is still being recorded" if recording else "the run did not finish (record was killed?)"
        issues.append(Issue(str(path / MANIFEST), f"{why}: phases end where the recording ends", None, "kept"))
    power_path = path / files.get("power", POWER_FILE)
    if not power_path.exists():
        issues.append(Issue(str(power_path), "no power log in the run folder", None, "missing"))
    power_rec = _part(power_path, "power_log", issues)
    failed = ((m.get("power") or {}).get("stats") or {}).get("failed_rails") or {}  # checked by read_manifest
    issues += [
        Issue(str(power_path), message, None, "marked failed, the other rails kept") for message in failed.values()
    ]
    marker_rec = _part(path / files.get("markers", MARKERS_FILE), "marker_log", issues)
    phases = Phases.from_dict(m["phases"]) if m.get("phases") is not None else None
    base = phases.t1 if phases is not None else m.get("started_monotonic_raw_ns")
    markers = marker_rec.markers.copy() if marker_rec is not None else empty_markers()
    power = power_rec.power.copy() if power_rec is not None else empty_power()
    if base is not None:
        markers["time_rel_ns"] = (markers["time_ns"] - base).astype("Int64")
        power["time_rel_ns"] = (power["time_ns"] - base).astype("int64")
    extra: dict[str, Any] = {
        "phases": phases.to_dict() if phases is not None else {},
        "idle_mw": idle_means(power, phases),
        "command": m.get("command"),
        "exit_code": m.get("exit_code"),
        "interrupted": m.get("interrupted"),
        "sampler_error": m.get("sampler_error"),
        "board": board.from_manifest(m.get("board"), path / files["board"] if "board" in files else None),
    }
    if power_rec is not None:
        extra["power"] = power_rec.meta.extra
        issues += _power_issues(power_rec, recording)
    if marker_rec is not None:
        extra["markers"] = marker_rec.meta.extra
        issues += marker_rec.meta.issues
    meta = Meta(
        format=FORMAT,
        sources=[str(path)] + [s for r in (power_rec, marker_rec) if r is not None for s in r.meta.sources],
        clock_base_ns=base,
        protocol=marker_rec.meta.protocol if marker_rec is not None else None,
        counter_keys=marker_rec.meta.counter_keys if marker_rec is not None else {},
        counters=marker_rec.meta.counters if marker_rec is not None else {},
        rails=power_rec.meta.rails if power_rec is not None else {},
        issues=issues,
        partial=(
            not m.get("complete")
            or power_rec is None  # a missing, empty or unreadable power log
            or any(i.action == "not read" for i in issues)
            or any(r.meta.partial for r in (power_rec, marker_rec) if r is not None)
        ),
        extra=extra,
    )
    return Recording(markers, power, meta)
