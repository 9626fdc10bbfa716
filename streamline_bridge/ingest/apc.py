"""Reader for Streamline capture folders (``X.apc/``) written by gatord 6.x–9.x (protocol 6xx–9xx).

Reads ``captured.xml`` (protocol, counter keys), ``events.xml`` (counter titles, units,
multipliers) and the data files ``0000000000`` (+ further ten-digit files, as continuations):

* the Summary frame gives the clock base ``C`` (CLOCK_MONOTONIC_RAW at the start);
* EXTERNAL frames are reassembled per connection; streams starting ``ANNOTATE N\\n`` are decoded
  into markers (their times are absolute; ``time_rel_ns = time_ns - C``);
* the legacy ANNOTATE frames of gator.ko builds become markers too (frame time + ``C``);
* annotation counters titled ``Power`` become power samples too (:mod:`.annotation_power`);
* BLOCK_COUNTER and COUNTER samples of power counters (units W/mW/µW or title "Power") become
  power samples in mW (``time_ns = t + C``); the others are summarised in ``meta.extra["counters"]``
  and returned whole by :func:`read_capture`;
* every other frame type (perf data, scheduling, names ...) is skipped by its length and counted.

See ``../shared/spec/apc-capture-format.md`` for the layout and the README's "Reading Streamline captures" section.
"""

from __future__ import annotations

import mmap
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from streamline_bridge.errors import InputError
from streamline_bridge.ingest import annotation_markers, annotation_power, annotation_stream
from streamline_bridge.ingest import apc_frames as fr
from streamline_bridge.ingest.apc_xml import (
    CapturedXml,
    EventInfo,
    event_for,
    read_captured,
    read_counters_xml,
    read_events,
)
from streamline_bridge.model import (
    Issue,
    Meta,
    RailInfo,
    Recording,
    empty_markers,
    empty_power,
    markers_frame,
)
from streamline_bridge.power.period import change_times, period_from_changes
from streamline_bridge.sensor_model import INSTANT_SOURCE

FORMAT = "apc"
DATA_FILE = re.compile(r"\d{10}")
COUNTER_COLUMNS = ("t_rel_ns", "core", "tid", "key", "counter", "value")


def sniff(path: Path) -> bool:
    """A folder named ``*.apc`` or holding ``0000000000``/``captured.xml``, or a data file inside one."""
    p = Path(path)
    if p.is_dir():
        return p.suffix.lower() == ".apc" or (p / "0000000000").is_file() or (p / "captured.xml").is_file()
    return p.is_file() and bool(DATA_FILE.fullmatch(p.name)) and sniff(p.parent) and p.parent.is_dir()


def read(path: Path) -> Recording:
    """Read a capture folder (or its data file) as a :class:`Recording`."""
    return read_capture(path).recording


@dataclass
class Capture:
    """Everything read from one capture: the recording, plus what does not fit the model."""

    recording: Recording
    counters: pd.DataFrame  # every counter sample: t_rel_ns, core, tid, key, counter, value (raw)
    summary: dict[str, Any] = field(default_factory=dict)  # clocks and attributes of the Summary frame


class _Reader:
    """One read of one capture folder; collects issues with file and byte offset."""

    def __init__(self, folder: Path, files: list[Path]):
        self.folder = folder
        self.files = files
        self.issues: list[Issue] = []
        self.partial = False
        self.spans: list[tuple[int, Path]] = []  # (start offset in the joined buffer, file)

    def issue(self, message: str, offset: int | None = None, *, damage: bool = True,
              action: str = "skipped", file: Path | None = None) -> None:
        where = file or self.folder
        if offset is not None and file is None:
            for start, f in reversed(self.spans):
                if offset >= start:
                    where, offset = f, offset - start
                    break
        self.issues.append(Issue(str(where), message, offset, action))
        self.partial |= damage


def _folder_and_files(path: Path) -> tuple[Path, list[Path]]:
    p = Path(path)
    folder = p.parent if p.is_file() else p
    if not folder.is_dir():
        raise InputError(p, "not a capture folder")
    files = sorted(f for f in folder.iterdir() if DATA_FILE.fullmatch(f.name) and f.is_file())
    if not files:
        raise InputError(folder, "no data file (0000000000): not a capture folder, or gatord recorded nothing")
    return folder, files


