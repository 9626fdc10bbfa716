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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from construct import ConstructError

from streamline_bridge.errors import InputError
from streamline_bridge.ingest import annotation_power
from streamline_bridge.ingest import apc_frames as fr
from streamline_bridge.ingest.apc_annotation_frames import external_streams
from streamline_bridge.ingest.apc_counters import counters_table, power_from_counters
from streamline_bridge.ingest.apc_markers import external_markers, legacy_markers
from streamline_bridge.ingest.apc_xml import (
    CapturedXml,
    EventInfo,
    read_captured,
    read_counters_xml,
    read_events,
)
from streamline_bridge.model import (
    Issue,
    Meta,
    Recording,
    empty_markers,
)

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


class CaptureReader:
    """One read of one capture folder; collects issues with file and byte offset."""

    def __init__(self, folder: Path, files: list[Path]):
        self.folder = folder
        self.files = files
        self.issues: list[Issue] = []
        self.partial = False
        self.spans: list[tuple[int, Path]] = []  # (start offset in the joined buffer, file)

    def issue(
        self,
        message: str,
        offset: int | None = None,
        *,
        damage: bool = True,
        action: str = "skipped",
        file: Path | None = None,
    ) -> None:
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
    r = CaptureReader(folder, files)
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


def _read_xml(r: CaptureReader, folder: Path) -> tuple[CapturedXml | None, dict[str, EventInfo]]:
    captured = None
    path = folder / "captured.xml"
    if not path.is_file():
        r.issue(
            "captured.xml missing: the capture did not finish (gatord writes it at the end); counter names unknown",
            file=path,
            action="read the data without it",
        )
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
        r.issue(
            "events.xml missing: counter units and multipliers unknown",
            file=path,
            damage=False,
            action="counters left unscaled",
        )
    return captured, events


def _load(files: list[Path], r: CaptureReader):
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


def _decode(r: CaptureReader, buf, captured: CapturedXml | None, events: dict[str, EventInfo]) -> Capture:
    w = fr.walk(buf)
    if w.error is not None:
        r.issue(f"{w.error}; {len(buf) - w.error.offset} bytes from here not read", w.error.offset)
    for offset, types, size in _runs(buf, w.unknown):
        r.issue(
            f"unknown frame type {types[0]}"
            if len(types) == 1
            else f"{len(types)} frames of unknown type ({', '.join(map(str, sorted(set(types))[:8]))}"
            f"{', ...' if len(set(types)) > 8 else ''}), {size} bytes",
            offset,
        )
    if w.zero_length:
        r.issue(f"{w.zero_length} record(s) of length 0", damage=False)
    summary, cores = _summary(r, buf, w.frames[fr.SUMMARY])
    base = summary["clocks"]["monotonic_raw_ns"] if summary else None
    if base is None:
        r.issue(
            "no Summary frame: clock base unknown; counter times are relative to the capture start",
            action="times left relative",
        )
    keys = captured.keys if captured else {}
    counters = counters_table(r, buf, w, keys)
    ext = external_streams(buf, w.frames[fr.EXTERNAL])
    markers, streams, decoded_streams = external_markers(r, ext, base)
    legacy, legacy_info = legacy_markers(r, buf, w.frames[fr.ANNOTATE], base, first_stream=len(streams))
    power, rails, counter_info = power_from_counters(counters, keys, captured, events, base)

    marker_tables = [m for m in markers + legacy if len(m)]
    all_markers = pd.concat(marker_tables, ignore_index=True) if marker_tables else empty_markers()
    extra: dict[str, Any] = {
        "data_files": [f.name for f in r.files],
        "frames": {fr.FRAME_NAMES.get(t, f"type {t}"): n for t, n in sorted(w.counts.items())},
        "skipped_bytes": {
            fr.FRAME_NAMES.get(t, f"type {t}"): n for t, n in sorted(w.sizes.items()) if t not in fr.DECODED
        },
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
    return Capture(
        annotation_power.add_power(Recording(all_markers, power, meta), decoded_streams), counters, summary or {}
    )


def _pairs(flat: list[int]):
    return zip(flat[0::2], flat[1::2])


def _runs(buf, unknown: list[tuple[int, int]]) -> list[tuple[int, list[int], int]]:
    """Frames of unknown type that follow each other as runs: (offset, their types, bytes), one issue each."""
    runs: list[list[Any]] = []
    for pos, t in unknown:
        size = 4 + int.from_bytes(buf[pos : pos + 4], "little")  # (walk() lists only frames of positive length)
        if runs and runs[-1][0] + runs[-1][2] == pos:
            runs[-1][1].append(t)
            runs[-1][2] += size
        else:
            runs.append([pos, [t], size])
    return [(pos, types, size) for pos, types, size in runs]


def _summary(r: CaptureReader, buf, frames: list[int]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
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
                    "clocks": {
                        "realtime_ns": c.realtime,
                        "boottime_ns": c.boottime,
                        "monotonic_raw_ns": c.monotonic_raw,
                        "monotonic_ns": c.monotonic,
                    },
                    "clock_count": 3 if c.monotonic is None else 4,
                    "attributes": {a.key: a.value for a in m.attributes if a.key},
                }
            elif code == 3:
                m = fr.CoreNameMessage.parse(buf[s + 1 : e])
                cores.append({"core": m.core, "cpuid": hex(m.cpuid), "name": m.name})
            else:
                r.issue(f"Summary frame message code {code} not read", s - 4, damage=False)
        except (fr.FrameError, ConstructError, UnicodeDecodeError) as exc:
            r.issue(f"damaged SUMMARY frame ({fr.error_reason(exc)})", s - 4)
    return summary, cores


def _duration(counters: pd.DataFrame, markers: pd.DataFrame) -> float | None:
    """Seconds from the capture start to the last counter sample or marker."""
    ends = [int(counters["t_rel_ns"].max())] if len(counters) else []
    rel = markers["time_rel_ns"].dropna()
    if len(rel):
        ends.append(int(rel.max()))
    return max(ends) / 1e9 if ends else None
