"""The binary structures of a gatord data file (``0000000000``) and the fast record walk over it.

Layouts follow ``apc-capture-format.md`` (§3–§6) and ``annotate-protocol.md`` §9.1. The structures
are declared with :mod:`construct` (they parse *and* build, so ``tests/apc_writer.py`` builds from
the same declarations); they are used where records are few (Summary, core names, COUNTER and
legacy ANNOTATE frames). The hot paths do not go through construct: the record walk and the
EXTERNAL chunk collection read the raw buffer (:func:`sleb`), and BLOCK_COUNTER frames are decoded
all at once with numpy — a construct parse of each record header costs ~30 µs against ~0.6 µs
(``python -m bench ingest``).
"""

from __future__ import annotations

import bisect
import io
import struct
from dataclasses import dataclass, field

import numpy as np
from construct import (
    Bytes,
    Const,
    Construct,
    ConstructError,
    Error,
    ExplicitError,
    GreedyBytes,
    If,
    Int8ul,
    Int16ul,
    Int32sl,
    Int32ul,
    PascalString,
    Peek,
    Prefixed,
    RepeatUntil,
    Struct,
    Switch,
    this,
)
from construct.core import stream_read, stream_write

from annotate.wire import sleb128 as sleb_encode  # the one encoder of packed integers
from streamline_bridge.ingest import leb128

# --- frame types (§3.1) ---------------------------------------------------------------------

SUMMARY, BACKTRACE, NAME, COUNTER, BLOCK_COUNTER, ANNOTATE = 1, 2, 3, 4, 5, 6
SCHED_TRACE, IDLE, EXTERNAL, PERF_ATTRS, PERF_DATA = 7, 9, 10, 11, 12
ACTIVITY_TRACE, PERF_AUX, PERF_SYNC = 13, 14, 15

FRAME_NAMES = {
    SUMMARY: "SUMMARY",
    BACKTRACE: "BACKTRACE",
    NAME: "NAME",
    COUNTER: "COUNTER",
    BLOCK_COUNTER: "BLOCK_COUNTER",
    ANNOTATE: "ANNOTATE",
    SCHED_TRACE: "SCHED_TRACE",
    IDLE: "IDLE",
    EXTERNAL: "EXTERNAL",
    PERF_ATTRS: "PERF_ATTRS",
    PERF_DATA: "PERF_DATA",
    ACTIVITY_TRACE: "ACTIVITY_TRACE",
    PERF_AUX: "PERF_AUX",
    PERF_SYNC: "PERF_SYNC",
}
# Frame types whose type is followed by a packed core (or cpu) number (§3.1, "core field" rule).
CORE_FIELD = frozenset({BACKTRACE, NAME, BLOCK_COUNTER, SCHED_TRACE, PERF_ATTRS, PERF_DATA, PERF_AUX, PERF_SYNC})
# Frames a reader of annotations and polled counters decodes; every other known type is skipped by length.
DECODED = (SUMMARY, COUNTER, BLOCK_COUNTER, ANNOTATE, EXTERNAL)

SUMMARY_CANARY = b"1\n2\r\n3\r4\n\r5"
UNAME_KEY = b"\x05uname"  # the first Summary attribute in every gatord version (§5.1)

_I32 = struct.Struct("<i")


class FrameError(ValueError):
    """Bytes that do not follow the layout; ``offset`` is relative to the buffer being decoded."""

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.offset = offset


# --- packed integers (signed LEB128, §4; decoded by :mod:`.leb128`) ------------------------------


def sleb(buf, pos: int) -> tuple[int, int]:
    """One packed32/packed64 at ``buf[pos]``: ``(value, next_pos)``; :class:`FrameError` when it runs
    past the end of ``buf``, is longer than the 10 bytes of a packed64 or does not fit in 64 bits."""
    try:
        value, pos = leb128.decode(buf, pos)
    except leb128.LEB128Error as exc:
        raise FrameError(exc.message, exc.offset) from None
    if not leb128.fits_int64(value):
        raise FrameError("packed integer does not fit in 64 bits", pos)
    return value, pos



