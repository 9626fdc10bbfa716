"""The binary structures of a gatord data file (``0000000000``) and the fast record walk over it.

Layouts follow ``apc-capture-format.md`` (§3–§6) and ``annotate-protocol.md`` §9.1. The structures
are declared with :mod:`construct` (they parse *and* build, so ``tests/apc_writer.py`` builds from
the same declarations); they are used where records are few (Summary, core names, COUNTER and
legacy ANNOTATE frames). The hot paths do not go through construct: the record walk here and the
EXTERNAL chunk collection (:mod:`.apc_annotation_frames`) read the raw buffer (:func:`sleb`), and
BLOCK_COUNTER frames are decoded all at once with numpy (:mod:`.apc_counter_frames`) — a construct
parse of each record header costs ~30 µs against ~0.6 µs (``python -m bench ingest``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from construct import (
    Bytes,
    Const,
    Construct,
    Error,
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
    "body"
    / Switch(
        this.type,
        {
            LEGACY_TEXT: Struct("channel" / Int32ul, "text" / Prefixed(Int16ul, GreedyBytes)),
            LEGACY_NAME_CHANNEL: Struct(
                "channel" / Int32ul, "group" / Int32ul, "text" / Prefixed(Int16ul, GreedyBytes)
            ),
            LEGACY_NAME_GROUP: Struct("group" / Int32ul, "text" / Prefixed(Int16ul, GreedyBytes)),
            LEGACY_VISUAL: Struct("text" / Prefixed(Int16ul, GreedyBytes), "image" / Prefixed(Int32ul, GreedyBytes)),
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


def error_reason(exc: Exception) -> str:
    """The last line of a (construct) error's message, or its type when it has none."""
    return str(exc).splitlines()[-1].strip() if str(exc) else type(exc).__name__
