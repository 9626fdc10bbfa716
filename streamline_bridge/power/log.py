"""The power log (``.sbp``, docs/power-log.md): writer, and the low-level reader of its records.

A header (magic, version, JSON metadata, CRC-32) and then records, each written with ONE
``write()``: type, payload length, CRC-32 of the payload, payload. Sample records are columnar
(first-sample index, count, rail count, missed ticks; i64 read-start times, u32 read durations,
f32 mW per rail); the trailer record (JSON) is written at a clean stop. Every complete record
survives a SIGKILL of the writer; a reader stops at a record cut short and says where.
"""

from __future__ import annotations

import errno
import json
import os
import struct
import zlib
from array import array
from dataclasses import dataclass, field
from typing import Any

MAGIC = b"SBPOWR1\n"
VERSION = 1
HEADER = struct.Struct("<8sII")  # magic, version, JSON length (then JSON, then u32 CRC-32 of the JSON)
RECORD = struct.Struct("<BII")  # type, payload length, CRC-32 of the payload
SAMPLES = struct.Struct("<QIII")  # first sample index, n samples, n rails, missed ticks
CRC = struct.Struct("<I")
SAMPLES_RECORD, TRAILER_RECORD = 1, 2
MAX_READ_NS = 0xFFFFFFFF


def _record(kind: int, payload: bytes) -> bytes:
    return RECORD.pack(kind, len(payload), zlib.crc32(payload)) + payload


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
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_APPEND | os.O_CLOEXEC,
                           0o644)
        text = json.dumps(meta, sort_keys=True).encode()
        try:
            self._append(HEADER.pack(MAGIC, VERSION, len(text)) + text + CRC.pack(zlib.crc32(text)))
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
        payload = b"".join([SAMPLES.pack(self.samples_written, n, self.n_rails, missed),
                            t_start.tobytes(), read_ns.tobytes(), *(c.tobytes() for c in columns)])
        self._append(_record(SAMPLES_RECORD, payload))
        self.samples_written += n

    def write_trailer(self, summary: dict[str, Any]) -> None:
        """The summary record written at a clean stop (achieved rate, update periods ...)."""
        self._append(_record(TRAILER_RECORD, json.dumps(summary, sort_keys=True).encode()))

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


def read_log(path: str | os.PathLike[str], data: bytes | None = None) -> LogContent:
    """Parse a power log; raises ``ValueError(offset, message)`` when even the header is unusable."""
    import numpy as np

    buf = data if data is not None else open(path, "rb").read()
    if len(buf) < HEADER.size or buf[:8] != MAGIC:
        raise ValueError(0, "not a power log (magic SBPOWR1 missing)")
    _, version, n = HEADER.unpack_from(buf)
    if version != VERSION:
        raise ValueError(8, f"power log version {version} is not supported (this reader: {VERSION})")
    end = HEADER.size + n
    if len(buf) < end + CRC.size:
        raise ValueError(HEADER.size, "header cut short")
    text = buf[HEADER.size:end]
    if CRC.unpack_from(buf, end)[0] != zlib.crc32(text):
        raise ValueError(HEADER.size, "header checksum mismatch")
    meta = json.loads(text)
    rails = [r["name"] for r in meta["rails"]]
    out = LogContent(meta, None, None, {})
    starts, durs, cols = [], [], [[] for _ in rails]
    pos = end + CRC.size
    while pos < len(buf):
        if pos + RECORD.size > len(buf):
            out.truncated_at = pos
            break
        kind, length, crc = RECORD.unpack_from(buf, pos)
        body = pos + RECORD.size
        if body + length > len(buf):
            out.truncated_at = pos
            break
        payload = buf[body:body + length]
        if zlib.crc32(payload) != crc:
            out.problems.append((pos, f"record checksum mismatch ({length} bytes)"))
        elif kind == SAMPLES_RECORD:
            first, count, n_rails, missed = SAMPLES.unpack_from(payload)
            if n_rails != len(rails) or len(payload) != SAMPLES.size + count * (12 + 4 * n_rails):
                out.problems.append((pos, f"sample record has {n_rails} rails / {len(payload)} bytes, "
                                          f"expected {len(rails)} rails"))
            else:
                o = SAMPLES.size
                starts.append(np.frombuffer(payload, "<i8", count, o))
                durs.append(np.frombuffer(payload, "<u4", count, o + 8 * count))
                o += 12 * count
                for i in range(n_rails):
                    cols[i].append(np.frombuffer(payload, "<f4", count, o + 4 * count * i))
                out.missed_ticks += missed
        elif kind == TRAILER_RECORD:
            out.trailer = json.loads(payload)
        else:
            out.problems.append((pos, f"unknown record type {kind}"))
        pos = body + length

    def cat(parts: list[Any], dtype: str) -> Any:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    out.t_start = cat(starts, "int64")
    out.t_end = out.t_start + cat(durs, "int64")
    out.power = {name: cat(c, "float64") for name, c in zip(rails, cols)}
    return out