class _SLEB128(Construct):
    """construct field for a packed integer (signed LEB128)."""

    def _parse(self, stream, context, path):
        data = bytearray()
        while True:
            b = stream_read(stream, 1, path)[0]
            data.append(b)
            if b < 0x80 or len(data) >= 10:
                break
        try:
            return sleb(data, 0)[0]
        except FrameError as exc:
            from construct import StreamError

            raise StreamError(str(exc), path=path) from None

    def _build(self, obj, stream, context, path):
        data = sleb_encode(int(obj))
        stream_write(stream, data, len(data), path)
        return obj

    def _sizeof(self, context, path):
        from construct import SizeofError

        raise SizeofError("packed integers have a variable size", path=path)


Packed = _SLEB128()
"""A packed32/packed64 field (the two are the same encoding)."""

PackedString = PascalString(Packed, "utf8")
"""``packed32 byte count`` + UTF-8 bytes, no terminator (§4)."""

# --- records and frames -------------------------------------------------------------------------

RecordHeader = Int32sl
"""The ``i32le`` length before every frame; it counts the frame bytes only (§3)."""

SummaryAttribute = Struct(
    "key" / PackedString,
    "value" / If(this.key != "", PackedString),
)

SummaryClocks = Struct(
    "realtime" / Packed,  # A: CLOCK_REALTIME ns when the summary was built
    "boottime" / Packed,  # B: uptime/boottime ns (= C in non-root and old perf mode)
    "monotonic_raw" / Packed,  # C: CLOCK_MONOTONIC_RAW ns at the start = the time base
    "_next" / Peek(Bytes(len(UNAME_KEY))),
    # D (gator 9.1+ perf captures): present unless the first attribute key follows C (§5.1).
    "monotonic" / If(lambda ctx: ctx._next != UNAME_KEY if ctx._parsing else ctx.monotonic is not None, Packed),
)

SummaryMessage = Struct(
    "code" / Const(1, Packed),
    "canary" / Const(SUMMARY_CANARY.decode("ascii"), PascalString(Packed, "ascii")),
    "clocks" / SummaryClocks,
    "attributes" / RepeatUntil(lambda attr, lst, ctx: attr["key"] == "", SummaryAttribute),
)
"""Summary frame message code 1: canary, 3 or 4 clocks, ``(key, value)*`` ended by an empty key."""

CoreNameMessage = Struct(
    "code" / Const(3, Packed),
    "core" / Packed,
    "cpuid" / Packed,  # (MIDR implementer << 12) | part number
    "name" / PackedString,
)
"""Summary frame message code 3: the name of one core (§5.3)."""

CounterMessage = Struct("time" / Packed, "core" / Packed, "key" / Packed, "value" / Packed)
"""COUNTER frame (type 4, no core) body: this message repeated to the end of the frame (§6.5)."""

LegacyAnnotateChunk = Struct(
    "core" / Packed,
    "tid" / Packed,
    "time" / Packed,  # relative to the capture start
    "size" / Packed,
    "data" / Bytes(this.size),
)
"""ANNOTATE frame (type 6, no core) body: chunks of ``/dev/gator/annotate`` writes (§6.6).

A chunk with time 0 and size 0 says the writer closed the file."""

# Binary records of the legacy ``/dev/gator/annotate`` byte format (annotate-protocol.md §9.1);
# integers are unpacked little-endian; each starts with the escape byte 0x1C and a record type.
LEGACY_ESCAPE = 0x1C
LEGACY_COLOR = 0x1B  # a text may start with 1B R G B (the LE bytes of the 0xBBGGRR1B constant)
LEGACY_VISUAL, LEGACY_MARKER, LEGACY_TEXT, LEGACY_NAME_CHANNEL, LEGACY_NAME_GROUP = 4, 5, 6, 7, 8

