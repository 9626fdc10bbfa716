"""Reader for Streamline's text exports: FORMAT "streamline-export".

Three kinds of table, told apart by their columns (the README's "Reading Streamline captures" section lists them):

* **Log view** export — ``Time, Duration, Message, Group, Channel, Process/Thread`` (Streamline
  6.1+) or ``Time, Delta, Message, Group, Channel, Core, Process/Thread`` (older). A row with a
  Duration > 0 becomes a ``text`` on its channel plus an ``end`` Duration later; Duration 0 is a
  bookmark (``marker``). Without a Duration column every row is a ``text`` (it lasts until the next
  one on its channel, as in the annotation protocol).
* **Bookmarks** report (``streamline -report -bookmarks``) — a time and a text column: ``marker`` rows.
* **Timeline** report (``streamline -report -timeline``) — a time column and one column per
  counter, already binned by Streamline. Power columns (a W/mW/µW unit in the header, or "power"
  in its name) become power samples at the bin times; the rest is summarised in ``meta.extra``.

Times are seconds since the capture start: they fill ``time_rel_ns``; ``time_ns`` stays <NA>
(``meta.clock_base_ns`` is None) until the energy stage places them with the capture or an offset.

Tolerated: any column order, extra columns, quoted fields, a BOM (UTF-8 or UTF-16), separators
tab / ``;`` / ``,`` / runs of spaces (``-format space``), a preamble before the header, and decimal
commas (``1,234`` = 1.234 when the separator is ``;`` or whitespace). What cannot be read is
refused with an :class:`InputError` naming the file and line.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from streamline_bridge.errors import InputError
from streamline_bridge.ingest.files import read_regular
from streamline_bridge.ingest.units import mw_per_unit
from streamline_bridge.model import (
    Issue,
    Meta,
    RailInfo,
    Recording,
    empty_markers,
    empty_power,
    markers_frame,
    power_frame,
)
from streamline_bridge.sensor_model import SensorModel

FORMAT = "streamline-export"
UNPLACED = "time_ns left empty"  # the Issue action of times relative to the capture start, until placed

_TIME_UNITS = {"": 1e9, "s": 1e9, "sec": 1e9, "ms": 1e6, "us": 1e3, "µs": 1e3, "ns": 1.0}
_UNIT_IN_HEADER = re.compile(r"\s*[\(\[]\s*([^\)\]]*?)\s*[\)\]]\s*$")
_NUMBER = re.compile(r"^([-+]?(?:\d+(?:[.,]\d+)*|[.,]\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-zµ%]*)$")
_CLOCK = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:[.,]\d+)?)$")
_TEXT_COLUMNS = ("message", "annotation", "bookmark", "name", "text", "label", "description")
_LOG_COLUMNS = ("duration", "delta", "channel", "group", "process/thread", "thread", "process")
_MAX_PREAMBLE = 50


@dataclass
class _Table:
    """The header and rows of an export, with where each row came from."""

    path: Path
    header: list[str]
    rows: list[list[str]]
    lines: list[int]  # 1-based line number of each row
    sep: str  # "\t", ";", ",", or " " (runs of whitespace)

    def column(self, *names: str) -> int | None:
        """Index of the first column whose name (unit removed, lower case) is one of ``names``."""
        keys = [_bare(h) for h in self.header]
        for name in names:
            if name in keys:
                return keys.index(name)
        return None


def _bare(header: str) -> str:
    return _UNIT_IN_HEADER.sub("", header).strip().lower()


def _unit(header: str) -> str:
    m = _UNIT_IN_HEADER.search(header)
    return m.group(1).strip() if m else ""


# --- reading the table ------------------------------------------------------------------------------


def _decode(data: bytes, errors: str = "strict") -> str:
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return data.decode("utf-16", errors).lstrip("\ufeff")
    return data.decode("utf-8-sig", "replace")


def _split(line: str, sep: str) -> list[str]:
    if sep == " ":
        # runs of whitespace separate; double quotes group
        return [a or b for a, b in re.findall(r'"((?:[^"]|"")*)"|(\S+)', line)]
    return next(csv.reader([line], delimiter=sep, quotechar='"', skipinitialspace=True))


def _separator(line: str) -> str:
    for sep in ("\t", ";", ","):
        if sep in line:
            return sep
    return " "


def _is_header(cells: list[str]) -> bool:
    keys = [_bare(c) for c in cells]
    return any(k == "time" or k.startswith("time ") for k in keys) and len(keys) >= 2


def _header_cells(line: str) -> tuple[list[str], str, list[int] | None]:
    """Column names, separator and (for a space-aligned header) the column start positions."""
    sep = _separator(line)
    if sep == " " and re.search(r"\S\s{2,}\S", line):
        found = list(re.finditer(r"\S+(?: \S+)*", line))
        return [m.group().strip('"') for m in found], sep, [m.start() for m in found]
    return [c.strip() for c in _split(line, sep)], sep, None


def _row_cells(line: str, sep: str, starts: list[int] | None) -> list[str]:
    """Fields of a data row: fixed columns when it lines up with a space-aligned header, else split."""
    if starts and all(s >= len(line) or line[s - 1] == " " for s in starts[1:]):
        ends = starts[1:] + [len(line)]
        return [line[a:b].strip() for a, b in zip(starts, ends)]
    return [c.strip() for c in _split(line, sep)]


def _table(path: Path, text: str) -> _Table:
    lines = text.splitlines()
    for i, line in enumerate(lines[:_MAX_PREAMBLE]):  # noqa: B007 (i, the header's line, is read below)
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        header, sep, starts = _header_cells(line)
        if _is_header(header):
            break
    else:
        raise InputError(path, f"no header row with a Time column in the first {_MAX_PREAMBLE} lines")
    rows, numbers = [], []
    for no, line in enumerate(lines[i + 1 :], start=i + 2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            rows.append(_row_cells(line, sep, starts))
        except csv.Error as exc:
            raise InputError(path, f"line {no}: {exc}") from None
        numbers.append(no)
    return _Table(path, header, rows, numbers, sep)


def _number(t: _Table, row: int, cell: str, what: str) -> float:
    """A number cell; decimal comma unless the separator is ','; units after the number are ignored."""
    m = _NUMBER.match(cell)
    if not m:
        raise InputError(t.path, f"line {t.lines[row]}: {what} {cell!r} is not a number")
    s = m.group(1)
    if t.sep == ",":
        s = s.replace(",", "")  # thousands separators in a quoted field
    elif "," in s:
        s = s.replace(".", "").replace(",", ".") if s.count(",") == 1 else s.replace(",", "")
    try:
        return float(s)
    except ValueError:
        raise InputError(t.path, f"line {t.lines[row]}: {what} {cell!r} is not a number") from None


def _seconds_ns(t: _Table, row: int, cell: str, scale: float, what: str) -> int:
    """A time cell in ns: a number in the header's unit (default s), or ``[h:]mm:ss.fff``."""
    m = _CLOCK.match(cell)
    if m:
        h, mi, s = m.groups()
        secs = int(h or 0) * 3600 + int(mi) * 60 + float(s.replace(",", "."))
        if secs < 2**62 / 1e9:
            return int(round(secs * 1e9))
    m = _NUMBER.match(cell)
    unit = m.group(2).lower() if m else ""
    ns = _number(t, row, cell, what) * (_TIME_UNITS[unit] if unit and unit in _TIME_UNITS else scale)
    if not abs(ns) < 2**62:
        raise InputError(t.path, f"line {t.lines[row]}: {what} {cell!r} is out of range")
    return int(round(ns))


