"""Reader of marker logs (``docs/marker-log.md``, version 1), written by ``annotate`` and ``streamline-bridge listen``.

Records of all streams are gathered per stream (streams may interleave; a stream id may be reused
after its close record), then each stream is decoded whole by
:mod:`~streamline_bridge.ingest.annotation_stream`. The markers table is ordered by stream
(the order in which the streams were opened in the file), then by message order within the
stream; pid and tid come from each stream's handshake. A file cut anywhere gives what was read
before the cut, ``meta.partial = True`` and an :class:`~streamline_bridge.model.Issue` with the
byte offset; damaged records are reported and skipped. Counters titled ``Power`` become power
samples (:mod:`~streamline_bridge.ingest.annotation_power`).
"""

from __future__ import annotations

import bisect
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from streamline_bridge.errors import InputError
from streamline_bridge.ingest import annotation_power, annotation_stream
from streamline_bridge.model import Issue, Meta, Recording, empty_markers, empty_power

FORMAT = "marker-log"
MAGIC = b"SBMARK1\n"
VERSION = 1
OPENED, MESSAGES, CLOSED = 1, 2, 3
_RECORD = struct.Struct("<BII")


def sniff(path: Path) -> bool:
    """True when ``path`` is a file starting with the marker log magic."""
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


@dataclass
class _Stream:
    """The bytes of one stream as found in the file, and where each piece of them lies in the file."""

    ordinal: int
    id: int
    chunks: list[bytes] = field(default_factory=list)
    stream_offsets: list[int] = field(default_factory=list)  # stream offset where each chunk starts
    file_offsets: list[int] = field(default_factory=list)  # file offset of each chunk
    size: int = 0
    closed: bool = False

    def add(self, payload: bytes, file_offset: int) -> None:
        self.stream_offsets.append(self.size)
        self.file_offsets.append(file_offset)
        self.chunks.append(payload)
        self.size += len(payload)

    def file_offset(self, stream_offset: int) -> int:
        i = max(bisect.bisect_right(self.stream_offsets, stream_offset) - 1, 0)
        return self.file_offsets[i] + stream_offset - self.stream_offsets[i]


class _Reader:
    def __init__(self, path: Path):
        self.path = path
        self.name = os.fspath(path)
        self.issues: list[Issue] = []
        self.partial = False

    def issue(self, message: str, offset: int | None, action: str = "skipped", damage: bool = True) -> None:
        self.issues.append(Issue(self.name, message, offset, action))
        self.partial |= damage


def read(path: Path) -> Recording:
    """Read a marker log; see the module docstring for order and damage handling."""
    r = _Reader(Path(path))
    data = r.path.read_bytes()
    header, pos = _header(r, data)
    streams = _records(r, data, pos) if pos else []
    base = header.get("monotonic_raw_ns")
    base = base if type(base) is int else None  # (not a bool, not a float)
    tables, info, counters, definitions, decoded_streams = [], [], {}, {}, []
    for st in streams:
        decoded, entry = _decode(r, st)
        info.append(entry)
        decoded_streams.append(decoded)
        if decoded is not None and len(decoded):
            tables.append(decoded.markers(stream=st.ordinal, clock_base_ns=base))
            counters.update(decoded.counter_names())
            definitions.update(decoded.counter_definitions())
    markers = pd.concat(tables, ignore_index=True) if tables else empty_markers()
    annotation_stream.resolve_group_names(markers)
    versions = {e["protocol"] for e in info if e.get("protocol") is not None}
    meta = Meta(
        format=FORMAT,
        sources=[r.name],
        clock_base_ns=base,
        protocol=versions.pop() if len(versions) == 1 else header.get("protocol"),
        counter_keys=counters,
        counters=definitions,
        issues=r.issues,
        partial=r.partial,
        extra={k: header[k] for k in ("writer", "host", "pid", "realtime_ns") if k in header} | {"streams": info},
    )
    return annotation_power.add_power(Recording(markers, empty_power(), meta), decoded_streams)


def _header(r: _Reader, data: bytes) -> tuple[dict[str, Any], int]:
    """The JSON metadata and the offset of the first record (0 when the header is cut short)."""
    if data[:len(MAGIC)] != MAGIC[:len(data)]:
        raise InputError(r.path, "not a marker log (no SBMARK1 magic)", 0)
    if len(data) < 16:
        r.issue("file ends inside the header", len(data), action="nothing to read")
        return {}, 0
    version, n = struct.unpack_from("<II", data, 8)
    if version != VERSION:
        raise InputError(r.path, f"marker log version {version} is not supported (this reader knows {VERSION})", 8)
    if len(data) < 16 + n:
        r.issue(f"file ends inside the {n}-byte header metadata", len(data), action="nothing to read")
        return {}, 0
    try:
        meta = json.loads(data[16:16 + n])
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        r.issue(f"header metadata is not valid JSON ({exc}); no clock base", 16, action="ignored")
        meta = {}
    return meta, 16 + n


def _records(r: _Reader, data: bytes, pos: int) -> list[_Stream]:
    """Every stream in the file in the order they were opened, with their bytes."""
    streams: list[_Stream] = []
    open_: dict[int, _Stream] = {}
    end = len(data)
    while pos < end:
        if pos + _RECORD.size > end:
            r.issue(f"file ends inside a record header ({end - pos} of {_RECORD.size} bytes)", pos, action="cut")
            break
        kind, ident, n = _RECORD.unpack_from(data, pos)
        body = pos + _RECORD.size
        if body + n > end:
            r.issue(f"file ends inside a record (type {kind}, stream {ident}, {end - body} of {n} payload bytes)",
                    pos, action="cut")
            break
        payload = data[body:body + n]
        if kind == OPENED:
            if ident in open_:
                r.issue(f"stream {ident} opened again before its close record", pos,
                        action="earlier stream ended there", damage=False)
            st = _Stream(len(streams), ident)
            st.add(payload, body)
            streams.append(st)
            open_[ident] = st
        elif kind == MESSAGES:
            if ident in open_:
                open_[ident].add(payload, body)
            else:
                r.issue(f"messages record for stream {ident}, which is not open", pos)
        elif kind == CLOSED:
            st = open_.pop(ident, None)
            if st is None:
                r.issue(f"close record for stream {ident}, which is not open", pos, action="ignored", damage=False)
            else:
                st.closed = True
        else:
            r.issue(f"unknown record type {kind} (stream {ident}, {n} bytes)", pos)
        pos = body + n
    return streams


def _decode(r: _Reader, st: _Stream) -> tuple[annotation_stream.DecodedStream | None, dict[str, Any]]:
    """The decoded stream (None if its handshake is bad) and its entry for ``meta.extra["streams"]``."""
    entry: dict[str, Any] = {"stream": st.ordinal, "id": st.id}
    try:
        decoded = annotation_stream.decode(b"".join(st.chunks), f"{r.name} stream {st.id}")
    except annotation_stream.DecodeError as exc:
        decoded = exc.partial if exc.partial is not None and exc.partial.handshake is not None else None
        r.issue(f"stream {st.id}: {exc.message}", st.file_offset(exc.offset), action="rest of the stream skipped")
    hs = decoded.handshake if decoded is not None else None
    if hs is not None:
        entry.update(pid=hs.pid, tid=hs.tid, protocol=hs.version)
    entry.update(messages=len(decoded) if decoded is not None else 0, bytes=st.size, closed=st.closed)
    return decoded, entry
