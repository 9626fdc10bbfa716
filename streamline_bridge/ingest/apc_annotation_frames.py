"""The annotation frames of a gatord data file, reassembled into byte streams.

EXTERNAL frames (type 10) carry the bytes of each annotation connection (``annotate-protocol.md``);
the legacy ANNOTATE frames (type 6) carry the writes of each thread to ``/dev/gator/annotate``,
whose records (§9.1) :func:`legacy_records` reads. Layouts: ``apc-capture-format.md`` §6.
"""

from __future__ import annotations

import bisect
import io
from dataclasses import dataclass, field

from construct import ConstructError, ExplicitError

from streamline_bridge.ingest.apc_frames import (
    LEGACY_COLOR,
    LEGACY_ESCAPE,
    LEGACY_MARKER,
    LEGACY_TEXT,
    FrameError,
    LegacyAnnotateChunk,
    LegacyRecord,
    error_reason,
    sleb,
)

# --- EXTERNAL (10): per-connection byte streams ---------------------------------------------------


@dataclass
class ExternalStream:
    """The bytes one connection sent, reassembled from its EXTERNAL chunks in file order."""

    id: int
    chunks: list[bytes] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)  # buffer offset of each chunk's first byte
    closed: bool = False

    @property
    def data(self) -> bytes:
        """The whole stream."""
        return b"".join(self.chunks)

    def file_offset(self, stream_offset: int) -> int:
        """Buffer offset of byte ``stream_offset`` of the stream (the end of the data if beyond)."""
        pos = 0
        for chunk, off in zip(self.chunks, self.offsets):
            if stream_offset < pos + len(chunk):
                return off + stream_offset - pos
            pos += len(chunk)
        return self.offsets[-1] + len(self.chunks[-1]) if self.chunks else 0


@dataclass
class ExternalWalk:
    """Every EXTERNAL stream in order of first data, and the frames that carried no data."""

    streams: list[ExternalStream] = field(default_factory=list)
    empty: int = 0  # frames with no id (6.x)
    id_only: int = 0  # frames with an id and no bytes (6.x)
    closes: int = 0
    stray_closes: list[tuple[int, int]] = field(default_factory=list)  # (offset, id) closing nothing open
    errors: list[FrameError] = field(default_factory=list)


def external_streams(buf, frames: list[int]) -> ExternalWalk:
    """Reassemble EXTERNAL chunks per connection id; an id reused after its close is a new stream."""
    out = ExternalWalk()
    open_: dict[int, ExternalStream] = {}
    for i in range(0, len(frames), 2):
        s, e = frames[i], frames[i + 1]
        if e - s == 1:
            out.empty += 1
            continue
        try:
            ident, pos = sleb(buf, s + 1)
            if ident == -1:
                ident, pos = sleb(buf, pos)
                if pos > e:
                    raise FrameError("close record runs past the end of its frame", e)
                out.closes += 1
                stream = open_.pop(ident, None)
                if stream is None:
                    out.stray_closes.append((s, ident))
                else:
                    stream.closed = True
                continue
            if pos > e or ident < 0:
                raise FrameError(f"bad connection id {ident}", s + 1)
        except FrameError as exc:
            out.errors.append(FrameError(f"EXTERNAL frame at {s}: {exc}", exc.offset))
            continue
        if pos == e:
            out.id_only += 1
            continue
        stream = open_.get(ident)
        if stream is None:
            stream = open_[ident] = ExternalStream(ident)
            out.streams.append(stream)
        stream.chunks.append(buf[pos:e])
        stream.offsets.append(pos)
    return out


# --- ANNOTATE (6): legacy /dev/gator/annotate writes -----------------------------------------------