# --- sniff / read ----------------------------------------------------------------------------------


def text_head(path: Path, size: int = 8192) -> str | None:
    """The first ``size`` bytes of a text file, decoded (UTF-8, or UTF-16 with a BOM); None if binary."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        with open(p, "rb") as fh:
            head = fh.read(size)
    except OSError:
        return None
    if head[:2] not in (b"\xff\xfe", b"\xfe\xff") and b"\0" in head:
        return None
    return _decode(head, "replace")


def sniff(path: Path) -> bool:
    """A text file with a header row (within its first lines) that has a Time column."""
    for line in (text_head(path) or "").splitlines()[:_MAX_PREAMBLE]:
        if line.strip() and not line.lstrip().startswith("#") and _is_header(_header_cells(line)[0]):
            return True
    return False


def read(path: Path) -> Recording:
    """Read a Log view export, a bookmarks report or a timeline report."""
    p = Path(path)
    t = _table(p, _decode(read_regular(p)))
    if not t.rows:
        raise InputError(p, "header but no rows")
    tcol = t.column("time")
    if tcol is None:
        tcol = next(i for i, h in enumerate(t.header) if _bare(h).startswith("time"))
    text_col = t.column(*_TEXT_COLUMNS)
    if text_col is not None:
        return _log(t, tcol, text_col)
    return _timeline(t, tcol)


def _time_scale(t: _Table, col: int) -> float:
    unit = _unit(t.header[col]).lower()
    if unit not in _TIME_UNITS:
        raise InputError(t.path, f"line 1: unknown time unit {unit!r} in column {t.header[col]!r}")
    return _TIME_UNITS[unit]


def _cell(row: list[str], col: int | None) -> str:
    return row[col] if col is not None and col < len(row) else ""


def _log(t: _Table, tcol: int, text_col: int) -> Recording:
    """Markers from a Log view export or a bookmarks report."""
    scale = _time_scale(t, tcol)
    dur_col = t.column("duration")
    chan_col, group_col = t.column("channel"), t.column("group")
    thread_col = t.column("process/thread", "thread", "process")
    core_col = t.column("core")
    bookmarks_only = all(t.column(c) is None for c in _LOG_COLUMNS)
    width = len(t.header)
    cols: dict[str, list[Any]] = {
        k: []
        for k in (
            "time_rel_ns",
            "kind",
            "text",
            "channel",
            "channel_name",
            "group",
            "group_name",
            "pid",
            "tid",
            "core",
            "order",
        )
    }
    channels: dict[str, int] = {}
    groups: dict[str, int] = {}
    streams: dict[tuple[int, int], int] = {}

    def add(time_ns: int, kind: str, text: str, ch, ch_name, gr, gr_name, pid, tid, core, order) -> None:
        for k, v in zip(cols, (time_ns, kind, text, ch, ch_name, gr, gr_name, pid, tid, core, order)):
            cols[k].append(v)

    for r, row in enumerate(t.rows):
        if len(row) > width and t.sep == " ":  # unquoted spaces in the free text: give them back to it
            extra = len(row) - width
            row = row[:text_col] + [" ".join(row[text_col : text_col + extra + 1])] + row[text_col + extra + 1 :]
        if len(row) <= max(tcol, text_col) and not _cell(row, tcol):
            raise InputError(t.path, f"line {t.lines[r]}: {len(row)} field(s), expected {width}")
        start = _seconds_ns(t, r, _cell(row, tcol), scale, "time")
        text = _cell(row, text_col)
        ch, ch_name = _id_or_name(_cell(row, chan_col), channels)
        gr, gr_name = _id_or_name(_cell(row, group_col), groups)
        pid, tid = _process_thread(_cell(row, thread_col))
        core = _small_int(t, r, _cell(row, core_col), "core") if _cell(row, core_col) else None
        dur = _seconds_ns(t, r, _cell(row, dur_col), scale, "duration") if _cell(row, dur_col) else None
        if bookmarks_only or dur == 0:
            add(start, "marker", text, None, None, gr, gr_name, pid, tid, core, 2 * r)
        else:
            add(start, "text" if text else "end", text, ch, ch_name, gr, gr_name, pid, tid, core, 2 * r)
            if dur is not None:
                add(start + dur, "end", "", ch, ch_name, gr, gr_name, pid, tid, core, 2 * r + 1)
    for pid, tid in zip(cols["pid"], cols["tid"]):
        streams.setdefault((pid, tid), len(streams))
    cols["stream"] = [streams[k] for k in zip(cols["pid"], cols["tid"])]
    order = np.lexsort((np.asarray(cols["order"]), np.asarray(cols["time_rel_ns"]), np.asarray(cols["stream"])))
    cols.pop("order")
    sorted_cols = {k: [v[i] for i in order] for k, v in cols.items()}
    sorted_cols["time_ns"] = [pd.NA] * len(order)
    markers = markers_frame(sorted_cols, None)
    kind = "bookmarks" if bookmarks_only else ("log" if dur_col is not None else "log (no Duration column)")
    issues = [
        Issue(
            str(t.path),
            "times are relative to the capture start; give the capture or an offset to place them",
            action=UNPLACED,
        )
    ]
    if kind == "log (no Duration column)":
        issues.append(
            Issue(
                str(t.path),
                "no Duration column (older Streamline): each row is a text that lasts "
                "until the next one on its channel",
                action="read as text starts",
            )
        )
    meta = Meta(
        format=FORMAT,
        sources=[str(t.path)],
        issues=issues,
        extra={
            "export": kind,
            "columns": t.header,
            "rows": len(t.rows),
            "separator": {"\t": "tab", " ": "space"}.get(t.sep, t.sep),
            "channels": channels,
            "groups": groups,
            "duration_s": (max(cols["time_rel_ns"]) - min(cols["time_rel_ns"])) / 1e9,
        },
    )
    return Recording(markers, empty_power(), meta)


def _small_int(t: _Table, row: int, cell: str, what: str) -> int:
    value = _number(t, row, cell, what)
    if not (value.is_integer() and abs(value) < 2**31):
        raise InputError(t.path, f"line {t.lines[row]}: {what} {cell!r} is not a small whole number")
    return int(value)


def _id_or_name(cell: str, names: dict[str, int]) -> tuple[int | None, str | None]:
    """A channel/group cell: a number is the id; a name gets a stable id (1, 2 ... in order of appearance)."""
    cell = cell.strip()
    if not cell:
        return None, None
    m = re.fullmatch(r"(?:(?:channel|group)\s*)?(-?\d{1,9})", cell, re.I)
    if m:
        return int(m.group(1)), None
    if cell not in names:
        names[cell] = len(names) + 1
    return names[cell], cell


def _process_thread(cell: str) -> tuple[int, int]:
    """pid and tid from ``name [pid] / name [tid]``, ``pid/tid`` or similar; 0 when absent."""
    nums = [int(a or b) for a, b in re.findall(r"\[#?(\d{1,10})\]|#(\d{1,10})\b", cell)]
    if not nums:
        nums = [int(n) for n in re.findall(r"\b(\d{1,10})\b", cell)]
    if not nums:
        return 0, 0
    return nums[0], nums[-1]


def _timeline(t: _Table, tcol: int) -> Recording:
    """Power samples (and counter summaries) from a binned timeline report."""
    scale = _time_scale(t, tcol)
    times = np.array(
        [_seconds_ns(t, r, _cell(row, tcol), scale, "time") for r, row in enumerate(t.rows)], dtype=np.int64
    )
    issues: list[Issue] = []
    rails: dict[str, np.ndarray] = {}
    infos: dict[str, RailInfo] = {}
    counters: dict[str, Any] = {}
    bin_ns = int(np.median(np.diff(times))) if len(times) > 1 else None
    for c, header in enumerate(t.header):
        if c == tcol or not header:
            continue
        values = np.array(
            [
                _number(t, r, _cell(row, c), header) if _cell(row, c) not in ("", "-") else np.nan
                for r, row in enumerate(t.rows)
            ],
            dtype=np.float64,
        )
        unit = _unit(header)
        factor = mw_per_unit(unit)
        is_power = factor is not None or "power" in header.lower()
        if not is_power:
            counters[header] = {"unit": unit, "mean": float(np.nanmean(values)) if np.isfinite(values).any() else None}
            continue
        if factor is None:
            issues.append(Issue(str(t.path), f"column {header!r} has no power unit: assumed W", action="assumed W"))
            factor = 1000.0
        name = re.sub(r"(?i)\bpower\b[:\s]*|[:\s]+$", "", _UNIT_IN_HEADER.sub("", header)).strip(" :-_") or header
        rails[name] = values * factor
        infos[name] = RailInfo(
            name=name,
            source=f"streamline timeline column {header!r}",
            unit=unit or "W",
            update_period_ns=bin_ns,
            extra={"binned": True},
            sensor_model=SensorModel("window", period_ns=bin_ns, source="source") if bin_ns else None,
        )
    if not rails and not counters:
        raise InputError(t.path, "no Message column (log/bookmarks) and no counter columns (timeline)")
    if rails:
        issues.append(
            Issue(
                str(t.path),
                "power values are Streamline's per-bin averages ("
                + (f"bin {bin_ns / 1e6:g} ms" if bin_ns else "one bin")
                + "), "
                "not raw samples",
                action="used as samples at the bin times",
            )
        )
    issues.append(
        Issue(
            str(t.path),
            "times are relative to the capture start; give the capture or an offset to place them",
            action="time_ns = time_rel_ns",
        )
    )
    power = power_frame(times, rails, None)
    meta = Meta(
        format=FORMAT,
        sources=[str(t.path)],
        rails=infos,
        issues=issues,
        extra={
            "export": "timeline",
            "columns": t.header,
            "rows": len(t.rows),
            "bin_ms": bin_ns / 1e6 if bin_ns else None,
            "counters": counters,
            "separator": {"\t": "tab", " ": "space"}.get(t.sep, t.sep),
            "duration_s": float(times[-1] - times[0]) / 1e9,
        },
    )
    return Recording(empty_markers(), power, meta)