LegacyRecord = Struct(
    "escape" / Const(LEGACY_ESCAPE, Int8ul),
    "type" / Int8ul,
    "body" / Switch(
        this.type,
        {
            LEGACY_TEXT: Struct("channel" / Int32ul, "text" / Prefixed(Int16ul, GreedyBytes)),
            LEGACY_NAME_CHANNEL: Struct(
                "channel" / Int32ul, "group" / Int32ul, "text" / Prefixed(Int16ul, GreedyBytes)
            ),
            LEGACY_NAME_GROUP: Struct("group" / Int32ul, "text" / Prefixed(Int16ul, GreedyBytes)),
            LEGACY_VISUAL: Struct(
                "text" / Prefixed(Int16ul, GreedyBytes), "image" / Prefixed(Int32ul, GreedyBytes)
            ),
            LEGACY_MARKER: Struct("text" / Prefixed(Int16ul, GreedyBytes)),
        },
        default=Error,
    ),
)
"""One ``0x1C``-escaped binary record of the legacy annotation format."""


# --- the record walk ----------------------------------------------------------------------------


@dataclass
class Walk:
    """What one pass over the records of a data buffer found.

    ``frames[type]`` lists ``start, end, start, end, ...`` (flat) of every frame of a type in
    :data:`DECODED`, in file order; ``start`` is the offset of the frame's type byte.
    """

    counts: dict[int, int] = field(default_factory=dict)  # frames per type
    sizes: dict[int, int] = field(default_factory=dict)  # frame bytes per type
    frames: dict[int, list[int]] = field(default_factory=dict)
    unknown: list[tuple[int, int]] = field(default_factory=list)  # (record offset, type) skipped
    zero_length: int = 0  # records of length 0 (not written by gatord; skipped)
    header_only: dict[int, int] = field(default_factory=dict)  # frames with a type (+ core) and no body
    end: int = 0  # offset where the walk stopped (== len(buf) when the whole buffer was read)
    error: FrameError | None = None  # why the walk stopped early


def walk(buf, start: int = 0) -> Walk:
    """Walk the ``length + frame`` records of ``buf`` from ``start``; never raises for bad bytes.

    Stops at a record whose length is negative or runs past the end (``Walk.error``); frames of
    unknown type are skipped by their length and listed in ``Walk.unknown``.
    """
    n = len(buf)
    unpack = _I32.unpack_from
    counts = [0] * 256
    sizes = [0] * 256
    lists: dict[int, list[int]] = {t: [] for t in DECODED}
    keep = {t: lists[t].append for t in DECODED}
    zero = 0
    header_only: dict[int, int] = {}
    unknown: list[tuple[int, int]] = []
    error = None
    pos = start
    while pos < n:
        if pos + 4 > n:
            error = FrameError(f"record header cut short ({n - pos} of 4 bytes)", pos)
            break
        length = unpack(buf, pos)[0]
        s = pos + 4
        e = s + length
        if length <= 0 or e > n:
            if length == 0:
                zero += 1
                pos = s
                continue
            what = "negative" if length < 0 else f"runs {e - n} bytes past the end of the data"
            error = FrameError(f"record length {length} {what}", pos)
            break
        t = buf[s]
        counts[t] += 1
        if length <= 2 and (length == 1 or t in CORE_FIELD):
            header_only[t] = header_only.get(t, 0) + 1
        sizes[t] += length
        add = keep.get(t)
        if add is not None:
            add(s)
            add(e)
        elif t not in FRAME_NAMES:
            unknown.append((pos, _frame_type(buf, s, e)))
        pos = e
    return Walk(
        counts={t: c for t, c in enumerate(counts) if c},
        sizes={t: c for t, c in enumerate(sizes) if c},
        frames=lists,
        unknown=unknown,
        zero_length=zero,
        header_only=header_only,
        end=pos,
        error=error,
    )


