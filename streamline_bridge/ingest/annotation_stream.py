"""Decoder of one Streamline annotation byte stream: a data connection's handshake and messages.

Wire format: ``../shared/spec/annotate-protocol.md``. A stream is ``ANNOTATE N\\n``, ``u32 tid``,
``u32 pid`` (``u8 dont_mangle_keys`` for N >= 3), then messages ``u8 code, u32le length, body``.

What each message code holds, and what it becomes in the markers table, is
:data:`~streamline_bridge.ingest.annotation_messages.SPECS` (keyed by :mod:`annotate.wire`'s codes).
Speed comes from splitting the work: one tight Python loop walks the framing only (one
``unpack_from`` per message, :func:`walk_frames`), then the fields of all messages of one code are
decoded together (:mod:`~streamline_bridge.ingest.annotation_fields`); the markers table is built
by :mod:`~streamline_bridge.ingest.annotation_markers`.

* :func:`decode` turns a whole stream into a :class:`DecodedStream`.
* :class:`StreamDecoder` takes the stream in pieces of any size (``feed``/``finish``).
* Bad input raises :class:`DecodeError` (an :class:`~streamline_bridge.errors.InputError`) with
  the byte offset of the bad message; ``error.partial`` holds everything decoded before it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from annotate import wire
from streamline_bridge.errors import InputError
from streamline_bridge.ingest.annotation_fields import CodeFields, decode_fields, object_array
from streamline_bridge.ingest.annotation_markers import (
    MarkerColumns,
    markers_table,
    resolve_stream_names,
)
from streamline_bridge.ingest.annotation_messages import HEADER_SIZE, SPECS
from streamline_bridge.model import MARKER_KINDS

MAX_MESSAGE_LENGTH = 32 << 20  # the library never sends more than 32 KiB + an image; anything above is garbage
MAGIC_PREFIX = b"ANNOTATE "
SUPPORTED_VERSIONS = range(1, 6)

_U32 = struct.Struct("<I").unpack_from
_LENGTH_AT = struct.Struct("<xI").unpack_from  # the u32 length of the message starting at an offset
_KNOWN_CODE = np.zeros(256, bool)
_KNOWN_CODE[list(SPECS)] = True
_PAD = bytes(128)  # lets vectorised reads run past a body's end without bounds checks (6 fields + 32-byte tail)


class DecodeError(InputError):
    """Bad annotation bytes at ``offset`` (stream offset of the bad message or handshake).

    ``partial`` is a :class:`DecodedStream` of the messages decoded before the error.
    """

    offset: int  # always known here (InputError's may be None)

    def __init__(self, source: str | None, message: str, offset: int, partial: DecodedStream | None = None):
        super().__init__(source, message, offset)
        self.partial = partial


def color_json(u32: int) -> dict[str, Any]:
    """A colour (the C header's ``0xBBGGRR1B`` constant) as ``{"rgb": "#rrggbb", "tag": T, "u32": u32}``."""
    return {
        "rgb": f"#{(u32 >> 8) & 255:02x}{(u32 >> 16) & 255:02x}{(u32 >> 24) & 255:02x}",
        "tag": u32 & 255,
        "u32": u32,
    }


@dataclass(frozen=True)
class Handshake:
    """The first bytes of a data connection."""

    version: int
    tid: int
    pid: int
    dont_mangle_keys: int  # 0 for v1/v2, which have no flag byte
    raw: bytes  # the handshake bytes exactly as received

    @property
    def magic(self) -> str:
        return f"ANNOTATE {self.version}\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "magic": self.magic,
            "version": self.version,
            "tid": self.tid,
            "pid": self.pid,
            "dont_mangle_keys": self.dont_mangle_keys,
        }


