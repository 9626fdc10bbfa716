"""The gatord connection: the control socket's state machine and one data connection per stream.

States (spec section 3): ``CAPTURING`` (messages are sent; also the optimistic state at start),
``WAITING`` (control connected, no capture: wait for the capture-start byte 0x00) and ``ABSENT``
(no control connection: retry with backoff). A busy gatord (connect refused with EAGAIN or timing
out: its backlog is full) changes no state, it is retried with backoff.

Each stream's :class:`Link` keeps what gatord has not taken yet: a data connect that fails (EAGAIN,
ECONNREFUSED, ...) is retried with backoff; a send that times out (a stalled gatord) keeps the
connection and the unsent bytes for the next round; a broken connection is replaced by a new one
that starts at the first message not completely sent. A new connection after a failure first
carries every definition again, as after a capture restart. Unsent bytes are bounded per stream.
"""

import errno
import socket
import time
from typing import Callable, List, Optional

from annotate.config import MAX_BUFFER
from annotate.transport import Endpoints, poll_control

CAPTURING, WAITING, ABSENT = "capturing", "waiting", "absent"
STARTED = "started"  # what poll() returns when a capture starts; a str otherwise is why gatord was lost

_BUSY = (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR, errno.ETIMEDOUT)
_FIRST_RETRY = 0.02  # s, doubled after each failure up to the retry interval
_TRIM_AT = 1 << 20  # bytes sent but kept while stalled: forget whole messages beyond this
_GIVE_UP_AFTER = 3  # connections broken in a row during the same message: it is not sent again


def _busy(exc: OSError) -> bool:
    return isinstance(exc, socket.timeout) or exc.errno in _BUSY


def message_start(data: bytearray, offset: int) -> int:
    """Where the message holding byte ``offset`` starts (``data`` starts with a message; header: u8 code, u32 length)."""
    pos = 0
    while pos < len(data):
        end = pos + 5 + int.from_bytes(data[pos + 1 : pos + 5], "little")
        if end > offset:
            return pos
        pos = end
    return len(data)


class Backoff:
    """When to try again: at once at first, then after doubling delays up to ``most`` s."""

    __slots__ = ("most", "delay", "at")

    def __init__(self, most: float) -> None:
        self.most = max(most, 0.0)
        self.delay = 0.0
        self.at = 0.0

    def due(self, now: float) -> bool:
        return now >= self.at

    def failed(self, now: float) -> None:
        self.delay = min(self.most, max(_FIRST_RETRY, self.delay * 2))
        self.at = now + self.delay

    def succeeded(self) -> None:
        self.delay = self.at = 0.0


class Link:
    """One stream's data connection and the bytes gatord has not taken yet (``pending[sent:]``)."""

    __slots__ = ("hello", "sock", "pending", "sent", "backoff", "dropped", "breaks")

    def __init__(self, hello: bytes, retry: float) -> None:
        self.hello = hello
        self.sock: Optional[socket.socket] = None
        self.pending = bytearray()  # starts with a whole message
        self.sent = 0
        self.backoff = Backoff(retry)
        self.dropped = False
        self.breaks = 0  # connections broken in a row without everything sent

    def close(self) -> None:
        """Close the connection; the unsent bytes are forgotten (gatord went away, or the stream ended)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        del self.pending[:]
        self.sent = 0


class Gatord:
    """The control connection's state and the data links; every method is called by the sender only."""

    def __init__(
        self,
        endpoints: Endpoints,
        retry: float,
        send_timeout: float,
        definitions: Callable[[], bytes],
        warn: Callable[[str], None],
    ) -> None:
        self.endpoints = endpoints
        self.retry = retry
        self.send_timeout = send_timeout
        self.definitions = definitions
        self.warn = warn
        self.state = CAPTURING  # assume a capture is running; connect at once
        self.ctrl: Optional[socket.socket] = None
        self.ctrl_backoff = Backoff(retry)
        self.resend = False  # the next data connection carries every definition first

    @property
    def capturing(self) -> bool:
        return self.state == CAPTURING

    def poll(self) -> Optional[str]:
        """Follow gatord: :data:`STARTED` when a capture starts, a reason when gatord is lost, else None."""
        if self.ctrl is None:
            now = time.monotonic()
            if not self.ctrl_backoff.due(now):
                return None
            try:
                self.ctrl = self.endpoints.connect_control()
            except OSError as exc:
                self.ctrl_backoff.failed(now)
                if _busy(exc) or self.state == ABSENT:
                    return None
                return self._lose(f"no gatord at {self.endpoints.describe()} ({exc.strerror or exc})")
            self.ctrl_backoff.succeeded()
            if self.state == ABSENT:
                self.state = WAITING
        got = poll_control(self.ctrl)
        if got is None:
            return None
        if got == b"":
            self.close_control()
            return self._lose("gatord closed the control connection")
        if self.state != CAPTURING:  # while capturing a 0x00 changes nothing (Arm's library does not even read it)
            self.state = CAPTURING
            return STARTED
        return None

    def _lose(self, reason: str) -> str:
        self.state = ABSENT
        return reason

    def started(self, links: List[Link], resend: bool) -> None:
        """A capture starts: fresh connections, the definitions first."""
        for link in links:
            link.close()
            link.backoff.succeeded()
        self.resend = resend

    def send(self, link: Link, data: bytes, deadline: float) -> None:
        """Queue ``data`` (whole messages) and send what gatord takes before ``deadline`` (monotonic s)."""
        if len(link.pending) - link.sent + len(data) > MAX_BUFFER:
            if not link.dropped:
                link.dropped = True
                self.warn("gatord is not taking annotations; dropping them for gatord (the marker log has them)")
        elif data:
            link.pending += data
        if link.sent < len(link.pending):
            self._push(link, deadline)

    def _push(self, link: Link, deadline: float) -> None:
        now = time.monotonic()
        if link.sock is None:
            if not link.backoff.due(now):
                return
            try:
                link.sock = self.endpoints.connect_data(link.hello, self.send_timeout)
            except OSError:  # refused, busy, timed out: try again later
                link.backoff.failed(now)
                self.resend = True
                return
            if self.resend:
                self.resend = False
                link.pending[:0] = self.definitions()
        try:
            while link.sent < len(link.pending):
                link.sock.settimeout(max(deadline - time.monotonic(), 0.0))
                with memoryview(link.pending) as view:
                    link.sent += link.sock.send(view[link.sent :])
        except OSError as exc:
            if _busy(exc):  # stalled: keep the connection and the rest
                if link.sent >= _TRIM_AT:
                    cut = message_start(link.pending, link.sent)
                    del link.pending[:cut]
                    link.sent -= cut
                return
            link.sock.close()
            link.sock = None
            cut = message_start(link.pending, link.sent)  # resend the message cut short...
            link.breaks += 1
            if link.breaks >= _GIVE_UP_AFTER and cut < len(link.pending):  # ...unless gatord keeps refusing it
                end = cut + 5 + int.from_bytes(link.pending[cut + 1 : cut + 5], "little")
                self.warn(
                    f"gatord closed the connection {link.breaks} times during one {end - cut} byte message; "
                    "it is not sent to gatord (the marker log has it)"
                )
                cut, link.breaks = min(end, len(link.pending)), 0
            del link.pending[:cut]
            link.sent = 0
            link.backoff.failed(now)
            self.resend = True
            return
        del link.pending[:]
        link.sent = 0
        link.backoff.succeeded()
        link.dropped = False
        link.breaks = 0

    def close_control(self) -> None:
        if self.ctrl is not None:
            self.ctrl.close()
            self.ctrl = None
