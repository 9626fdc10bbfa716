"""Reader of the power log (``.sbp``, docs/power-log.md) written by the power sampler.

Sample times are when each read completed (CLOCK_MONOTONIC_RAW ns); ``meta.clock_base_ns`` is
the log's start. Each rail's :class:`~streamline_bridge.model.RailInfo` carries the source's
unit, the measured update period (from the trailer, or estimated from the samples when the
sampler did not stop cleanly), whether it is an estimate, the sensor configuration, and (version 2)
the sensor model with where it came from (version 1: None, left to the data). A log
cut short or damaged is read as far as it goes and flagged partial, with an Issue per problem;
one whose header or records the low-level reader cannot make sense of is an :class:`InputError`, and
header or trailer fields of the wrong type are reported and left out.
"""

from __future__ import annotations

import re
import struct
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np

from streamline_bridge.errors import InputError
from streamline_bridge.ingest.files import read_regular
from streamline_bridge.model import Issue, Meta, RailInfo, Recording, empty_markers, power_frame
from streamline_bridge.power.log import MAGIC, LogContent, read_log
from streamline_bridge.power.period import change_times, period_from_changes
from streamline_bridge.sensor_model import SensorModel

FORMAT = "power-log"


def sniff(path: Path) -> bool:
    """True when ``path`` is a file starting with the power log magic."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def _read_stats(content: LogContent) -> dict[str, Any]:
    d = content.t_end - content.t_start
    if not len(d):
        return {}
    return {"p50": int(np.percentile(d, 50)), "p99": int(np.percentile(d, 99)), "max": int(d.max())}


# What the low-level reader raises on bytes it cannot make sense of (besides ValueError(offset, message)).
_DAMAGE = (ValueError, KeyError, TypeError, AttributeError, IndexError, struct.error, RecursionError, OverflowError)


def _content(path: Path) -> LogContent:
    """:func:`read_log` of a regular file, every failure an :class:`InputError` naming the file."""
    data = read_regular(path)
    try:
        return read_log(path, data=data)
    except _DAMAGE as exc:
        if isinstance(exc, ValueError) and len(exc.args) == 2 and isinstance(exc.args[0], int):
            raise InputError(path, str(exc.args[1]), exc.args[0]) from None
        raise InputError(path, f"damaged power log ({type(exc).__name__}: {exc})") from None


_FIELDS: dict[str, dict[str, type]] = {
    "header": {"rails": list, "config": dict},
    "trailer": {"update_period_ns": dict, "error": str},
}


def _checked(path: Path, obj: Any, what: str, issues: list[Issue]) -> dict[str, Any]:
    """``obj`` (the header or trailer JSON) with fields of the wrong type reported and dropped."""
    if not isinstance(obj, dict):
        issues.append(Issue(str(path), f"{what} is not a JSON object", None, "ignored"))
        return {}
    out = dict(obj)
    for key, kind in _FIELDS[what].items():
        if out.get(key) is not None and not isinstance(out[key], kind):
            issues.append(Issue(str(path), f"{what} field {key!r} is not a {kind.__name__}", None, "ignored"))
            del out[key]
    return out


def _problem_runs(path: Path, problems: list[tuple[int, str]]) -> list[Issue]:
    """The reader's problems, one issue per run of alike ones (the same message but for its numbers):
    zeros appended to a log are one issue, not one per 9 bytes."""
    runs: list[list[Any]] = []  # [shape, first offset, last offset, count, first message]
    for offset, message in problems:
        shape = re.sub(r"\d+", "#", message)
        if runs and runs[-1][0] == shape:
            runs[-1][2:4] = [offset, runs[-1][3] + 1]
        else:
            runs.append([shape, offset, offset, 1, message])
    return [
        Issue(str(path), message if n == 1 else f"{n} damaged records from byte {a} to byte {b} (first: {message})", a)
        for _, a, b, n, message in runs
    ]


def _rail(
    path: Path, entry: dict[str, Any], source: str, period: Any, estimated: bool, issues: list[Issue]
) -> RailInfo:
    """One rail of the header (its fields of the wrong type left out)."""
    extra = entry.get("extra")
    return RailInfo(
        name=entry["name"],
        source=source,
        unit=str(entry.get("unit", "mW")),
        update_period_ns=period if type(period) is int else None,
        estimated=estimated,
        extra={"files": entry.get("files", []), **(extra if isinstance(extra, dict) else {})},
        sensor_model=_sensor_model(path, entry, issues),
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, Real) and not isinstance(value, bool) else None


def _sensor_model(path: Path, rail: dict[str, Any], issues: list[Issue]) -> SensorModel | None:
    """The rail's model from the header (None in version 1, or when the entry is not a model)."""
    entry = rail.get("sensor_model")
    if entry is None:
        return None
    try:
        return SensorModel.from_dict(entry)
    except ValueError as exc:
        issues.append(Issue(str(path), f"rail {rail['name']}: {exc}", None, "sensor model left to the data"))
        return None


