"""Test support for the annotate client (no tests here): a stream parser, a marker-log walker and a fake gatord.

Deliberately independent of ``annotate`` (so an encoder bug cannot hide in a shared decoder) and
of ``streamline_bridge`` (so these tests do not depend on the reader being finished).
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

TIMED_CODES = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x09, 0x0A}


def sleb(data: bytes, pos: int) -> tuple[int, int]:
    """Decode one signed LEB128 at ``pos``: (value, next position)."""
    result = shift = 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            if b & 0x40:
                result -= 1 << shift
            return result, pos


@dataclass
class Stream:
    """One data connection's bytes, split: handshake fields and (code, body) messages."""

    magic: bytes
    tid: int
    pid: int
    flag: int
    messages: list[tuple[int, bytes]] = field(default_factory=list)
    rest: bytes = b""  # an incomplete trailing message, if any

    def times(self) -> list[int]:
        return [sleb(body, 0)[0] for code, body in self.messages if code in TIMED_CODES]


def split_messages(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    out = []
    pos = 0
    while pos + 5 <= len(data):
        code, n = struct.unpack_from("<BI", data, pos)
        if pos + 5 + n > len(data):
            break
        out.append((code, data[pos + 5 : pos + 5 + n]))
        pos += 5 + n
    return out, data[pos:]


def parse_stream(data: bytes) -> Stream:
    assert data[:9] == b"ANNOTATE " and data[10:11] == b"\n", data[:20]
    tid, pid, flag = struct.unpack_from("<IIB", data, 11)
    messages, rest = split_messages(data[20:])
    return Stream(data[:11], tid, pid, flag, messages, rest)


@dataclass
class MarkerLog:
    meta: dict
    records: list[tuple[int, int, bytes]]  # (type, stream id, payload)
    end: int  # offset where the walk stopped
    size: int

    def streams(self) -> dict[tuple[int, int], Stream]:
        """Per (pid, tid) the concatenated stream (handshake + messages), open records checked."""
        open_: dict[int, bytearray] = {}
        done: dict[tuple[int, int], Stream] = {}

        def finish(sid: int) -> None:
            s = parse_stream(bytes(open_.pop(sid)))
            assert (s.pid, s.tid) not in done
            done[(s.pid, s.tid)] = s

        for kind, sid, payload in self.records:
            if kind == 1:
                assert sid not in open_, f"stream {sid} opened twice"
                assert len(payload) == 20
                open_[sid] = bytearray(payload)
            elif kind == 2:
                open_[sid] += payload
            elif kind == 3:
                assert payload == b""
                finish(sid)
            else:
                raise AssertionError(f"record type {kind}")
        for sid in list(open_):
            finish(sid)
        return done


def walk_marker_log(path: Path) -> MarkerLog:
    """Read a marker log (docs/marker-log.md); stops at a record cut short."""
    data = Path(path).read_bytes()
    assert data[:8] == b"SBMARK1\n"
    version, n = struct.unpack_from("<II", data, 8)
    assert version == 1
    meta = json.loads(data[16 : 16 + n])
    pos = 16 + n
    records = []
    while pos + 9 <= len(data):
        kind, sid, length = struct.unpack_from("<BII", data, pos)
        if pos + 9 + length > len(data):
            break
        payload = data[pos + 9 : pos + 9 + length]
        if kind == 2:  # a messages record holds complete messages only
            _, rest = split_messages(payload)
            assert rest == b"", f"partial message in record at {pos}"
        records.append((kind, sid, payload))
        pos += 9 + length
    return MarkerLog(meta, records, pos, len(data))


def unique_prefix() -> str:
    return f"sbtest-{os.getpid()}-{uuid.uuid4().hex[:12]}"


class FakeGatord:
    """Listens on ``\\0<prefix>-parent`` (control) and ``\\0<prefix>`` (data) like gatord.

    Each accepted data connection is read to EOF into ``conns`` (bytearrays, in accept order).
    ``start_capture()`` writes 0x00 to every open control connection.
    """

    def __init__(
        self,
        prefix: str = "",
        tcp: bool = False,
        stalled: bool = False,
        greet: bool = False,
        backlog: int = 64,
        accepting: bool = True,
        data: bool = True,
    ) -> None:
        self.prefix = prefix
        self.backlog = backlog
        self.accepting = threading.Event()  # data connections are accepted only once this is set
        if accepting:
            self.accepting.set()
        self.tcp = tcp
        self.greet = greet  # write 0x00 to each control connection at once (as `streamline-bridge listen`)
        self.reading = threading.Event()  # data connections are read only once this is set
        if not stalled:
            self.reading.set()
        self.conns: list[bytearray] = []
        self.controls: list[socket.socket] = []
        self.closed: list[threading.Event] = []
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stopping = False
        if tcp:
            self._ctrl_l = self._listen(("127.0.0.1", 0), self._accept_control)
            self._data_l = self._listen(("127.0.0.1", 0), self._accept_data)
            self.ports = (self._ctrl_l.getsockname()[1], self._data_l.getsockname()[1])
        else:
            self._ctrl_l = self._listen(b"\0" + prefix.encode() + b"-parent", self._accept_control)
            self._data_l = self.open_data() if data else None

    def open_data(self) -> socket.socket:
        """Listen for data connections (``data=False``: not at first, connecting is refused)."""
        self._data_l = self._listen(b"\0" + self.prefix.encode(), self._accept_data)
        return self._data_l

    def _listen(self, address: bytes | tuple[str, int], handler: Callable[[socket.socket], None]) -> socket.socket:
        s = socket.socket(socket.AF_INET if self.tcp else socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(address)
        s.listen(self.backlog)
        self._spawn(self._accept_loop, s, handler)
        return s

    def _spawn(self, fn: Callable, *args: object) -> None:
        t = threading.Thread(target=fn, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def _accept_loop(self, listener: socket.socket, handler: Callable[[socket.socket], None]) -> None:
        if handler == self._accept_data:
            self.accepting.wait()
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                if self._stopping:
                    conn.close()
                    return
                self._socks.append(conn)
            handler(conn)

    def _accept_control(self, conn: socket.socket) -> None:
        with self._lock:
            self.controls.append(conn)
        if self.greet:
            conn.sendall(b"\0")

    def _accept_data(self, conn: socket.socket) -> None:
        buf = bytearray()
        done = threading.Event()
        with self._lock:
            self.conns.append(buf)
            self.closed.append(done)
        self._spawn(self._read_loop, conn, buf, done)

    def _read_loop(self, conn: socket.socket, buf: bytearray, done: threading.Event) -> None:
        self.reading.wait()
        try:
            while True:
                chunk = conn.recv(1 << 16)
                if not chunk:
                    break
                buf += chunk
        except OSError:
            pass
        done.set()

    def start_capture(self) -> None:
        with self._lock:
            for c in self.controls:
                c.sendall(b"\0")

    def streams(self) -> list[Stream]:
        with self._lock:
            return [parse_stream(bytes(b)) for b in self.conns if len(b) >= 20]

    def stop(self) -> None:
        """Close listeners and every connection (gatord going away)."""
        self.reading.set()
        self.accepting.set()
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            socks = self._socks[:]
        for s in (self._ctrl_l, self._data_l):
            if s is None:
                continue
            s.shutdown(socket.SHUT_RDWR)
            s.close()
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        for t in self._threads:
            t.join(5)
