"""Reader of marker logs (``docs/marker-log.md``, layout :mod:`annotate.marker_log_layout`), written by
``annotate`` and ``streamline-bridge listen``.

The file is read in chunks and each stream is decoded as its bytes arrive
(:class:`~streamline_bridge.ingest.annotation_stream.StreamDecoder`, fed about
:data:`BATCH` bytes at a time), so memory grows with the markers found, not with the file.
Streams may interleave; a stream id may be reused after its close record. The markers table is
ordered by stream (the order in which the streams were opened in the file), then by message order
within the stream; pid and tid come from each stream's handshake.

Damage: a file cut anywhere gives what was read before the cut, ``meta.partial = True`` and an
:class:`~streamline_bridge.model.Issue` with the byte offset. Records of unknown type and bytes
that are not records (garbage, zeros appended) are skipped up to the next good record and
reported as ONE issue per damaged range (its offset and size); records of a stream that is not open are counted per stream. A
stream whose bytes go bad is read up to the bad message. Counters titled ``Power`` become power
samples (:mod:`~streamline_bridge.ingest.annotation_power`).
"""

from __future__ import annotations

import bisect
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from annotate.marker_log_layout import (
    CLOSED,
    HEADER,
    MAGIC,
    MESSAGES,
    OPENED,
    RECORD,
    RECORD_TYPES,
    VERSION,
)
from streamline_bridge.errors import InputError
from streamline_bridge.ingest import annotation_markers, annotation_power, annotation_stream
from streamline_bridge.ingest.files import open_regular
from streamline_bridge.model import Issue, Meta, Recording, empty_markers, empty_power

FORMAT = "marker-log"
CHUNK = 4 << 20  # bytes read from the file at a time
BATCH = 1 << 20  # a stream's bytes are decoded once this many have gathered (and at its end)
_RECORD_TYPE = re.compile(b"[" + bytes(sorted(RECORD_TYPES)) + b"]")  # where a record could start


def sniff(path: Path) -> bool:
    """True when ``path`` is a regular file starting with the marker log magic."""
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


class _Reader:
    """The issues of one read; damaged byte ranges and records of unknown streams are gathered and counted."""

    def __init__(self, path: Path):
        self.path = path
        self.name = os.fspath(path)
        self.issues: list[Issue] = []
        self.partial = False
        self.damage: tuple[int, str] | None = None  # (start offset, first fault) of the damaged range being skipped
        self.orphans: dict[int, list[int]] = {}  # stream id -> [first offset, records, payload bytes]

    def issue(self, message: str, offset: int | None, action: str = "skipped", damage: bool = True) -> None:
        self.issues.append(Issue(self.name, message, offset, action))
        self.partial |= damage

    def damaged(self, offset: int, fault: str) -> None:
        """Bytes from ``offset`` on are not records (the range ends at the next good record: :meth:`resync`)."""
        if self.damage is None:
            self.damage = (offset, fault)

    def resync(self, offset: int) -> None:
        """A good record starts at ``offset``: report the damaged range before it, if any, as one issue."""
        if self.damage is not None:
            start, fault = self.damage
            self.damage = None
            self.issue(
                f"{offset - start} damaged byte(s) up to byte {offset} (first: {fault})",
                start,
                action="skipped to the next record",
            )

    def orphan(self, ident: int, offset: int, size: int) -> None:
        entry = self.orphans.setdefault(ident, [offset, 0, 0])
        entry[1] += 1
        entry[2] += size

    def report_orphans(self) -> None:
        """One issue per stream that had records while not open; then every issue in file order."""
        for ident, (offset, records, size) in self.orphans.items():
            self.issue(f"{records} messages record(s) ({size} bytes) for stream {ident}, which is not open", offset)
        self.issues.sort(key=lambda i: (i.offset is None, i.offset or 0))