def _frame_type(buf, start: int, end: int) -> int:
    """The packed frame type at ``start`` (the first byte when it is not a valid packed integer)."""
    try:
        t, pos = sleb(buf, start)
    except FrameError:
        return buf[start]
    return t if pos <= end else buf[start]


# --- polled counters: BLOCK_COUNTER (5) and COUNTER (4) -------------------------------------------


@dataclass
class CounterColumns:
    """Counter samples as parallel columns; ``t_rel_ns`` is relative to the capture start."""

    t_rel_ns: list[int] = field(default_factory=list)
    core: list[int] = field(default_factory=list)
    tid: list[int] = field(default_factory=list)
    key: list[int] = field(default_factory=list)
    value: list[int] = field(default_factory=list)
    errors: list[FrameError] = field(default_factory=list)  # offsets are into the walked buffer
    backwards: list[int] = field(default_factory=list)  # offsets of frames whose time went back
    blocks: list[dict[str, np.ndarray]] = field(default_factory=list)  # columns decoded in bulk

    def arrays(self) -> dict[str, np.ndarray]:
        """All samples (bulk blocks first, then the per-frame ones) as int64 arrays."""
        names = ("t_rel_ns", "core", "tid", "key", "value")
        parts = self.blocks + [{n: np.asarray(getattr(self, n), dtype=np.int64) for n in names}]
        return {n: np.concatenate([p[n] for p in parts]) for n in names}


def block_counters(buf, frames: list[int], out: CounterColumns) -> None:
    """Append the samples of the BLOCK_COUNTER frames ``frames`` (flat start/end list) to ``out``.

    Pairs ``(key, value)``: key 0 sets the time (and resets tid to 0 and core to the frame's
    core), 1 the tid, 2 the core; keys >= 3 are samples (§6.1). All frames are decoded at once
    with numpy (:func:`_block_counters_bulk`); when any frame is damaged they are decoded one by one
    instead (:func:`_block_counters_each`), which keeps the samples before the damage and reports
    it in ``out.errors``.
    """
    bulk = _block_counters_bulk(buf, frames)
    if bulk is None:
        _block_counters_each(buf, frames, out)
    else:
        columns, backwards = bulk
        out.blocks.append(columns)
        out.backwards.extend(backwards)


def _block_counters_bulk(buf, frames: list[int]) -> tuple[dict[str, np.ndarray], list[int]] | None:
    """Every BLOCK_COUNTER frame decoded together; ``None`` if any frame is not well formed."""
    if not frames:
        return {n: np.zeros(0, np.int64) for n in ("t_rel_ns", "core", "tid", "key", "value")}, []
    se = np.asarray(frames, dtype=np.int64).reshape(-1, 2)
    starts, lens = se[:, 0] + 1, se[:, 1] - se[:, 0] - 1  # after the one-byte type
    if (lens <= 0).any():
        return None
    nf, total = len(lens), int(lens.sum())
    first_byte = np.zeros(nf, np.int64)
    first_byte[1:] = np.cumsum(lens)[:-1]
    b = np.frombuffer(buf, np.uint8)[np.repeat(starts - first_byte, lens) + np.arange(total)]
    frame_of_byte = np.repeat(np.arange(nf), lens)
    if not (b[first_byte + lens - 1] < 0x80).all():  # every frame ends on a whole value
        return None
    decoded = leb128.decode_run(b)
    if decoded is None:
        return None
    vals, vend = decoded
    vframe = frame_of_byte[vend]
    counts = np.bincount(vframe, minlength=nf)
    if ((counts - 1) % 2).any():  # core, then whole pairs
        return None
    first = np.zeros(nf, np.int64)
    first[1:] = np.cumsum(counts)[:-1]
    frame_core = vals[first]
    rest = np.ones(len(vals), bool)
    rest[first] = False
    pairs = vals[rest]
    keys, values, pframe = pairs[0::2], pairs[1::2], vframe[rest][0::2]
    if (keys < 0).any():
        return None
    idx = np.arange(len(keys))
    pfirst = (first - np.arange(nf)) // 2  # index of each frame's first pair (values before it, less the cores)
    last0 = np.maximum.accumulate(np.where(keys == 0, idx, -1))
    sample = keys >= 3
    if (sample & (last0 < pfirst[pframe])).any():  # a sample before its frame's timestamp
        return None
    last1 = np.maximum.accumulate(np.where(keys == 1, idx, -1))
    last2 = np.maximum.accumulate(np.where(keys == 2, idx, -1))
    sel = np.flatnonzero(sample)
    l0, l1, l2 = last0[sel], last1[sel], last2[sel]
    columns = {
        "t_rel_ns": values[l0],
        "core": np.where(l2 > l0, values[np.maximum(l2, 0)], frame_core[pframe[sel]]),
        "tid": np.where(l1 > l0, values[np.maximum(l1, 0)], 0),
        "key": keys[sel],
        "value": values[sel],
    }
    stamps = np.flatnonzero(keys == 0)
    back = stamps[1:][np.diff(values[stamps]) < 0]
    return columns, (se[pframe[back], 0]).tolist()


