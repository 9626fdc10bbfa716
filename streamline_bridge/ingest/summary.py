"""What a recording holds, as a plain dict (for ``inspect``): counts, streams, duration, clocks, issues."""

from __future__ import annotations

from typing import Any

import pandas as pd

from streamline_bridge.model import RailInfo, Recording

# CAM jobs carry times the application chose itself; they need not be on the capture clock.
_CALLER_TIMED = ("cam_job", "cam_job_start", "cam_job_deps", "cam_job_stop")


def _span_s(times: pd.Series) -> float | None:
    t = times.dropna()
    return None if t.empty else (int(t.max()) - int(t.min())) / 1e9


def _rail(part: pd.DataFrame, info: RailInfo | None) -> dict[str, Any]:
    """One rail's samples, gaps, mean and what is known about its sensor."""
    mw = part["power_mw"]
    return {
        "samples": int(len(part)),
        "missing": int(mw.isna().sum()),
        "mean_mw": None if mw.dropna().empty else float(mw.mean()),
        "unit": info.unit if info else "mW",
        "update_period_ms": info.update_period_ns / 1e6 if info and info.update_period_ns else None,
        "estimated": bool(info and info.estimated),
        "sensor_model": None if info is None or info.sensor_model is None else info.sensor_model.to_dict(),
    }


def summarize(rec: Recording) -> dict[str, Any]:
    """A JSON-serialisable summary of ``rec``."""
    m, p = rec.markers, rec.power
    out: dict[str, Any] = {
        "format": rec.meta.format,
        "sources": rec.meta.sources,
        "clock_base_ns": rec.meta.clock_base_ns,
        "protocol": rec.meta.protocol,
        "partial": rec.meta.partial,
        "markers": {
            "count": int(len(m)),
            "by_kind": {str(k): int(v) for k, v in m["kind"].value_counts(sort=False).items() if v},
            "threads": sorted(map(tuple, m[["pid", "tid"]].drop_duplicates().to_numpy().tolist())),
            "duration_s": _span_s(m.loc[~m["kind"].isin(_CALLER_TIMED), "time_ns"]),
        },
        "power": {
            "samples": int(len(p)),
            "rails": {
                str(rail): _rail(part, rec.meta.rails.get(str(rail)))
                for rail, part in p.groupby("rail", observed=True, sort=False)
            },
            "duration_s": _span_s(p["time_ns"]),
        },
        "counter_keys": {str(k): v for k, v in rec.meta.counter_keys.items()},
        "issues": [str(i) for i in rec.meta.issues],
        "extra": rec.meta.extra,
    }
    return out
