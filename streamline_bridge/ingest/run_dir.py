"""Reader of a run folder written by ``streamline-bridge record`` (docs/run-folder.md): FORMAT "run-dir".

The manifest, the power log and the marker log (if the command made markers) become one
:class:`Recording`. ``meta.clock_base_ns`` is the start of the run phase (when the command
started), so ``time_rel_ns`` is negative during the idle phase before it. ``meta.extra`` holds
``phases`` ({"idle_before": [t0, t1], "run": [t1, t2], "idle_after": [t2, t3]}, ns) and
``idle_mw`` ({rail: mean mW over both idle phases}) for baseline subtraction, plus the command,
its exit status and the power log's facts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from streamline_bridge.errors import InputError
from streamline_bridge.ingest.files import check_input, read_regular
from streamline_bridge.model import (
    Issue,
    Meta,
    Recording,
    empty_markers,
    empty_power,
    rail_arrays,
)

FORMAT = "run-dir"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "streamline-bridge run"
VERSION = 1


def _manifest(path: Path) -> dict[str, Any]:
    try:
        m = json.loads(read_regular(path / MANIFEST))
    except (ValueError, RecursionError) as exc:
        raise InputError(path / MANIFEST, f"not valid JSON ({exc})") from None
    if not isinstance(m, dict) or m.get("format") != MANIFEST_FORMAT:
        raise InputError(path / MANIFEST, f"not a run manifest (format is not {MANIFEST_FORMAT!r})")
    if m.get("version") != VERSION:
        raise InputError(path / MANIFEST, f"run manifest version {m.get('version')} is not supported (this reader: {VERSION})")
    return _checked(path / MANIFEST, m)


def _checked(path: Path, m: dict[str, Any]) -> dict[str, Any]:
    """The manifest with the fields this reader uses checked: InputError naming the first of the wrong form."""
    def bad(key: str, what: str) -> InputError:
        return InputError(path, f"damaged run manifest: {key!r} is not {what}")

    files = m.get("files", {})
    if not isinstance(files, dict) or not all(isinstance(v, str) and v and Path(v).name == v for v in files.values()):
        raise bad("files", "an object of file names in the run folder")
    phases = m.get("phases") or {}
    if not isinstance(phases, dict) or not all(
            isinstance(v, list) and len(v) == 2 and all(type(t) is int for t in v) for v in phases.values()):
        raise bad("phases", "an object of [start, end] times in ns")
    if m.get("started_monotonic_raw_ns") is not None and type(m["started_monotonic_raw_ns"]) is not int:
        raise bad("started_monotonic_raw_ns", "a time in ns")
    return m


def sniff(path: Path) -> bool:
    """A folder with a run manifest."""
    if not (Path(path) / MANIFEST).is_file():
        return False
    try:
        return json.loads((Path(path) / MANIFEST).read_text()).get("format") == MANIFEST_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def idle_means(power: Any, phases: dict[str, list[int]]) -> dict[str, float | None]:
    """Mean mW per rail over the samples inside the idle phases (None: no sample there)."""
    out: dict[str, float | None] = {}
    spans = [phases[k] for k in ("idle_before", "idle_after") if k in phases]
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

    if not path.exists():
        return None
    try:
        check_input(path)
        return importlib.import_module(f"streamline_bridge.ingest.{reader}").read(path)
    except InputError as exc:
        issues.append(Issue(str(path), exc.message, exc.offset, "not read"))
        return None


def read(path: Path) -> Recording:
    """The run's markers and power on one clock base, with its phases and idle power."""
    path = Path(path)
    m = _manifest(path)
    files = m.get("files", {})
    issues: list[Issue] = []
    if not m.get("complete"):
        issues.append(Issue(str(path / MANIFEST), "the run did not finish (record was killed?): "
                                                  "phases end where the recording ends", None, "kept"))
    power_path = path / files.get("power", "power.sbp")
    if not power_path.exists():
        issues.append(Issue(str(power_path), "no power log in the run folder", None, "missing"))
    power_rec = _part(power_path, "power_log", issues)
    marker_rec = _part(path / files.get("markers", "markers.sbm"), "marker_log", issues)
    phases = m.get("phases") or {}
    base = (phases.get("run") or [m.get("started_monotonic_raw_ns")])[0]
    markers = marker_rec.markers.copy() if marker_rec is not None else empty_markers()
    power = power_rec.power.copy() if power_rec is not None else empty_power()
    if base is not None:
        markers["time_rel_ns"] = (markers["time_ns"] - base).astype("Int64")
        power["time_rel_ns"] = (power["time_ns"] - base).astype("int64")
    extra: dict[str, Any] = {
        "phases": phases,
        "idle_mw": idle_means(power, phases),
        "command": m.get("command"),
        "exit_code": m.get("exit_code"),
        "interrupted": m.get("interrupted"),
        "sampler_error": m.get("sampler_error"),
    }
    if power_rec is not None:
        extra["power"] = power_rec.meta.extra
        issues += power_rec.meta.issues
    if marker_rec is not None:
        extra["markers"] = marker_rec.meta.extra
        issues += marker_rec.meta.issues
    meta = Meta(
        format=FORMAT,
        sources=[str(path)] + [s for r in (power_rec, marker_rec) if r is not None for s in r.meta.sources],
        clock_base_ns=base,
        protocol=marker_rec.meta.protocol if marker_rec is not None else None,
        counter_keys=marker_rec.meta.counter_keys if marker_rec is not None else {},
        rails=power_rec.meta.rails if power_rec is not None else {},
        issues=issues,
        partial=not m.get("complete") or power_rec is None or any(i.action == "not read" for i in issues)
        or any(r.meta.partial for r in (power_rec, marker_rec) if r is not None),
        extra=extra,
    )
    return Recording(markers, power, meta)