def _block_counters_each(buf, frames: list[int], out: CounterColumns) -> None:
    """The frames one by one with :func:`sleb` (precise error offsets)."""
    ts_, core_, tid_, key_, val_ = out.t_rel_ns.append, out.core.append, out.tid.append, out.key.append, out.value.append
    last = -(1 << 63)
    for i in range(0, len(frames), 2):
        s, e = frames[i], frames[i + 1]
        try:
            frame_core, pos = sleb(buf, s + 1)
            ts = None
            cur_core = frame_core
            tid = 0
            while pos < e:
                k, pos = sleb(buf, pos)
                v, pos = sleb(buf, pos)
                if pos > e:
                    raise FrameError("counter pair runs past the end of its frame", e)
                if k >= 3:
                    if ts is None:
                        raise FrameError(f"counter key {k:#x} before any timestamp", pos)
                    ts_(ts)
                    core_(cur_core)
                    tid_(tid)
                    key_(k)
                    val_(v)
                elif k == 0:
                    ts = v
                    if v < last:
                        out.backwards.append(s)
                    last = v
                    tid = 0
                    cur_core = frame_core
                elif k == 1:
                    tid = v
                elif k == 2:
                    cur_core = v
                else:
                    raise FrameError(f"negative counter key {k}", pos)
        except FrameError as exc:
            out.errors.append(FrameError(f"BLOCK_COUNTER frame at {s}: {exc}", exc.offset))


def counter_messages(buf, frames: list[int], out: CounterColumns) -> None:
    """Append the samples of COUNTER frames (``time, core, key, value`` repeated, §6.5) to ``out``."""
    last = -(1 << 63)
    for i in range(0, len(frames), 2):
        s, e = frames[i], frames[i + 1]
        pos = s + 1
        try:
            while pos < e:
                t, pos = sleb(buf, pos)
                c, pos = sleb(buf, pos)
                k, pos = sleb(buf, pos)
                v, pos = sleb(buf, pos)
                if pos > e:
                    raise FrameError("counter message runs past the end of its frame", e)
                if t < last:
                    out.backwards.append(s)
                last = t
                out.t_rel_ns.append(t)
                out.core.append(c)
                out.tid.append(0)
                out.key.append(k)
                out.value.append(v)
        except FrameError as exc:
            out.errors.append(FrameError(f"COUNTER frame at {s}: {exc}", exc.offset))


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
                errors.append(FrameError(f"ANNOTATE frame at {s}: chunk cut short or damaged ({_reason(exc)})", at))
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
            fields["text"], fields["color"] = _legacy_color(body["text"]) if rec.type in (
                LEGACY_TEXT, LEGACY_MARKER) else (body["text"], None)
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


def _reason(exc: Exception) -> str:
    return str(exc).splitlines()[-1].strip() if str(exc) else type(exc).__name__