def parse_handshake(buf: bytes, source: str | None = None) -> Handshake | None:
    """The handshake at the start of ``buf``; ``None`` when more bytes are needed; :class:`DecodeError` if bad."""
    n = min(len(buf), len(MAGIC_PREFIX))
    if buf[:n] != MAGIC_PREFIX[:n]:
        raise DecodeError(source, f"not an annotation stream: starts {bytes(buf[:12])!r}, expected b'ANNOTATE N\\n'", 0)
    if len(buf) < 11:
        return None
    if buf[10] != 0x0A or not 0x30 <= buf[9] <= 0x39:
        raise DecodeError(source, f"bad handshake {bytes(buf[:11])!r}, expected b'ANNOTATE N\\n'", 0)
    version = buf[9] - 0x30
    if version not in SUPPORTED_VERSIONS:
        raise DecodeError(source, f"unsupported annotation protocol version {version}", 0)
    size = 20 if version >= 3 else 19
    if len(buf) < size:
        return None
    tid, pid = struct.unpack_from("<II", buf, 11)
    return Handshake(version, tid, pid, buf[19] if version >= 3 else 0, bytes(buf[:size]))


@dataclass
class Message:
    """One decoded message: where it is, what it is, and all its fields."""

    offset: int  # byte offset of the code byte in the stream
    code: int
    length: int  # body length
    fields: dict[str, Any]  # colours as u32 ints, images as bytes, CAM dependencies as lists
    raw: bytes  # the message bytes, header included

    @property
    def name(self) -> str:
        return SPECS[self.code].name

    def to_json(self) -> dict[str, Any]:
        """The message in the layout of the ``*.expected.json`` vector decodes."""
        return {
            "offset": self.offset,
            "code": self.code,
            "name": self.name,
            "length": self.length,
            "hex": self.raw.hex(" "),
            "fields": {k: _json_value(k, v) for k, v in self.fields.items()},
        }


