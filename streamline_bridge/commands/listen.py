"""Stand in for gatord's annotation side: accept annotation clients and write what they send to a marker log.

Binds the sockets gatord uses (abstract Unix sockets ``@streamline-annotate-parent`` and
``@streamline-annotate``, or TCP 127.0.0.1:8082/8083 with ``--tcp``), writes the capture-start
byte 0x00 to every control connection, and accepts any client: ``annotate`` or an application
built with Arm's annotation library. Each data connection becomes one stream of the marker log
(docs/marker-log.md): its handshake, its complete messages (flushed every ``--flush-ms``), a close
record when it ends. A connection that sends bad bytes gets one warning line naming it and the
byte offset and is dropped; the others go on. Runs until SIGINT/SIGTERM, then writes what is
left, prints a one-line summary and exits 0.

Defences: only the listener's own user and root may connect (``SO_PEERCRED``, or the socket's
owner in ``/proc/net/tcp`` with ``--tcp``) unless ``--allow-any-user``; an unfinished message may
hold at most ``--max-message`` MiB per connection and ``--max-memory`` MiB over all of them (the
connection that would pass either is dropped with a warning naming it); bursts of connections are
drained from a large accept backlog; out of file descriptors, new connections are refused (one
warning) instead of the listener failing.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import gc
import logging
import os
import selectors
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from annotate.mirror import CLOSED, MESSAGES, OPENED, MarkerLog, record
from annotate.transport import DEFAULT_PREFIX, DEFAULT_TCP_PORTS, Endpoints
from streamline_bridge.peers import peer_of

log = logging.getLogger("streamline_bridge")

HELP = "accept annotation clients like gatord does and write their messages to a marker log"

_READ_SIZE = 1 << 16
_FLUSH_BYTES = 1 << 20  # write early when this much is waiting
_BACKLOG = 4096  # the kernel caps it at net.core.somaxconn
_ACCEPT_BURST = 256  # connections taken per wake-up of a listening socket
_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_MIB = 1 << 20


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE",
        help="marker log to write (an existing marker log is appended to)",
    )
    parser.add_argument("--tcp", action="store_true", help="listen on TCP 127.0.0.1 instead of abstract Unix sockets")
    parser.add_argument(
        "--tcp-ports",
        type=_ports,
        default=DEFAULT_TCP_PORTS,
        metavar="CONTROL,DATA",
        help="TCP ports with --tcp (default: gatord's 8082,8083)",
    )
    parser.add_argument(
        "--socket-prefix",
        metavar="NAME",
        help="abstract socket names @NAME-parent and @NAME (default: $STREAMLINE_ANNOTATE_SOCKET_PREFIX "
        "or streamline-annotate, gatord's names)",
    )
    parser.add_argument(
        "--flush-ms",
        type=float,
        metavar="MS",
        help="write buffered records at least this often (default: $STREAMLINE_ANNOTATE_FLUSH_MS or 100)",
    )
    parser.add_argument(
        "--allow-any-user",
        action="store_true",
        help="accept clients of any local user (default: only this user and root may write into the log)",
    )
    parser.add_argument(
        "--max-message",
        type=_mib,
        default="16",
        metavar="MIB",
        help="drop a connection whose unfinished message passes this size (default 16 MiB)",
    )
    parser.add_argument(
        "--max-memory",
        type=_mib,
        default="256",
        metavar="MIB",
        help="at most this much held in unfinished messages over all connections (default 256 MiB)",
    )


def _mib(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        value = 0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"wants a positive number of MiB, got {text!r}")
    return int(value * _MIB)


def _ports(text: str) -> tuple[int, int]:
    try:
        control, data = (int(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"wants CONTROL,DATA (two port numbers), got {text!r}") from None
    return control, data


def run(args: argparse.Namespace) -> int:
    from streamline_bridge.errors import InputError

    prefix = args.socket_prefix or os.environ.get("STREAMLINE_ANNOTATE_SOCKET_PREFIX") or DEFAULT_PREFIX
    try:
        flush_ms = (
            args.flush_ms if args.flush_ms is not None else float(os.environ.get("STREAMLINE_ANNOTATE_FLUSH_MS") or 100)
        )
    except ValueError:
        raise InputError("STREAMLINE_ANNOTATE_FLUSH_MS", "not a number of milliseconds") from None
    endpoints = Endpoints(prefix, args.tcp, args.tcp_ports)
    listener = Listener(
        endpoints,
        max(flush_ms, 0.0) / 1000,
        allow_any_user=args.allow_any_user,
        max_message=args.max_message,
        max_memory=args.max_memory,
    )
    log = MarkerLog(args.output, protocol=5, writer="listen")
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: listener.stop())
    print(f"listening on {endpoints.describe()}, writing {args.output} (SIGINT/SIGTERM to stop)", flush=True)
    try:
        listener.serve(log.write)
    finally:
        log.close()
    s = listener.stats
    print(
        f"listen: {s['messages']} messages from {s['streams']} connection(s)"
        + (f", {s['dropped']} dropped for bad bytes" if s["dropped"] else "")
        + (f", {s['too_big']} dropped for size" if s["too_big"] else "")
        + (f", {s['refused']} refused" if s["refused"] else "")
        + f", written to {args.output}",
        flush=True,
    )
    return 0


@dataclass
class _Data:
    """One accepted data connection and the stream it becomes."""

    id: int
    sock: socket.socket
    peer: str
    decoder: Any  # annotation_stream.StreamDecoder (imported when a listener starts, not at CLI start-up)
    opened: bool = False


@dataclass
class Listener:
    """The selector loop: accepts control and data connections and turns data into marker-log records."""

    endpoints: Endpoints
    flush_interval: float
    allow_any_user: bool = False
    max_message: int = 16 * _MIB
    max_memory: int = 256 * _MIB
    stats: dict[str, int] = field(
        default_factory=lambda: {"messages": 0, "streams": 0, "dropped": 0, "too_big": 0, "refused": 0}
    )

    def __post_init__(self) -> None:
        from streamline_bridge.ingest import annotation_stream

        self.codec = annotation_stream
        self._stopping = False
        self._sel = selectors.DefaultSelector()
        self._pending = bytearray()
        self._next_id = 1
        self._held = 0  # bytes of unfinished messages over all connections
        self._warned_fds = False
        self._spare_fd = _spare_fd()  # closed to accept (and refuse) a connection when out of descriptors
        self._uid = os.geteuid()
        self._servers: list[socket.socket] = []  # [control, data]
        self._bind(self.endpoints.control)
        self._bind(self.endpoints.data)

    def stop(self) -> None:
        """Ask :meth:`serve` to finish (safe from a signal handler)."""
        self._stopping = True

    def _bind(self, address: bytes | tuple[str, int]) -> None:
        family = socket.AF_INET if self.endpoints.tcp else socket.AF_UNIX
        s = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            if self.endpoints.tcp:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(address)
            s.listen(_BACKLOG)
        except OSError as exc:
            s.close()
            for other in self._servers:
                self._sel.unregister(other)
                other.close()
            self._sel.close()
            raise OSError(
                exc.errno,
                f"cannot listen on {self.endpoints.describe()}: {exc.strerror} "
                "(is gatord or another listener running?)",
            ) from None
        s.setblocking(False)
        self._sel.register(s, selectors.EVENT_READ, self._accept_burst)
        self._servers.append(s)

    def serve(self, write: Callable[[bytes], None]) -> None:
        """Run until :meth:`stop`; ``write(bytes)`` appends whole records to the marker log."""
        self._write = write
        next_flush = time.monotonic() + self.flush_interval
        try:
            while not self._stopping:
                timeout = max(0.0, min(next_flush - time.monotonic(), 0.1)) if self.flush_interval else 0.1
                for key, _ in self._sel.select(timeout):
                    key.data(key.fileobj)
                if time.monotonic() >= next_flush or len(self._pending) >= _FLUSH_BYTES or not self.flush_interval:
                    self._flush()
                    next_flush = time.monotonic() + self.flush_interval
            self._drain()
        finally:
            for key in list(self._sel.get_map().values()):
                cast(socket.socket, key.fileobj).close()  # only sockets are registered
            self._sel.close()
            self._flush()
            if self._spare_fd >= 0:
                os.close(self._spare_fd)

    def _flush(self) -> None:
        if self._pending:
            self._write(bytes(self._pending))
            self._pending.clear()

    def _drain(self) -> None:
        """At stop: take connections still waiting in the backlog and every byte already received."""
        for server in self._servers:
            while self._accept(server) is not None:
                pass
        for key in list(self._sel.get_map().values()):
            if isinstance(key.data, _Reader):
                sock = cast(socket.socket, key.fileobj)
                while key.data(sock):
                    pass
                if sock.fileno() >= 0:
                    key.data.end("listener stopped")

    def _accept_burst(self, server: socket.socket) -> None:
        """A listening socket is readable: take what its backlog holds (up to a burst's worth)."""
        for _ in range(_ACCEPT_BURST):
            if self._accept(server) is None:
                return

    def _accept(self, server: socket.socket) -> socket.socket | None:
        """Accept one connection (None: none waiting). Strangers and connections beyond the descriptor limit are refused."""
        try:
            sock, _ = server.accept()
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            if exc.errno not in _OUT_OF_FDS:
                raise
            return self._refuse_for_fds(server)
        peer, uid = peer_of(sock, self.endpoints.tcp)
        if not (self.allow_any_user or uid in (self._uid, 0)):
            who = "an unknown user" if uid is None else f"user {uid}"
            self._warning(
                f"refused a connection from {peer} ({who}; only this user and root may write here, "
                "see --allow-any-user)"
            )
            self.stats["refused"] += 1
            sock.close()
            return sock
        sock.setblocking(False)
        if server is self._servers[0]:
            try:
                sock.send(b"\x00")  # "a capture has started": the library begins sending
            except OSError:
                sock.close()
                return sock  # (accepted, gone already: the caller may accept the next one)
            self._sel.register(sock, selectors.EVENT_READ, _ControlReader(self))
        else:
            ident = self._next_id
            self._next_id += 1
            conn = _Data(ident, sock, peer, self.codec.StreamDecoder(f"connection {ident}"))
            self.stats["streams"] += 1
            self._sel.register(sock, selectors.EVENT_READ, _Reader(self, conn))
        return sock

    def _refuse_for_fds(self, server: socket.socket) -> socket.socket | None:
        """Out of descriptors: free the spare one, accept the connection and close it at once."""
        if not self._warned_fds:
            self._warned_fds = True
            self._warning("out of file descriptors (ulimit -n); refusing new connections until some close")
        if self._spare_fd >= 0:
            os.close(self._spare_fd)
        try:
            sock, _ = server.accept()
        except OSError:
            self._spare_fd = _spare_fd()
            return None
        sock.close()
        self.stats["refused"] += 1
        self._spare_fd = _spare_fd()
        return sock

    def _warning(self, text: str) -> None:
        log.warning(f"streamline-bridge listen: warning: {text}")

    def _record(self, kind: int, stream: int, payload: bytes = b"") -> None:
        self._pending += record(kind, stream, payload)

    def _close(self, sock: socket.socket) -> None:
        self._sel.unregister(sock)
        sock.close()


class _ControlReader:
    """A control connection: the client never writes; EOF closes it."""

    def __init__(self, listener: Listener):
        self.listener = listener

    def __call__(self, sock: socket.socket) -> bool:
        try:
            if sock.recv(64):
                return True
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            pass
        self.listener._close(sock)
        return False


class _Reader:
    """A data connection: bytes in, marker-log records out."""

    def __init__(self, listener: Listener, conn: _Data):
        self.listener, self.conn = listener, conn

    def __call__(self, sock: socket.socket) -> bool:
        """Read once; True when bytes came (there may be more)."""
        try:
            chunk = sock.recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            self.end(f"connection error: {exc.strerror or exc}")
            return False
        if not chunk:
            self.end(None)
            return False
        lst, decoder = self.listener, self.conn.decoder
        held = decoder.pending
        if held + len(chunk) > lst.max_message or lst._held + len(chunk) > lst.max_memory:
            self._too_big(held + len(chunk))
            return False
        try:
            decoded = decoder.feed(chunk)
        except lst.codec.DecodeError as exc:
            self._take(exc.partial)
            self._drop(exc)
            return False
        finally:
            lst._held += decoder.pending - held
        self._take(decoded)
        return True

    def _too_big(self, size: int) -> None:
        lst = self.listener
        limit = (
            f"message over {_mib_text(lst.max_message)}"
            if size > lst.max_message
            else f"unfinished messages over {_mib_text(lst.max_memory)} in all connections"
        )
        log.warning(
            f"streamline-bridge listen: warning: connection {self.conn.id} ({self.conn.peer}) at byte "
            f"{self.conn.decoder.offset}: {limit}; message and connection dropped"
        )
        lst.stats["too_big"] += 1
        self._finish()

    def _take(self, decoded: Any) -> None:
        c, lst = self.conn, self.listener
        if not c.opened and c.decoder.handshake is not None:
            lst._record(OPENED, c.id, c.decoder.handshake.raw)
            c.opened = True
        if decoded is not None and len(decoded):
            lst._record(MESSAGES, c.id, decoded.raw)
            lst.stats["messages"] += len(decoded)

    def _warn(self, exc: Any, then: str) -> None:
        log.warning(
            f"streamline-bridge listen: warning: connection {self.conn.id} ({self.conn.peer}) at byte "
            f"{exc.offset}: {exc.message}; {then}"
        )

    def _drop(self, exc: Any) -> None:
        self._warn(exc, "connection dropped")
        self.listener.stats["dropped"] += 1
        self._finish()

    def end(self, reason: str | None) -> None:
        """The connection ended (EOF, error or listener stop): report an incomplete tail, close the stream."""
        try:
            self.conn.decoder.finish()
        except self.listener.codec.DecodeError as exc:
            self._warn(exc, f"{reason or 'connection closed'}, the incomplete message is not written")
        self._finish()

    def _finish(self) -> None:
        lst, held = self.listener, self.conn.decoder.pending
        if self.conn.opened:
            lst._record(CLOSED, self.conn.id)
        lst._close(self.conn.sock)
        self.conn.decoder = lst.codec.StreamDecoder(None)  # what it held is freed now
        lst._held -= held
        if held >= _MIB:
            _return_freed_memory_promptly()


def _mib_text(size: int) -> str:
    return f"{size / _MIB:g} MiB"


def _spare_fd() -> int:
    """A descriptor held in reserve (-1 when none is free: the next refusal waits for one)."""
    try:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return -1


def _return_freed_memory_promptly() -> None:
    """Large unfinished messages are many 64 KiB chunks: free them now (a decoding error's traceback holds
    them in a reference cycle) and have glibc hand the memory back to the system."""
    gc.collect()
    try:
        libc = ctypes.CDLL(None)
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
