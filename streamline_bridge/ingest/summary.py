"""What a recording holds, as a plain dict (for ``inspect``): counts, streams, duration, clocks, issues."""

from __future__ import annotations

from typing import Any

import pandas as pd

from streamline_bridge.model import Recording


# CAM jobs carry times the application chose itself; they need not be on the capture clock.
_CALLER_TIMED = ("cam_job", "cam_job_start", "cam_job_deps", "cam_job_stop")


def _span_s(times: pd.Series) -> float | None:
    t = times.dropna()
    return None if t.empty else (int(t.max()) - int(t.min())) / 1e9


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
            "threads": sorted({(int(a), int(b)) for a, b in zip(m["pid"], m["tid"])}),
            "duration_s": _span_s(m.loc[~m["kind"].isin(_CALLER_TIMED), "time_ns"]),
        },
        "power": {
            "samples": int(len(p)),
            "rails": {
                str(rail): {
                    "samples": int(len(part)),
                    "missing": int(part["power_mw"].isna().sum()),
                    "mean_mw": None if part["power_mw"].dropna().empty else float(part["power_mw"].mean()),
                    "unit": rec.meta.rails[str(rail)].unit if str(rail) in rec.meta.rails else "mW",
                    "update_period_ms": (
                        rec.meta.rails[str(rail)].update_period_ns / 1e6
                        if str(rail) in rec.meta.rails and rec.meta.rails[str(rail)].update_period_ns
                        else None
                    ),
                    "estimated": bool(str(rail) in rec.meta.rails and rec.meta.rails[str(rail)].estimated),
                }
                for rail, part in p.groupby("rail", observed=True, sort=False)
            },
            "duration_s": _span_s(p["time_ns"]),
        },
        "counter_keys": {str(k): v for k, v in rec.meta.counter_keys.items()},
        "issues": [str(i) for i in rec.meta.issues],
        "extra": rec.meta.extra,
    }
    return out
