"""The power log (``.sbp``, docs/power-log.md): its layout declared once, the writer, and the low-level reader.

A header (magic, version, JSON metadata, CRC-32) and then records, each written with ONE
``write()``: type, payload length, CRC-32 of the payload, payload. Sample records are columnar
(first-sample index, count, rail count, missed ticks; i64 read-start times, u32 read durations,
f32 mW per rail); the trailer record (JSON) is written at a clean stop. Every complete record
survives a SIGKILL of the writer; a reader stops at a record cut short and says where.

:data:`HEADER`, :data:`RECORD` and :data:`SAMPLES` are :mod:`construct` declarations that both
build (the writer) and parse (the reader), checksums included. Version 2 added each rail's
sensor model to the header (``rails[i].sensor_model``); the byte layout is that of version 1,
which is still read (its rails have no sensor model).
"""

from __future__ import annotations

import errno
import io
import json
import os
import struct
import zlib
from array import array
from dataclasses import dataclass, field
from typing import Any

from construct import (
    Bytes,
    Checksum,
    ChecksumError,
    Computed,
    Const,
    ConstructError,
    GreedyBytes,
    Int8ul,
    Int32ul,
    Int64ul,
    Prefixed,
    Rebuild,
    Struct,
    Terminated,
    len_,
    this,
)

MAGIC = b"SBPOWR1\n"
VERSION = 2  # what the writer writes
READS = (1, 2)  # versions the reader understands
SAMPLES_RECORD, TRAILER_RECORD = 1, 2
MAX_READ_NS = 0xFFFFFFFF


class _Code:
    """A context function that construct can also compile: called on the context when interpreted,
    spelled as ``code`` (an expression over the context ``this``) in a compiled parser/builder."""

    def __init__(self, code: str):
        self.code = code
        self.func = eval(f"lambda this: {code}", {"__builtins__": {"__import__": __import__}})

    def __call__(self, ctx: Any) -> Any:
        return self.func(ctx)

    def __repr__(self) -> str:
        return self.code


_payload_crc = _Code("__import__('zlib').crc32(this['payload'])")  # the records' checksum


HEADER = Struct(
    "magic" / Const(MAGIC),
    "version" / Int32ul,
    "json" / Prefixed(Int32ul, GreedyBytes),  # UTF-8 JSON metadata
    "crc" / Checksum(Int32ul, zlib.crc32, this.json),
)
RECORD = Struct(
    "type" / Int8ul,
    "length" / Rebuild(Int32ul, len_(this.payload)),
    "crc" / Rebuild(Int32ul, _payload_crc),
    "payload" / Bytes(this.length),
    "intact" / Computed(_Code(f"this['crc'] == {_payload_crc!r}")),  # parsed: the CRC matches the payload
).compile()
RECORD_HEAD_SIZE = 9  # type, length, CRC
SAMPLES = Struct(
    "first" / Int64ul,  # index of the record's first sample
    "count" / Int32ul,
    "rails" / Int32ul,
    "missed" / Int32ul,  # ticks missed during this chunk
    "t_start" / Bytes(8 * this.count),  # i64 CLOCK_MONOTONIC_RAW ns before each read
    "read_ns" / Bytes(4 * this.count),  # u32 ns each read took
    "power" / Bytes(4 * this.count * this.rails),  # f32 mW, rail-major
    Terminated,
).compile()


class PowerLogWriter:
    """Appends a power log; each record goes to disk with one ``write()`` on an O_APPEND descriptor.

    The file is created new (``O_EXCL | O_NOFOLLOW``: an existing file or a symlink is an error,
    nothing is overwritten); a record that does not fit (disk full) is cut off again and the
    OSError raised, so the log holds whole records only.
    """

    def __init__(self, path: str | os.PathLike[str], meta: dict[str, Any]):
        self.path = os.fspath(path)
        self.n_rails = len(meta["rails"])
        self.samples_written = 0
        self._size = 0
        self._fd = os.open(
            self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_APPEND | os.O_CLOEXEC, 0o644
        )
        text = json.dumps(meta, sort_keys=True).encode()
        try:
            self._append(HEADER.build({"version": VERSION, "json": text}))
        except OSError:
            self.close()
            raise

    def _append(self, data: bytes) -> None:
        """Write ``data`` whole or not at all: when the rest of a short write fails too (disk full,
        file size limit), what was written is cut off again and the OSError raised, naming the file."""
        view, done = memoryview(data), 0
        try:
            while done < len(data):
                n = os.write(self._fd, view[done:])
                if n == 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                done += n
        except OSError as exc:
            os.ftruncate(self._fd, self._size)
            raise OSError(exc.errno, exc.strerror, self.path) from None
        self._size += done

    def write_samples(self, t_start: array, read_ns: array, columns: list[array], missed: int) -> None:
        """One sample record: ``t_start`` (array 'q'), ``read_ns`` (array 'I'), one array 'f' per rail."""
        n = len(t_start)
        if n == 0:
            return
        payload = SAMPLES.build(
            {
                "first": self.samples_written,
                "count": n,
                "rails": self.n_rails,
                "missed": missed,
                "t_start": t_start.tobytes(),
                "read_ns": read_ns.tobytes(),
                "power": b"".join(c.tobytes() for c in columns),
            }
        )
        self._append(RECORD.build({"type": SAMPLES_RECORD, "payload": payload}))
        self.samples_written += n

    def write_trailer(self, summary: dict[str, Any]) -> None:
        """The summary record written at a clean stop (achieved rate, update periods ...)."""
        self._append(RECORD.build({"type": TRAILER_RECORD, "payload": json.dumps(summary, sort_keys=True).encode()}))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@dataclass