@dataclass
class _Stream:
    """One stream being decoded: its decoder, the markers decoded so far, and where its bytes lie in the file."""

    ordinal: int
    id: int
    decoder: annotation_stream.StreamDecoder
    pending: list[bytes] = field(default_factory=list)  # bytes not yet fed to the decoder
    pending_size: int = 0
    stream_offsets: list[int] = field(default_factory=list)  # stream offset where each record's payload starts
    file_offsets: list[int] = field(default_factory=list)  # file offset of each record's payload
    size: int = 0
    closed: bool = False
    failed: bool = False
    messages: int = 0
    pieces: list[annotation_markers.MarkerColumns] = field(default_factory=list)
    counters: list[annotation_stream.DecodedStream] = field(default_factory=list)  # counter messages only

    def add(self, payload: bytes, file_offset: int) -> None:
        if payload:
            self.stream_offsets.append(self.size)
            self.file_offsets.append(file_offset)
            self.pending.append(payload)
            self.pending_size += len(payload)
            self.size += len(payload)

    def file_offset(self, stream_offset: int) -> int:
        i = max(bisect.bisect_right(self.stream_offsets, stream_offset) - 1, 0)
        return self.file_offsets[i] + stream_offset - self.stream_offsets[i] if self.file_offsets else 0

    def flush(self, r: _Reader, end: bool = False) -> None:
        """Decode the pending bytes (and, at the stream's ``end``, say whether it ends inside a message)."""
        data = b"".join(self.pending)
        self.pending, self.pending_size = [], 0
        if self.failed:
            return
        try:
            self._keep(self.decoder.feed(data))
            if end:
                self.decoder.finish()
        except annotation_stream.DecodeError as exc:
            self.failed = True
            if exc.partial is not None:
                self._keep(exc.partial)
            r.issue(
                f"stream {self.id}: {exc.message}", self.file_offset(exc.offset), action="rest of the stream skipped"
            )

    def _keep(self, decoded: annotation_stream.DecodedStream) -> None:
        if len(decoded):
            self.messages += len(decoded)
            self.pieces.append(decoded.marker_columns(stream=self.ordinal))
            self.counters.append(decoded.counters_only())

    def entry(self) -> dict[str, Any]:
        """This stream's entry in ``meta.extra["streams"]``."""
        out: dict[str, Any] = {"stream": self.ordinal, "id": self.id}
        hs = self.decoder.handshake
        if hs is not None:
            out.update(pid=hs.pid, tid=hs.tid, protocol=hs.version)
        out.update(messages=self.messages, bytes=self.size, closed=self.closed)
        return out


def read(path: Path) -> Recording:
    """Read a marker log; see the module docstring for order, damage handling and memory."""
    r = _Reader(Path(path))
    with open_regular(r.path) as f:
        size = os.fstat(f.fileno()).st_size
        header, pos = _header(r, f, size)
        base = header.get("monotonic_raw_ns")
        base = base if type(base) is int else None  # (not a bool, not a float)
        streams = _records(r, f, pos, size) if pos else []
    r.report_orphans()
    pieces = [p for st in streams for p in st.pieces]  # stream by stream, each in message order
    markers = annotation_markers.markers_table(pieces, base) if pieces else empty_markers()
    annotation_markers.resolve_stream_names(markers)
    annotation_markers.resolve_group_names(markers)
    info = [st.entry() for st in streams]
    counters: dict[int, str] = {}
    definitions: dict[int, dict[str, Any]] = {}
    for st in streams:
        for part in st.counters:
            counters.update(part.counter_names())
            definitions.update(part.counter_definitions())
    versions = {e["protocol"] for e in info if e.get("protocol") is not None}
    meta = Meta(
        format=FORMAT,
        sources=[r.name],
        clock_base_ns=base,
        protocol=versions.pop() if len(versions) == 1 else _int_or_none(header.get("protocol")),
        counter_keys=counters,
        counters=definitions,
        issues=r.issues,
        partial=r.partial,
        extra={k: header[k] for k in ("writer", "host", "pid", "realtime_ns") if k in header} | {"streams": info},
    )
    return annotation_power.add_power(
        Recording(markers, empty_power(), meta), [p for st in streams for p in st.counters]
    )


def _int_or_none(value: Any) -> int | None:
    return value if type(value) is int else None


def _header(r: _Reader, f: BinaryIO, size: int) -> tuple[dict[str, Any], int]:
    """The JSON metadata and the offset of the first record (0 when the header is cut short)."""
    head = f.read(HEADER.size)
    if head[: len(MAGIC)] != MAGIC[: len(head)]:
        raise InputError(r.path, "not a marker log (no SBMARK1 magic)", 0)
    if len(head) < HEADER.size:
        r.issue("file ends inside the header", len(head), action="nothing to read")
        return {}, 0
    _, version, n = HEADER.unpack(head)
    if version != VERSION:
        raise InputError(r.path, f"marker log version {version} is not supported (this reader knows {VERSION})", 8)
    if size < HEADER.size + n:
        r.issue(f"file ends inside the {n}-byte header metadata", size, action="nothing to read")
        return {}, 0
    try:
        meta = json.loads(f.read(n))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except (ValueError, RecursionError) as exc:
        r.issue(f"header metadata is not valid JSON ({exc}); no clock base", HEADER.size, action="ignored")
        meta = {}
    return meta, HEADER.size + n


