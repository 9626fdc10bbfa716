"""Reader of the power log (``.sbp``, docs/power-log.md) written by the power sampler.

Sample times are when each read completed (CLOCK_MONOTONIC_RAW ns); ``meta.clock_base_ns`` is
the log's start. Each rail's :class:`~streamline_bridge.model.RailInfo` carries the source's
unit, the measured update period (from the trailer, or estimated from the samples when the
sampler did not stop cleanly), whether it is an estimate, the sensor configuration, and (version 2)
the sensor model with where it came from (version 1: None, left to the data). A log
cut short or damaged is read as far as it goes and flagged partial, with an Issue per problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from streamline_bridge.errors import InputError
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
    try:
        content = read_log(path)
    except ValueError as exc:
        offset, message = exc.args
        raise InputError(path, message, offset) from None
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from None
    head, trailer = content.meta, content.trailer
    issues = [Issue(str(path), message, offset) for offset, message in content.problems]
    if content.truncated_at is not None:
        issues.append(Issue(str(path), "record cut short: the log ends mid-record", content.truncated_at,
                            "read up to here"))
    if trailer is None:
        issues.append(Issue(str(path), "no trailer: the sampler did not stop cleanly (killed?); "
                                       "update periods estimated from the samples", None, "estimated"))
    elif trailer.get("error"):
        issues.append(Issue(str(path), f"sampler stopped with an error: {trailer['error']}", None, "kept"))
    base = head.get("monotonic_raw_ns")
    periods = (trailer or {}).get("update_period_ns") or {
        name: period_from_changes(change_times(content.t_end, values)) for name, values in content.power.items()}
    estimated = bool(head.get("estimated"))
    rails = {
        r["name"]: RailInfo(name=r["name"], source=head.get("source", ""), unit=r.get("unit", "mW"),
                            update_period_ns=periods.get(r["name"]), estimated=estimated,
                            extra={"files": r.get("files", []), **r.get("extra", {})},
                            sensor_model=_sensor_model(path, r, issues))
        for r in head["rails"]
    }
    n = len(content.t_end)
    span = (int(content.t_end[-1]) - int(content.t_end[0])) / 1e9 if n > 1 else 0.0
    extra: dict[str, Any] = {
        "source": head.get("source"),
        "estimated": estimated,
        "requested_hz": head.get("requested_hz"),
        "achieved_hz": (trailer or {}).get("achieved_hz") or ((n - 1) / span if span > 0 else None),
        "missed_ticks": content.missed_ticks,
        "sensor_config": head.get("config", {}),
        "configured_update_ns": head.get("configured_update_ns"),
        "host": head.get("host"),
        "clock": head.get("clock"),
        "realtime_ns": head.get("realtime_ns"),
        "read_ns": _read_stats(content),
        "log_version": content.version,
        "sensor_model_notes": [f"{device}: {note}"  # how the sensor models were found, or why not
                               for device, cfg in (head.get("config") or {}).get("devices", {}).items()
                               if isinstance(cfg, dict) for note in cfg.get("notes") or []],
    }
    if trailer:
        extra["sampler"] = {k: trailer.get(k) for k in ("lateness_us", "cpu_share", "stop_reason", "error")}
    if estimated:
        extra["warning"] = "ESTIMATED power: a model of CPU utilisation, not a measurement"
    meta = Meta(format=FORMAT, sources=[str(path)], clock_base_ns=base, rails=rails, issues=issues,
                partial=trailer is None or content.truncated_at is not None or bool(content.problems),
                extra=extra)
    return Recording(empty_markers(), power_frame(content.t_end, content.power, base), meta)