def read_capture(path: str | os.PathLike[str]) -> Capture:
    """Read a capture folder; bad bytes become :class:`Issue` s (``meta.partial``), never exceptions.

    Raises :class:`InputError` only when there is no data file at all.
    """
    folder, files = _folder_and_files(Path(path))
    r = _Reader(folder, files)
    captured, events = _read_xml(r, folder)
    buf, close = _load(files, r)
    try:
        cap = _decode(r, buf, captured, events)
    finally:
        close()
    offered = folder / "counters.xml"
    if offered.is_file():
        try:
            cap.recording.meta.extra["counters_offered"] = len(read_counters_xml(offered))
        except InputError as exc:
            r.issue(exc.message, file=offered, damage=False, action="ignored")
    return cap


def _read_xml(r: _Reader, folder: Path) -> tuple[CapturedXml | None, dict[str, EventInfo]]:
    captured = None
    path = folder / "captured.xml"
    if not path.is_file():
        r.issue("captured.xml missing: the capture did not finish (gatord writes it at the end); "
                "counter names unknown", file=path, action="read the data without it")
    else:
        try:
            captured = read_captured(path)
        except InputError as exc:
            r.issue(exc.message, file=path, action="read the data without it")
        else:
            for problem in captured.problems:
                r.issue(problem, file=path, damage=False)
    events: dict[str, EventInfo] = {}
    path = folder / "events.xml"
    if path.is_file():
        try:
            events = read_events(path)
        except InputError as exc:
            r.issue(exc.message, file=path, action="counters left unscaled")
    elif captured is not None and captured.counters:
        r.issue("events.xml missing: counter units and multipliers unknown", file=path, damage=False,
                action="counters left unscaled")
    return captured, events


def _load(files: list[Path], r: _Reader):
    """The data as one buffer (an mmap for a single file) and a function that releases it."""
    if len(files) == 1:
        r.spans = [(0, files[0])]
        size = files[0].stat().st_size
        if size == 0:
            return b"", lambda: None
        with open(files[0], "rb") as fh:
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)

        def close() -> None:
            try:
                mm.close()
            except BufferError:  # a view is still referenced (e.g. by a traceback): the GC unmaps it
                pass

        return mm, close
    parts = []
    pos = 0
    for f in files:
        r.spans.append((pos, f))
        parts.append(f.read_bytes())
        pos += len(parts[-1])
    return b"".join(parts), lambda: None


def _decode(r: _Reader, buf, captured: CapturedXml | None, events: dict[str, EventInfo]) -> Capture:
    w = fr.walk(buf)
    if w.error is not None:
        r.issue(f"{w.error}; {len(buf) - w.error.offset} bytes from here not read", w.error.offset)
    for offset, types, size in _runs(buf, w.unknown):
        r.issue(f"unknown frame type {types[0]}" if len(types) == 1 else
                f"{len(types)} frames of unknown type ({', '.join(map(str, sorted(set(types))[:8]))}"
                f"{', ...' if len(set(types)) > 8 else ''}), {size} bytes", offset)
    if w.zero_length:
        r.issue(f"{w.zero_length} record(s) of length 0", damage=False)
    summary, cores = _summary(r, buf, w.frames[fr.SUMMARY])
    base = summary["clocks"]["monotonic_raw_ns"] if summary else None
    if base is None:
        r.issue("no Summary frame: clock base unknown; counter times are relative to the capture start",
                action="times left relative")
    keys = captured.keys if captured else {}
    counters = _counters(r, buf, w, keys)
    ext = fr.external_streams(buf, w.frames[fr.EXTERNAL])
    markers, streams, decoded_streams = _external_markers(r, ext, base)
    legacy, legacy_info = _legacy_markers(r, buf, w.frames[fr.ANNOTATE], base, first_stream=len(streams))
    power, rails, counter_info = _power(counters, keys, captured, events, base)

    marker_tables = [m for m in markers + legacy if len(m)]
    all_markers = pd.concat(marker_tables, ignore_index=True) if marker_tables else empty_markers()
    extra: dict[str, Any] = {
        "data_files": [f.name for f in r.files],
        "frames": {fr.FRAME_NAMES.get(t, f"type {t}"): n for t, n in sorted(w.counts.items())},
        "skipped_bytes": {fr.FRAME_NAMES.get(t, f"type {t}"): n for t, n in sorted(w.sizes.items())
                          if t not in fr.DECODED},
        "header_only_frames": {fr.FRAME_NAMES.get(t, f"type {t}"): n for t, n in sorted(w.header_only.items())},
        "bytes_read": w.end,
    }
    if captured is not None:
        extra["captured"] = captured.attributes
        extra["target"] = captured.target
    if summary:
        extra["summary"] = summary
    if cores:
        extra["cores"] = cores
    extra["streams"] = streams + legacy_info
    extra["external"] = {"empty_frames": ext.empty, "id_only_frames": ext.id_only, "close_records": ext.closes}
    extra["counters"] = counter_info
    extra["duration_s"] = _duration(counters, all_markers)
    meta = Meta(
        format=FORMAT,
        sources=[str(r.folder)],
        clock_base_ns=base,
        protocol=captured.protocol if captured else None,
        counter_keys=dict(keys),
        counters={k: v for d in decoded_streams for k, v in d.counter_definitions().items()},
        rails=rails,
        issues=r.issues,
        partial=r.partial,
        extra=extra,
    )
    return Capture(annotation_power.add_power(Recording(all_markers, power, meta), decoded_streams), counters,
                   summary or {})