def _json_value(key: str, value: Any) -> Any:
    if key == "color":
        return color_json(value)
    if key == "activities":
        return [[name, color_json(color)] for name, color in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


@dataclass
class DecodedStream:
    """Messages of one stream (or of one piece of it), as arrays, per-code field columns and raw bytes."""

    handshake: Handshake | None
    offset: np.ndarray  # int64 stream offset of each message
    code: np.ndarray  # uint8
    length: np.ndarray  # int64 body length
    fields: dict[int, CodeFields]
    raw: bytes  # the bytes of these messages, back to back
    start: int  # stream offset of raw[0]

    def __len__(self) -> int:
        return len(self.offset)

    def message(self, i: int) -> Message:
        """The ``i``-th message with all its fields."""
        code = int(self.code[i])
        group = self.fields[code]
        j = int(np.searchsorted(group.index, i))
        fields = {
            k: (int(v[j]) if isinstance(v, np.ndarray) and v.dtype.kind == "i" else v[j])
            for k, v in group.columns.items()
        }
        a = int(self.offset[i]) - self.start
        return Message(
            int(self.offset[i]), code, int(self.length[i]), fields, self.raw[a : a + HEADER_SIZE + int(self.length[i])]
        )

    def messages(self) -> list[Message]:
        return [self.message(i) for i in range(len(self))]

    def to_json(self) -> dict[str, Any]:
        """Handshake and messages in the layout of the ``*.expected.json`` vector decodes."""
        return {
            "handshake": self.handshake.to_json() if self.handshake else None,
            "messages": [m.to_json() for m in self.messages()],
        }

    def counters_only(self) -> DecodedStream:
        """The counter definitions and values of these messages only, without their bytes
        (what :mod:`~streamline_bridge.ingest.annotation_power` reads), for keeping while a stream is read in pieces."""
        keep = {c: g for c, g in self.fields.items() if c in (wire.COUNTER, wire.COUNTER_VALUE)}
        return DecodedStream(self.handshake, self.offset[:0], self.code[:0], self.length[:0], keep, b"", self.start)

    def counter_names(self) -> dict[int, str]:
        """``{key: name}`` of the counter definitions (the last definition of a key wins)."""
        return {k: d["name"] for k, d in self.counter_definitions().items()}

    def counter_definitions(self) -> dict[int, dict[str, Any]]:
        """``{key: every field of its definition}`` (``Meta.counters``; the last definition of a key wins)."""
        group = self.fields.get(wire.COUNTER)
        if group is None:
            return {}
        rows = zip(*(group.columns[c] for c in group.columns))
        out = {}
        for row in rows:
            d = {c: (v.item() if hasattr(v, "item") else v) for c, v in zip(group.columns, row)}
            d["activities"] = [[name, color] for name, color in d.get("activities", [])]
            out[int(d["key"])] = d
        return out

    def marker_columns(self, *, pid: int | None = None, tid: int | None = None, stream: int = 0) -> MarkerColumns:
        """These messages' rows of the markers table, compact (:class:`MarkerColumns`); pid/tid default
        to the handshake's."""
        n = len(self)
        hs = self.handshake
        out = MarkerColumns(
            n,
            {},
            np.full(n, None, dtype=object),
            np.zeros(n, np.int8),
            self.code,
            pid if pid is not None else (hs.pid if hs else 0),
            tid if tid is not None else (hs.tid if hs else 0),
            stream,
        )
        for code, group in self.fields.items():
            spec = SPECS[code]
            out.kind[group.index] = MARKER_KINDS.index(spec.kind)
            for column, name in spec.columns.items():
                values = group.columns[name]
                if column == "text":
                    out.text[group.index] = object_array(values)
                    continue
                if column not in out.ints:
                    out.ints[column] = (np.zeros(n, np.int64), np.zeros(n, bool))
                out.ints[column][0][group.index] = values
                out.ints[column][1][group.index] = True
            if spec.kind_when_empty is not None:
                out.kind[group.index[out.text[group.index] == ""]] = MARKER_KINDS.index(spec.kind_when_empty)
        return out

    def markers(
        self, *, pid: int | None = None, tid: int | None = None, stream: int = 0, clock_base_ns: int | None = None
    ) -> pd.DataFrame:
        """The messages as a markers table (``model.py``); pid/tid default to the handshake's.

        ``channel_name``/``group_name``/``group`` of text rows are resolved from earlier
        ``name_channel``/``name_group`` messages of this stream (:func:`resolve_stream_names`; see
        :func:`resolve_group_names` for names given on other threads of the process).
        """
        table = markers_table([self.marker_columns(pid=pid, tid=tid, stream=stream)], clock_base_ns)
        resolve_stream_names(table)
        return table


def _empty(handshake: Handshake | None, start: int) -> DecodedStream:
    z = np.zeros(0, np.int64)
    return DecodedStream(handshake, z, np.zeros(0, np.uint8), z, {}, b"", start)


def walk_frames(buf: bytes, pos: int) -> tuple[list[int], int]:
    """Start offsets of the messages from ``pos`` on (the last may be incomplete), and where the walk ended.

    The one sequential step of decoding: each length says where the next message starts.
    """
    starts: list[int] = []
    append = starts.append
    length = _LENGTH_AT  # local names: this loop is the decoder's sequential floor
    last = len(buf) - HEADER_SIZE
    while pos <= last:
        append(pos)
        pos += length(buf, pos)[0] + 5
    return starts, pos


def _decode_messages(
    buf: bytes, pos: int, base: int, handshake: Handshake | None, source: str | None
) -> tuple[DecodedStream, int, DecodeError | None]:
    """Complete messages of ``buf[pos:]`` (``base`` = stream offset of ``buf[0]``).

    Returns the decoded messages, the end of the last complete good message in ``buf``, and the
    error that stopped decoding (None when it stopped only for lack of bytes).
    """
    end = len(buf)
    starts, pos = walk_frames(buf, pos)
    if not starts:
        return _empty(handshake, base + pos), pos, None
    st = np.array(starts, np.int64)
    lengths = np.diff(st, append=pos) - HEADER_SIZE
    arr = np.frombuffer(buf + _PAD, np.uint8)
    codes = arr[st]
    bad = ~_KNOWN_CODE[codes] | (lengths > MAX_MESSAGE_LENGTH)
    error: DecodeError | None = None
    n = len(st) if pos <= end else len(st) - 1  # the last one may be incomplete
    if bad.any():
        k = int(np.argmax(bad))
        c, ln = int(codes[k]), int(lengths[k])
        why = (
            f"unknown message code {c} (0x{c:02x})"
            if c not in SPECS
            else f"message length {ln} exceeds the {MAX_MESSAGE_LENGTH >> 20} MiB limit"
        )
        error = DecodeError(source, why, base + int(st[k]))
        n = min(n, k)
    st, codes, lengths = st[:n], codes[:n], lengths[:n]
    fields, first_bad, why = decode_fields(buf, arr, st, codes, lengths)
    if first_bad < n:
        error = DecodeError(
            source,
            f"{SPECS[int(codes[first_bad])].name} message (code {int(codes[first_bad])}): {why}",
            base + int(st[first_bad]),
        )
        st, codes, lengths = st[:first_bad], codes[:first_bad], lengths[:first_bad]
        fields, _, _ = decode_fields(buf, arr, st, codes, lengths)
    if len(st) == 0:
        stop = int(starts[0])
        return _empty(handshake, base + stop), stop, error
    a, stop = int(st[0]), int(st[-1] + HEADER_SIZE + lengths[-1])
    return DecodedStream(handshake, st + base, codes, lengths, fields, buf[a:stop], base + a), stop, error


class StreamDecoder:
    """Decodes one stream fed in pieces of any size; keeps the incomplete remainder between calls."""

    def __init__(self, source: str | None = None):
        self.source = source
        self.handshake: Handshake | None = None
        self._chunks: list[bytes] = []
        self._have = 0  # bytes held in _chunks
        self._need = 1  # bytes needed before decoding can progress
        self._base = 0  # stream offset of the first held byte
        self._error: DecodeError | None = None

    @property
    def offset(self) -> int:
        """Stream offset up to which bytes have been decoded (held bytes start here)."""
        return self._base

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete message."""
        return self._have

    def feed(self, data: bytes) -> DecodedStream:
        """Decode the messages ``data`` completes; raises :class:`DecodeError` (with ``partial``) on bad bytes."""
        if self._error is not None:
            raise DecodeError(
                self.source,
                f"stream already failed: {self._error.message}",
                self._error.offset,
                _empty(self.handshake, self._base),
            )
        if data:
            self._chunks.append(bytes(data))
            self._have += len(data)
        if self._have < self._need:
            return _empty(self.handshake, self._base)
        buf = b"".join(self._chunks)
        pos = 0
        if self.handshake is None:
            try:
                self.handshake = parse_handshake(buf, self.source)
            except DecodeError as exc:
                self._error = exc
                exc.partial = _empty(None, 0)
                raise
            if self.handshake is None:
                self._keep(buf, 0, len(buf) + 1)
                return _empty(None, 0)
            pos = len(self.handshake.raw)
        out, stop, error = _decode_messages(buf, pos, self._base, self.handshake, self.source)
        if error is not None:
            self._error = error
            error.partial = out
            self._base += stop
            self._chunks, self._have = [], 0
            raise error
        rest = len(buf) - stop
        self._keep(buf, stop, HEADER_SIZE + _U32(buf, stop + 1)[0] if rest >= HEADER_SIZE else HEADER_SIZE)
        return out

    def _keep(self, buf: bytes, stop: int, need: int) -> None:
        self._base += stop
        self._chunks = [buf[stop:]] if stop < len(buf) else []
        self._have = len(buf) - stop
        self._need = need

    def finish(self) -> None:
        """Declare the end of the stream; :class:`DecodeError` if it ends inside the handshake or a message."""
        if self._error is not None or self._have == 0:
            return
        self._need = 0
        self.feed(b"")  # anything complete that was waiting for more bytes
        if self._have == 0:
            return
        buf = b"".join(self._chunks)
        if self.handshake is None:
            what = "the handshake"
        elif len(buf) < HEADER_SIZE:
            what = f"a message header ({len(buf)} of {HEADER_SIZE} bytes)"
        else:
            what = f"a message (code {buf[0]}, {len(buf)} of {HEADER_SIZE + _U32(buf, 1)[0]} bytes)"
        self._error = DecodeError(
            self.source, f"stream ends inside {what}", self._base, _empty(self.handshake, self._base)
        )
        raise self._error


def decode(data: bytes, source: str | None = None) -> DecodedStream:
    """Decode a whole stream (handshake first); :class:`DecodeError` with ``partial`` if it is bad or cut short."""
    dec = StreamDecoder(source)
    out = dec.feed(data)
    try:
        dec.finish()
    except DecodeError as exc:
        exc.partial = out
        raise
    return out