class _File:
    """The file's bytes from an offset on, read in chunks; only the unread rest of a chunk is kept."""

    def __init__(self, f: BinaryIO, pos: int, size: int):
        self.f, self.size = f, size
        self.buf, self.start = b"", pos  # buf holds the file's bytes from offset start on
        f.seek(pos)

    def get(self, pos: int, n: int) -> bytes:
        """``n`` bytes at file offset ``pos`` (fewer at the end of the file); drops what lies before ``pos``."""
        if pos < self.start or pos + n > self.start + len(self.buf):
            keep = self.buf[pos - self.start :] if self.start <= pos < self.start + len(self.buf) else b""
            self.f.seek(pos + len(keep))
            more = self.f.read(max(n - len(keep), CHUNK))
            self.buf, self.start = keep + more, pos
        a = pos - self.start
        return self.buf[a : a + n]

    def next_record_type(self, pos: int) -> int:
        """The offset of the next byte from ``pos`` on that could be a record type (the file size if none)."""
        while pos < self.size:
            if not self.start <= pos < self.start + len(self.buf):
                self.get(pos, 1)  # the chunk from pos on
            m = _RECORD_TYPE.search(self.buf, pos - self.start)
            if m:
                return self.start + m.start()
            pos = self.start + len(self.buf)
        return self.size


def _records(r: _Reader, f: BinaryIO, pos: int, end: int) -> list[_Stream]:
    """Every stream in the file in the order they were opened, decoded as their bytes arrive."""
    streams: list[_Stream] = []
    open_: dict[int, _Stream] = {}
    src = _File(f, pos, end)

    def plausible(at: int, strict: bool = True) -> bool:
        """Whether a record starts at ``at`` (or the file ends there): a known type whose payload fits in
        the file; when ``strict`` (finding a way out of garbage) also a handshake opening a stream, or a
        messages or close record of an open stream."""
        if at == end:
            return True
        head = src.get(at, RECORD.size)
        if len(head) < RECORD.size:
            return False
        kind, ident, n = RECORD.unpack(head)
        if kind not in RECORD_TYPES or at + RECORD.size + n > end:
            return False
        if not strict:
            return True
        if kind == OPENED:
            return src.get(at + RECORD.size, len(annotation_stream.MAGIC_PREFIX)) == annotation_stream.MAGIC_PREFIX[:n]
        return ident in open_ and (kind == MESSAGES or (kind == CLOSED and n == 0))

    while pos < end:
        head = src.get(pos, RECORD.size)
        if len(head) < RECORD.size:
            r.resync(pos)
            r.issue(f"file ends inside a record header ({len(head)} of {RECORD.size} bytes)", pos, action="cut")
            break
        kind, ident, n = RECORD.unpack(head)
        body = pos + RECORD.size
        if kind not in RECORD_TYPES:
            r.damaged(pos, f"unknown record type {kind} (stream {ident}, {n} bytes)")
            if body + n <= end and plausible(body + n, strict=False):  # a whole record: skipped by its length
                pos = body + n
                continue
            pos = src.next_record_type(pos + 1)
            while pos < end and not plausible(pos):
                pos = src.next_record_type(pos + 1)
            continue
        if body + n > end:
            r.resync(pos)
            r.issue(
                f"file ends inside a record (type {kind}, stream {ident}, {end - body} of {n} payload bytes)",
                pos,
                action="cut",
            )
            break
        r.resync(pos)
        st: _Stream | None
        if kind == OPENED:
            if ident in open_:
                r.issue(
                    f"stream {ident} opened again before its close record",
                    pos,
                    action="earlier stream ended there",
                    damage=False,
                )
                open_[ident].flush(r, end=True)
            st = _Stream(len(streams), ident, annotation_stream.StreamDecoder(f"{r.name} stream {ident}"))
            streams.append(st)
            open_[ident] = st
            st.add(src.get(body, n), body)
        elif kind == MESSAGES:
            st = open_.get(ident)
            if st is None:
                r.orphan(ident, pos, n)
            else:
                st.add(src.get(body, n), body)
        else:
            st = open_.pop(ident, None)
            if st is None:
                r.issue(f"close record for stream {ident}, which is not open", pos, action="ignored", damage=False)
            else:
                st.closed = True
                st.flush(r, end=True)
        if st is not None and st.pending_size >= BATCH:
            st.flush(r)
        pos = body + n
    if r.damage is not None:
        r.resync(end)
    for still_open in open_.values():
        still_open.flush(r, end=True)
    return streams