def _pairs(flat: list[int]):
    return zip(flat[0::2], flat[1::2])


def _runs(buf, unknown: list[tuple[int, int]]) -> list[tuple[int, list[int], int]]:
    """Frames of unknown type that follow each other as runs: (offset, their types, bytes), one issue each."""
    runs: list[list[Any]] = []
    for pos, t in unknown:
        size = 4 + int.from_bytes(buf[pos:pos + 4], "little")  # (walk() lists only frames of positive length)
        if runs and runs[-1][0] + runs[-1][2] == pos:
            runs[-1][1].append(t)
            runs[-1][2] += size
        else:
            runs.append([pos, [t], size])
    return [(pos, types, size) for pos, types, size in runs]


def _summary(r: _Reader, buf, frames: list[int]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The Summary message (clocks, attributes) and the core-name messages of the SUMMARY frames."""
    summary = None
    cores: list[dict[str, Any]] = []
    for s, e in _pairs(frames):
        try:
            code = fr.sleb(buf, s + 1)[0]
            if code == 1:
                if summary is not None:
                    r.issue("a second Summary message", s - 4, damage=False, action="ignored")
                    continue
                m = fr.SummaryMessage.parse(buf[s + 1 : e])
                c = m.clocks
                summary = {
                    "clocks": {"realtime_ns": c.realtime, "boottime_ns": c.boottime,
                               "monotonic_raw_ns": c.monotonic_raw, "monotonic_ns": c.monotonic},
                    "clock_count": 3 if c.monotonic is None else 4,
                    "attributes": {a.key: a.value for a in m.attributes if a.key},
                }
            elif code == 3:
                m = fr.CoreNameMessage.parse(buf[s + 1 : e])
                cores.append({"core": m.core, "cpuid": hex(m.cpuid), "name": m.name})
            else:
                r.issue(f"Summary frame message code {code} not read", s - 4, damage=False)
        except (fr.FrameError, fr.ConstructError, UnicodeDecodeError) as exc:
            r.issue(f"damaged SUMMARY frame ({fr._reason(exc)})", s - 4)
    return summary, cores


def _counters(r: _Reader, buf, w: fr.Walk, keys: dict[int, str]) -> pd.DataFrame:
    """Every BLOCK_COUNTER and COUNTER sample, raw values, times relative to the start."""
    cols = fr.CounterColumns()
    fr.block_counters(buf, w.frames[fr.BLOCK_COUNTER], cols)
    fr.counter_messages(buf, w.frames[fr.COUNTER], cols)
    for err in cols.errors:
        r.issue(str(err), err.offset, action="rest of the frame skipped")
    if cols.backwards:
        r.issue(f"counter time goes backwards in {len(cols.backwards)} frame(s)", cols.backwards[0] - 4,
                action="kept in file order")
    a = cols.arrays()
    uniq, inverse = np.unique(a["key"], return_inverse=True)
    names = {int(k): keys.get(int(k), f"key {int(k):#x}") for k in uniq}
    missing = sorted(k for k in names if k not in keys)
    if missing and keys:
        r.issue("counter keys not in captured.xml: " + ", ".join(f"{k:#x}" for k in missing), damage=False,
                action="kept under their key")
    counter = pd.Series(np.array([names[int(k)] for k in uniq], dtype=object)[inverse.reshape(-1)],
                        dtype="category")
    return pd.DataFrame({"t_rel_ns": a["t_rel_ns"], "core": a["core"], "tid": a["tid"], "key": a["key"],
                         "counter": counter, "value": a["value"]})


def _power(counters: pd.DataFrame, keys: dict[int, str], captured: CapturedXml | None,
           events: dict[str, EventInfo], base: int | None):
    """Power samples (mW) of the power counters, their RailInfo, and a summary of every counter."""
    infos: dict[int, EventInfo | None] = {}
    for key in counters["key"].unique().tolist():
        attrs = captured.counters.get(key) if captured else None
        infos[key] = event_for(attrs, events) if attrs else None
    power = {k: ev for k, ev in infos.items() if ev is not None and ev.is_power}
    wanted = Counter(ev.name or keys[k] for k, ev in power.items())
    summary: dict[str, Any] = {}
    rails: dict[str, RailInfo] = {}
    parts: list[tuple[str, np.ndarray, np.ndarray]] = []
    for key, part in counters.groupby("key", sort=False):
        ev = infos[key]
        ctype = keys.get(key, f"key {key:#x}")
        raw = part["value"].to_numpy(np.int64)
        mult = ev.multiplier if ev else 1.0
        entry: dict[str, Any] = {"key": hex(key), "samples": int(len(part))}
        if ev:
            entry.update(title=ev.title, name=ev.name, units=ev.units, multiplier=ev.multiplier, cls=ev.cls)
        entry.update(min=float(raw.min()) * mult, max=float(raw.max()) * mult)
        if ev is not None and key in power:
            rail = ev.name if ev.name and wanted[ev.name] == 1 else ctype
            t = part["t_rel_ns"].to_numpy(np.int64)
            order = np.argsort(t, kind="stable")
            t, raw = t[order], raw[order]
            parts.append((rail, t, raw * ev.to_mw))
            rails[rail] = RailInfo(name=rail, source=f"apc counter {ctype}", unit=ev.units or "W",
                                   update_period_ns=_update_period(t, raw),
                                   extra={"counter": ctype, "key": hex(key), "multiplier": ev.multiplier},
                                   sensor_model=INSTANT_SOURCE)  # gatord polls the value as it is
            entry["rail"] = rail
        summary[ctype] = entry
    if not parts:
        return empty_power(), rails, summary
    names = [p[0] for p in parts]
    rel = np.concatenate([p[1] for p in parts])
    power = pd.DataFrame({
        "time_ns": rel + (base or 0),
        "time_rel_ns": rel,
        "rail": pd.Categorical(np.repeat(names, [len(p[1]) for p in parts]), categories=names),
        "power_mw": np.concatenate([p[2] for p in parts]).astype(np.float64),
    })
    return power, rails, summary


def _update_period(t: np.ndarray, values: np.ndarray) -> int | None:
    """The sensor's update period from when the values change (``power/period.py``); the sampling
    period when they change fewer than 3 times."""
    return period_from_changes(change_times(t, values.astype(np.float64))) or period_from_changes(t.tolist())


def _duration(counters: pd.DataFrame, markers: pd.DataFrame) -> float | None:
    """Seconds from the capture start to the last counter sample or marker."""
    ends = [int(counters["t_rel_ns"].max())] if len(counters) else []
    rel = markers["time_rel_ns"].dropna()
    if len(rel):
        ends.append(int(rel.max()))
    return max(ends) / 1e9 if ends else None


def _external_markers(r: _Reader, ext: fr.ExternalWalk, base: int | None
                      ) -> tuple[list[pd.DataFrame], list[dict[str, Any]], list[annotation_stream.DecodedStream]]:
    """Markers of every annotation stream, a description of every EXTERNAL stream, the decoded streams."""
    for err in ext.errors:
        r.issue(str(err), err.offset)
    for offset, ident in ext.stray_closes:
        r.issue(f"close record for EXTERNAL id {ident}, which has no open stream", offset - 4, damage=False,
                action="ignored")
    tables: list[pd.DataFrame] = []
    info: list[dict[str, Any]] = []
    decoded_streams: list[annotation_stream.DecodedStream] = []
    for index, st in enumerate(ext.streams):
        data = st.data
        entry: dict[str, Any] = {"stream": index, "source": "EXTERNAL", "id": st.id, "bytes": len(data),
                                 "closed": st.closed}
        if not data.startswith(annotation_stream.MAGIC_PREFIX):
            entry["magic"] = _magic(data)
            r.issue(f"EXTERNAL stream id {st.id} ({entry['magic']!r}) is not an annotation stream",
                    st.offsets[0], damage=False)
            info.append(entry)
            continue
        try:
            decoded: annotation_stream.DecodedStream | None = annotation_stream.decode(data, str(r.folder))
        except annotation_stream.DecodeError as exc:
            decoded = exc.partial
            cut = exc.message.startswith("stream ends inside")
            r.issue(f"EXTERNAL stream id {st.id}: {exc.message}"
                    + ("" if not cut or st.closed else " (the capture stopped while the connection was open)"),
                    st.file_offset(exc.offset), action="rest of the stream skipped")
        hs = decoded.handshake if decoded is not None else None
        entry.update(magic=hs.magic.strip() if hs else _magic(data), pid=hs.pid if hs else None,
                     tid=hs.tid if hs else None, messages=len(decoded) if decoded is not None else 0)
        info.append(entry)
        if decoded is not None and len(decoded):
            decoded_streams.append(decoded)
            m = decoded.markers(stream=index, clock_base_ns=base)
            _check_order(r, m, st.file_offset(0), f"EXTERNAL stream id {st.id}")
            tables.append(m)
    if tables:
        joined = pd.concat(tables, ignore_index=True)
        annotation_markers.resolve_group_names(joined)
        tables = [joined]
    return tables, info, decoded_streams


def _magic(data: bytes) -> str:
    nl = data.find(b"\n", 0, 64)
    head = data[:nl] if nl > 0 else data[:16]
    return head.decode("ascii", "replace") if head.isascii() and head.strip() else head.hex(" ")


def _check_order(r: _Reader, markers: pd.DataFrame, offset: int, what: str) -> None:
    """An Issue when the times of a stream's text, marker and name messages go backwards."""
    timed = markers.loc[markers["kind"].isin(["text", "end", "name_channel", "name_group", "visual", "marker"]),
                        "time_rel_ns" if markers["time_ns"].isna().all() else "time_ns"].dropna()
    steps = np.diff(timed.to_numpy(np.int64))
    if (steps < 0).any():
        r.issue(f"{what}: message time goes backwards {int((steps < 0).sum())} time(s)", offset,
                action="kept in stream order")


_LEGACY_KINDS = {fr.LEGACY_VISUAL: "visual", fr.LEGACY_MARKER: "marker", fr.LEGACY_NAME_CHANNEL: "name_channel",
                 fr.LEGACY_NAME_GROUP: "name_group"}


def _legacy_markers(r: _Reader, buf, frames: list[int], base: int | None, first_stream: int
                    ) -> tuple[list[pd.DataFrame], list[dict[str, Any]]]:
    """Markers of the legacy ANNOTATE frames (gator.ko), one stream per writing thread."""
    streams, errors = fr.legacy_streams(buf, frames)
    for err in errors:
        r.issue(str(err), err.offset, action="rest of the frame skipped")
    tables: list[pd.DataFrame] = []
    info: list[dict[str, Any]] = []
    for index, ls in enumerate(streams, start=first_stream):
        rows: dict[str, list[Any]] = {k: [] for k in ("time_rel_ns", "kind", "channel", "group", "color", "text",
                                                      "channel_name", "group_name")}
        channel_names: dict[int, str] = {}
        channel_groups: dict[int, int] = {}
        group_names: dict[int, str] = {}
        data = ls.data
        try:
            for offset, rtype, f in fr.legacy_records(data):
                text = f["text"].decode("utf-8", "replace")
                kind = _LEGACY_KINDS.get(rtype, "end" if not text else "text")
                channel, group = f.get("channel"), f.get("group")
                if kind == "name_channel":
                    channel_names[channel], channel_groups[channel] = text, group
                elif kind == "name_group":
                    group_names[group] = text
                if kind in ("text", "end"):
                    group = channel_groups.get(channel)
                rows["time_rel_ns"].append(ls.times[ls.chunk_at(offset)])
                rows["kind"].append(kind)
                rows["channel"].append(channel)
                rows["group"].append(group)
                rows["color"].append(f["color"])
                rows["text"].append(text)
                rows["channel_name"].append(channel_names.get(channel) if channel is not None else None)
                rows["group_name"].append(group_names.get(group) if group is not None else None)
        except fr.FrameError as exc:
            at = ls.offsets[ls.chunk_at(exc.offset)] + exc.offset - ls.starts[ls.chunk_at(exc.offset)]
            r.issue(f"ANNOTATE stream of tid {ls.tid}: {exc}"
                    + ("" if ls.closed else " (the capture stopped before the writer closed the file)"), at,
                    action="rest of the stream skipped")
        n = len(rows["kind"])
        info.append({"stream": index, "source": "ANNOTATE", "tid": ls.tid, "pid": None, "bytes": len(data),
                     "closed": ls.closed, "magic": "/dev/gator/annotate", "messages": n})
        if n:
            rel = np.asarray(rows.pop("time_rel_ns"), np.int64)
            rows["time_ns"] = list(rel + base) if base is not None else [pd.NA] * n
            m = markers_frame({**rows, "time_rel_ns": rel, "tid": [ls.tid] * n, "stream": [index] * n,
                               "core": [ls.core] * n}, base)
            _check_order(r, m, ls.offsets[0], f"ANNOTATE stream of tid {ls.tid}")
            tables.append(m)
    return tables, info