def read(path: Path) -> Recording:
    """The power samples of one log as a :class:`Recording` (no markers)."""
    content = _content(path)
    issues = _problem_runs(path, content.problems)
    head = _checked(path, content.meta, "header", issues)
    trailer = None if content.trailer is None else _checked(path, content.trailer, "trailer", issues)
    damaged = bool(issues)
    if content.truncated_at is not None:
        issues.append(
            Issue(str(path), "record cut short: the log ends mid-record", content.truncated_at, "read up to here")
        )
    if trailer is None:
        issues.append(
            Issue(
                str(path),
                "no trailer: the sampler did not stop cleanly (killed?); update periods estimated from the samples",
                None,
                "estimated",
            )
        )
    elif trailer.get("error"):
        issues.append(Issue(str(path), f"sampler stopped with an error: {trailer['error']}", None, "kept"))
    base = head.get("monotonic_raw_ns") if type(head.get("monotonic_raw_ns")) is int else None
    periods = (trailer or {}).get("update_period_ns") or {
        name: period_from_changes(change_times(content.t_end, values)) for name, values in content.power.items()
    }
    estimated = bool(head.get("estimated"))
    rails = {
        r["name"]: _rail(path, r, str(head.get("source", "")), periods.get(r["name"]), estimated, issues)
        for r in head.get("rails", ())
        if isinstance(r, dict) and isinstance(r.get("name"), str)
    }
    n = len(content.t_end)
    span = (int(content.t_end[-1]) - int(content.t_end[0])) / 1e9 if n > 1 else 0.0
    extra: dict[str, Any] = {
        "source": head.get("source"),
        "estimated": estimated,
        "requested_hz": head.get("requested_hz"),
        "achieved_hz": _number((trailer or {}).get("achieved_hz")) or ((n - 1) / span if span > 0 else None),
        "missed_ticks": content.missed_ticks,
        "sensor_config": head.get("config", {}),
        "configured_update_ns": head.get("configured_update_ns"),
        "host": head.get("host"),
        "clock": head.get("clock"),
        "realtime_ns": head.get("realtime_ns"),
        "read_ns": _read_stats(content),
        "log_version": content.version,
        "sensor_model_notes": [
            f"{device}: {note}"  # how the sensor models were found, or why not
            for device, cfg in (head.get("config") or {}).get("devices", {}).items()
            if isinstance(cfg, dict)
            for note in cfg.get("notes") or []
        ],
    }
    if trailer:
        extra["sampler"] = {k: trailer.get(k) for k in ("lateness_us", "cpu_share", "stop_reason", "error")}
    if estimated:
        extra["warning"] = "ESTIMATED power: a model of CPU utilisation, not a measurement"
    meta = Meta(
        format=FORMAT,
        sources=[str(path)],
        clock_base_ns=base,
        rails=rails,
        issues=issues,
        partial=damaged or trailer is None or content.truncated_at is not None,
        extra=extra,
    )
    return Recording(empty_markers(), power_frame(content.t_end, content.power, base), meta)