class LogContent:
    """Everything read from a power log, as numpy arrays; ``problems`` are (offset, message)."""

    meta: dict[str, Any]
    t_start: Any  # numpy int64: CLOCK_MONOTONIC_RAW ns before each read
    t_end: Any  # numpy int64: after each read
    power: dict[str, Any]  # rail -> numpy float64 mW (NaN = missing)
    missed_ticks: int = 0
    trailer: dict[str, Any] | None = None
    problems: list[tuple[int, str]] = field(default_factory=list)
    truncated_at: int | None = None  # offset of a record cut short
    version: int = VERSION


def read_header(stream: io.BytesIO) -> tuple[int, dict[str, Any]]:
    """(version, metadata) from the start of ``stream``; ``ValueError(offset, message)`` when unusable."""
    start = stream.read(len(MAGIC) + 4)
    if start[: len(MAGIC)] != MAGIC:
        raise ValueError(0, "not a power log (magic SBPOWR1 missing)")
    version = int.from_bytes(start[len(MAGIC) :], "little") if len(start) == len(MAGIC) + 4 else None
    if version is not None and version not in READS:
        raise ValueError(
            len(MAGIC), f"power log version {version} is not supported (this reader: {', '.join(map(str, READS))})"
        )
    stream.seek(0)
    try:
        head = HEADER.parse_stream(stream)
    except ChecksumError:
        raise ValueError(len(MAGIC) + 4, "header checksum mismatch") from None
    except ConstructError:
        raise ValueError(len(MAGIC) + 4, "header cut short") from None
    try:
        meta = json.loads(head.json)
    except ValueError:
        raise ValueError(len(MAGIC) + 8, "header metadata is not JSON") from None
    return head.version, meta


def read_log(path: str | os.PathLike[str], data: bytes | None = None) -> LogContent:
    """Parse a power log; raises ``ValueError(offset, message)`` when even the header is unusable."""
    import numpy as np

    buf = data if data is not None else open(path, "rb").read()
    stream = io.BytesIO(buf)
    version, meta = read_header(stream)
    rails = [r["name"] for r in meta["rails"]]
    out = LogContent(meta, None, None, {}, version=version)
    starts: list[Any] = []
    durs: list[Any] = []
    cols: list[list[Any]] = [[] for _ in rails]
    pos = stream.tell()
    while pos < len(buf):
        try:
            rec = RECORD.parse_stream(stream)
        except (ConstructError, struct.error):  # the compiled parser's short reads
            out.truncated_at = pos
            break
        if len(rec.payload) != rec.length:
            out.truncated_at = pos
            break
        if not rec.intact:
            out.problems.append((pos, f"record checksum mismatch ({rec.length} bytes)"))
        elif rec.type == SAMPLES_RECORD:
            try:
                s = SAMPLES.parse(rec.payload)
                fits = s.rails == len(rails) and len(s.power) == 4 * s.count * s.rails
            except (ConstructError, struct.error):
                fits = False
            if not fits:
                out.problems.append(
                    (pos, f"sample record does not fit the header's {len(rails)} rails ({rec.length} bytes)")
                )
            else:
                starts.append(np.frombuffer(s.t_start, "<i8"))
                durs.append(np.frombuffer(s.read_ns, "<u4"))
                power = np.frombuffer(s.power, "<f4")
                for i in range(s.rails):
                    cols[i].append(power[i * s.count : (i + 1) * s.count])
                out.missed_ticks += s.missed
        elif rec.type == TRAILER_RECORD:
            out.trailer = json.loads(rec.payload)
        else:
            out.problems.append((pos, f"unknown record type {rec.type}"))
        pos = stream.tell()

    def cat(parts: list[Any], dtype: str) -> Any:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    out.t_start = cat(starts, "int64")
    out.t_end = out.t_start + cat(durs, "int64")
    out.power = {name: cat(c, "float64") for name, c in zip(rails, cols)}
    return out