@dataclass
class LegacyStream:
    """The bytes one thread wrote to ``/dev/gator/annotate`` (until it closed the file)."""

    tid: int
    core: int
    chunks: list[bytes] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)  # stream offset of each chunk
    times: list[int] = field(default_factory=list)  # relative time of each chunk
    offsets: list[int] = field(default_factory=list)  # buffer offset of each chunk's data
    size: int = 0
    closed: bool = False

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)

    def chunk_at(self, stream_offset: int) -> int:
        """Index of the chunk holding byte ``stream_offset``."""
        return max(bisect.bisect_right(self.starts, stream_offset) - 1, 0)


def legacy_streams(buf, frames: list[int]) -> tuple[list[LegacyStream], list[FrameError]]:
    """Reassemble the chunks of ANNOTATE frames per tid; a close chunk ends that tid's stream."""
    streams: list[LegacyStream] = []
    errors: list[FrameError] = []
    open_: dict[int, LegacyStream] = {}
    for i in range(0, len(frames), 2):
        s, e = frames[i], frames[i + 1]
        stream = io.BytesIO(buf[s + 1 : e])
        while stream.tell() < e - s - 1:
            at = s + 1 + stream.tell()
            try:
                chunk = LegacyAnnotateChunk.parse_stream(stream)
            except ConstructError as exc:
                errors.append(
                    FrameError(f"ANNOTATE frame at {s}: chunk cut short or damaged ({error_reason(exc)})", at)
                )
                break
            if chunk.time == 0 and chunk.size == 0:
                if chunk.tid in open_:
                    open_.pop(chunk.tid).closed = True
                continue
            if chunk.size < 0:
                errors.append(FrameError(f"ANNOTATE frame at {s}: negative chunk size {chunk.size}", at))
                break
            ls = open_.get(chunk.tid)
            if ls is None:
                ls = open_[chunk.tid] = LegacyStream(chunk.tid, chunk.core)
                streams.append(ls)
            ls.starts.append(ls.size)
            ls.size += chunk.size
            ls.chunks.append(chunk.data)
            ls.times.append(chunk.time)
            ls.offsets.append(s + 1 + stream.tell() - chunk.size)
    return streams, errors


def legacy_records(data: bytes):
    """Yield ``(offset, type, fields)`` for each record of a legacy annotation byte stream.

    ``type`` is 0 for a plain text line, else the record type (4 visual, 5 marker, 6 text,
    7 name channel, 8 name group); ``fields`` has ``text`` (bytes, colour prefix removed),
    ``color`` (the 32-bit ``0xBBGGRR1B`` constant or None) and ``channel``/``group`` where the
    record has them. Raises :class:`FrameError` at the first record that is cut short or unknown.
    """
    n = len(data)
    i = 0
    while i < n:
        if data[i] == LEGACY_ESCAPE:
            stream = io.BytesIO(data)
            stream.seek(i)
            try:
                rec = LegacyRecord.parse_stream(stream)
            except ExplicitError:
                raise FrameError(f"unknown legacy annotation record type {data[i + 1]:#04x}", i) from None
            except ConstructError:
                raise FrameError("legacy annotation record cut short", i) from None
            body = dict(rec.body)
            body.pop("_io", None)
            fields = {k: v for k, v in body.items() if k in ("channel", "group")}
            fields["text"], fields["color"] = (
                _legacy_color(body["text"]) if rec.type in (LEGACY_TEXT, LEGACY_MARKER) else (body["text"], None)
            )
            yield i, rec.type, fields
            i = stream.tell()
        else:
            text_at = i + 4 if data[i] == LEGACY_COLOR else i
            nl = data.find(b"\n", text_at)
            if nl < 0:
                raise FrameError("legacy annotation text line without its newline", i)
            text, color = _legacy_color(data[i:nl])
            yield i, 0, {"channel": 0, "text": text, "color": color}
            i = nl + 1


def _legacy_color(text: bytes) -> tuple[bytes, int | None]:
    if len(text) >= 4 and text[0] == LEGACY_COLOR:
        return text[4:], int.from_bytes(text[:4], "little")
    return text, None
