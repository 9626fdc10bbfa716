"""Reader for tegrastats logs (``tegrastats --logfile``, or its printed lines): FORMAT "tegrastats".

Only the power fields are read, in every release's form (``../shared/research/anchors.md`` §2):

* L4T <= 32 (TX2, Nano, Xavier): ``VDD_IN 1383/1383`` — current/average, unitless mW;
* L4T 35/36 (Orin, JetPack 5/6): ``VDD_GPU_SOC 2390mW/2390mW``;
* JetPack 7 (L4T 39): ``VDD_GPU_SOC 5139mW/5139mW/5139mW``.

The first value is the current power; the averages are tegrastats' own and are not kept. Rails
are never summed (on most boards VDD_IN already includes the others). Lines may start with a
``MM-DD-YYYY HH:MM:SS`` wall-clock stamp (1 s resolution: lines within one second are spread by
the interval); without stamps line *i* is at ``i × interval`` (default 1000 ms, tegrastats'
default). tegrastats has no CLOCK_MONOTONIC_RAW, so ``meta.clock_base_ns`` is None and
``time_ns`` equals ``time_rel_ns`` (seconds since the first line): align with an offset later.
TX1 on L4T 28 prints no rails at all; such a log reads as no power, with an Issue saying so.

The line grammar is :mod:`streamline_bridge.power.tegrastats_format`, shared with the live source.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from streamline_bridge.errors import InputError
from streamline_bridge.ingest.files import open_regular
from streamline_bridge.ingest.streamline_export import text_head
from streamline_bridge.model import Issue, Meta, RailInfo, Recording, empty_markers, power_frame
from streamline_bridge.power.tegrastats_format import NOT_CONNECTED, TegrastatsLine, parse_line
from streamline_bridge.sensor_model import SensorModel

FORMAT = "tegrastats"
DEFAULT_INTERVAL_MS = 1000
MAX_LINE = 1 << 16  # bytes; a tegrastats line has a few hundred


def sniff(path: Path) -> bool:
    """A text file whose first non-empty line is a tegrastats line."""
    for line in (text_head(path, 4096) or "").splitlines():
        if line.strip():
            return parse_line(line) is not None
    return False


def read(path: Path) -> Recording:
    """Read a tegrastats log with the default interval (see :func:`read_log`)."""
    return read_log(path)


def read_log(path: str | os.PathLike[str], interval_ms: float | None = None) -> Recording:
    """Read a tegrastats log; ``interval_ms`` is the ``--interval`` it ran with, if known.

    Without stamps the interval defaults to 1000 ms; with stamps it is measured from them unless
    given. Lines that are not tegrastats lines are skipped, with one Issue per run of them (file and line numbers).
    """
    p = Path(path)
    issues: list[Issue] = []
    lines: list[TegrastatsLine] = []
    bad: list[list[Any]] = []  # runs of lines that are not tegrastats lines: [first, last, count, first text]
    previous_bad = False  # whether the previous non-blank line was one
    with open_regular(p) as f:
        for no, raw, ended in _lines(f):
            if not raw.strip():
                continue
            parsed = parse_line(raw)
            if parsed is None:
                if previous_bad:
                    bad[-1][1:3] = [no, bad[-1][2] + 1]
                else:
                    bad.append([no, no, 1, raw])
                previous_bad = True
                continue
            previous_bad = False
            if not ended and lines and set(parsed.rails) != set(lines[-1].rails):
                issues.append(Issue(str(p), f"line {no} is cut short (no newline, rails missing)"))
                continue
            lines.append(parsed)
    partial = bool(bad or issues)
    issues[:0] = [
        Issue(
            str(p),
            (f"line {a} is not a tegrastats line" if n == 1 else f"lines {a}-{b} ({n} lines) are not tegrastats lines")
            + f": {first[:60]!r}",
        )
        for a, b, n, first in bad
    ]
    if not lines:
        raise InputError(p, "no tegrastats lines")
    names = list(dict.fromkeys(r for ln in lines for r in ln.rails))
    unconnected = [n for n in names if n.split("#")[0] == NOT_CONNECTED]
    if unconnected:
        names = [n for n in names if n not in unconnected]
        issues.append(
            Issue(
                str(p), f"{len(unconnected)} rail(s) named {NOT_CONNECTED} (not connected) left out", action="skipped"
            )
        )
    times, period, how = _times(lines, interval_ms)
    issues.append(Issue(str(p), how, action="times estimated"))
    meta = Meta(
        format=FORMAT,
        sources=[str(p)],
        issues=issues,
        partial=partial,
        extra={
            "lines": len(lines),
            "interval_ms": period / 1e6,
            "rails": names,
            "duration_s": float(times[-1] - times[0]) / 1e9 if len(times) else None,
        },
    )
    if lines[0].stamp is not None:
        meta.extra["first_stamp"] = lines[0].stamp.isoformat(sep=" ")
    if not names:
        issues.append(
            Issue(
                str(p),
                "no power rails in this log: tegrastats on the TX1 (L4T 28) prints none; "
                "record the INA3221 sysfs rails with the power sampler instead",
                action="no power read",
            )
        )
        return Recording(empty_markers(), power_frame(times, {}, None), meta)
    rails = {n: np.array([ln.rails.get(n, np.nan) for ln in lines]) for n in names}
    for n in names:
        meta.rails[n] = RailInfo(
            name=n,
            source="tegrastats",
            unit="mW",
            update_period_ns=int(period),
            extra={"averages_dropped": True},
            sensor_model=SensorModel("window", period_ns=int(period), source="source"),
        )
        missing = int(np.isnan(rails[n]).sum())
        if missing:
            issues.append(Issue(str(p), f"rail {n} missing from {missing} line(s)", action="left as NaN"))
    return Recording(empty_markers(), power_frame(times, rails, None), meta)


def _lines(f: BinaryIO) -> Iterator[tuple[int, str, bool]]:
    """(number, text, whether it ends with a newline) of each line, read one at a time; a line longer
    than :data:`MAX_LINE` bytes is cut to that length (it is no tegrastats line)."""
    no, rest_of_long = 0, False
    for chunk in iter(lambda: f.readline(MAX_LINE), b""):
        long = len(chunk) == MAX_LINE and not chunk.endswith(b"\n")
        if not rest_of_long:
            no += 1
            yield no, chunk.rstrip(b"\n").decode("utf-8", "replace"), long or chunk.endswith(b"\n")
        rest_of_long = long


def _times(lines: list[TegrastatsLine], interval_ms: float | None) -> tuple[np.ndarray, int, str]:
    """Relative time (ns) of each line, the line period (ns), and how they were worked out."""
    n = len(lines)
    stamps = [ln.stamp for ln in lines if ln.stamp is not None]
    if len(stamps) < n:
        period = int(round((interval_ms or DEFAULT_INTERVAL_MS) * 1e6))
        how = f"no timestamps: line i is at i × {period / 1e6:g} ms " + (
            "(given interval)" if interval_ms else "(tegrastats' default interval; pass the real one)"
        )
        return np.arange(n, dtype=np.int64) * period, period, how
    secs = np.array([(s - stamps[0]).total_seconds() for s in stamps], dtype=np.int64)
    if interval_ms:
        period, source = int(round(interval_ms * 1e6)), "given interval"
    elif secs[-1] > 0:
        period = int(round(secs[-1] * 1e9 / max(n - 1, 1) / 1e6)) * 1_000_000 or 1_000_000
        source = "measured"
    else:
        period, source = DEFAULT_INTERVAL_MS * 1_000_000, "tegrastats' default interval; pass the real one"
    # lines sharing one stamp (1 s resolution) are spread by the period, in order
    run = np.zeros(n, dtype=np.int64)
    for i in range(1, n):
        run[i] = run[i - 1] + 1 if secs[i] == secs[i - 1] else 0
    times = secs * 1_000_000_000 + run * period
    how = f"times from the 1 s wall-clock stamps, lines within a second spread by {period / 1e6:g} ms ({source})"
    return times, period, how
