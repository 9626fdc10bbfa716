"""The sender: per-thread streams drained to the marker log and to gatord, by a background thread.

Draining is lock-free against the producers: the sender copies the first ``n`` bytes of a
thread's buffer and deletes them (``del buf[:n]``); both are single operations under the GIL and a
producer only ever appends whole messages, so nothing is lost or torn.

A thread's stream ends when the thread's state is really cleared (:class:`ThreadEnd`, kept in its
``threading.local``), not when ``Thread.is_alive()`` turns false: Python 3.11 and 3.12 mark a
joined thread stopped while it still runs when Ctrl-C interrupts ``Thread.join()``.
"""

import threading
import time
from typing import Any, Callable, Dict, List, Optional

from annotate.config import DEFAULT_FLUSH_INTERVAL, Settings, warn
from annotate.gatord import STARTED, Gatord, Link
from annotate.mirror import CLOSED, MESSAGES, OPENED, MarkerLog, record

_RETRY_SENDING = 0.02  # s between rounds while gatord has not taken everything


class Stream:
    """One thread's message stream: its buffer, handshake, marker-log state and gatord link."""

    __slots__ = ("tid", "buf", "hello", "thread", "opened", "inflight", "running", "link")

    def __init__(self, tid: int, hello: bytes, retry: float) -> None:
        self.tid = tid
        self.buf = bytearray()
        self.hello = hello
        self.thread = threading.current_thread()
        self.opened = False  # the marker log has its "stream opened" record
        self.inflight = b""
        self.running = threading.Lock()  # released by the thread's ThreadEnd
        self.running.acquire()
        self.link = Link(hello, retry)

    @property
    def ended(self) -> bool:
        return not self.running.locked()


class ThreadEnd:
    """Lives in one thread's ``threading.local``: freed (and the stream marked ended) when the thread's state is cleared."""

    __slots__ = ("stream",)

    def __init__(self, stream: Stream) -> None:
        self.stream = stream

    def __del__(self) -> None:
        try:
            self.stream.running.release()
        except Exception:  # already released (a second client configuration): nothing to do
            pass


class Sender:
    """Streams, marker log and gatord of one configuration in one process; ``changed()`` is called when
    what the client should accept changes (gatord found or lost, the marker log failing)."""

    def __init__(self, settings: Settings, definitions: Callable[[], bytes], changed: Callable[[], None]) -> None:
        self.settings = settings
        self.definitions = definitions
        self.changed = changed
        self.log: Optional[MarkerLog] = None
        if settings.file is not None:
            try:
                self.log = MarkerLog(settings.file, settings.protocol)
            except OSError as exc:
                warn(f"cannot write the marker log: {exc}")
        self.write_through = self.log is not None and settings.flush_interval == 0
        self._reset()

    def _reset(self) -> None:
        """Everything that belongs to one process: locks, streams, connections, the thread."""
        self.lock = threading.RLock()  # sending and writing (sender, flush, close)
        self.state_lock = threading.RLock()  # the stream registry; never held while sending
        self.wake = threading.Event()
        self.streams: Dict[int, Stream] = {}
        self.retired: List[Stream] = []  # ended, their last bytes not yet written or sent
        self.thread: Optional[threading.Thread] = None
        self.stop = False
        self.warned = self.errored = False
        s = self.settings
        self.gatord = (
            Gatord(s.endpoints, s.retry_interval, s.send_timeout, self.definitions, warn) if s.gatord else None
        )

    def after_fork_in_child(self) -> None:
        """The child gets its own streams, connections and thread; the marker log is shared (O_APPEND)."""
        for st in [*self.streams.values(), *self.retired]:
            if st.link.sock is not None:
                st.link.sock.close()
        if self.gatord is not None:
            self.gatord.close_control()
        self._reset()
        if self.gatord is not None:
            self.gatord.resend = bool(self.definitions())

    @property
    def capturing(self) -> bool:
        return self.gatord is not None and self.gatord.capturing

    @property
    def accepting(self) -> bool:
        """Whether new messages go anywhere (a capture, or a marker log)."""
        return self.capturing or self.log is not None

    def start(self, register: Callable[[], None]) -> None:
        if self.thread is None:
            register()
            self.thread = threading.Thread(target=self._run, name="annotate-sender", daemon=True)
            self.thread.start()

    # --- streams -----------------------------------------------------------------------------

    def attach(self, tid: int, hello: bytes) -> Stream:
        """A new stream for the calling thread (call with ``state_lock`` held)."""
        old = self.streams.get(tid)
        if old is not None:  # an ended thread whose id the kernel gave to this one
            self.retired.append(old)
            if old.opened and self.write_through:
                self.log_write(record(CLOSED, tid))  # before this thread's "opened"
                old.opened = False
        st = self.streams[tid] = Stream(tid, hello, self.settings.retry_interval)
        if self.write_through:
            self.log_write(record(OPENED, tid, hello))
            st.opened = True
        return st

    def snapshot(self) -> List[Stream]:
        with self.state_lock:
            return list(self.streams.values())

    def log_write(self, data: bytes) -> None:
        log = self.log
        if log is None:
            return
        try:
            log.write(data)
        except OSError as exc:
            with self.state_lock:
                if self.log is log:
                    warn(f"marker log {log.path} failed, no longer written: {exc}")
                    self.log = None
                    self.write_through = False
            self.changed()

    # --- rounds --------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self.lock:
                if self.stop:
                    return
                self.guarded(self.service, time.monotonic())
                with self.state_lock:
                    links = [st.link for st in [*self.streams.values(), *self.retired]]
                waiting = any(link.sent < len(link.pending) for link in links)
            interval = self.settings.flush_interval or DEFAULT_FLUSH_INTERVAL
            self.wake.wait(min(interval, _RETRY_SENDING) if waiting else interval)
            self.wake.clear()

    def guarded(self, fn: Callable[..., None], *args: Any) -> None:
        """Run a sender step; an unexpected error is reported once and never reaches a caller."""
        try:
            fn(*args)
        except Exception as exc:  # the channel must never fail the application
            if not self.errored:
                self.errored = True
                warn(f"internal error, annotations may be incomplete: {exc!r}")

    def service(self, deadline: float) -> None:
        """One round: follow gatord's state, then drain every stream; sends to gatord wait until ``deadline``."""
        if self.gatord is not None:
            event = self.gatord.poll()
            if event == STARTED:
                self._capture_started()
            elif event is not None:
                self._lost(event)
        # ended threads first, so that a "closed" record precedes the "opened" of a reused tid
        with self.state_lock:
            retired, self.retired = self.retired, []
            streams = list(self.streams.values())
        for st in retired:
            self.finish(st, deadline)
        for st in streams:
            if st.ended:
                self.finish(st, deadline)
            else:
                self.drain(st, deadline)

    def drain(self, st: Stream, deadline: float, to_gatord: bool = True) -> None:
        buf = st.buf
        n = len(buf)
        if n or st.inflight:
            # ``inflight``: what a drain took and had not delivered when a signal handler (same
            # thread, so the lock lets it in) drained again before the process dies
            data = st.inflight + buf[:n] if st.inflight else bytes(buf[:n])
            st.inflight = data
            del buf[:n]
            if self.log is not None and not self.write_through:
                out = record(MESSAGES, st.tid, data)
                if not st.opened:
                    out = record(OPENED, st.tid, st.hello) + out
                    st.opened = True
                self.log_write(out)
        else:
            data = b""
        g = self.gatord
        if to_gatord and g is not None and g.capturing and (data or st.link.sent < len(st.link.pending)):
            g.send(st.link, data, deadline)
        st.inflight = b""

    def finish(self, st: Stream, deadline: float, final: bool = False) -> None:
        """A thread has ended (or the client closes): last data, close its stream; its connection
        once gatord took everything (at once when ``final``)."""
        self.drain(st, deadline)
        if st.opened and self.log is not None:
            self.log_write(record(CLOSED, st.tid))
            st.opened = False
        with self.state_lock:
            if self.streams.get(st.tid) is st:
                del self.streams[st.tid]
            if not final and self.capturing and st.link.sent < len(st.link.pending):
                self.retired.append(st)  # a stalled gatord: try again next round
                return
        st.link.close()

    def _capture_started(self) -> None:
        """gatord wrote 0x00: a capture starts. Earlier messages are not sent (as the C library)."""
        with self.state_lock:
            streams = [*self.streams.values(), *self.retired]
        for st in streams:
            self.drain(st, 0.0, to_gatord=False)
        assert self.gatord is not None  # (only gatord reports a capture start)
        self.gatord.started([st.link for st in streams], bool(self.definitions()))
        self.changed()

    def _lost(self, reason: str) -> None:
        """Stop feeding gatord until the next capture start; the marker log goes on."""
        if self.log is None and not self.warned:
            self.warned = True
            warn(reason + "; annotations are not recorded (set STREAMLINE_ANNOTATE_FILE=PATH to keep them in a file)")
        with self.state_lock:
            streams = [*self.streams.values(), *self.retired]
        for st in streams:
            st.link.close()
        self.changed()

    def _settle(self, deadline: float) -> None:
        """Until ``deadline``: retry the connections still owed bytes (refused, busy or stalled) as their backoff allows."""
        g = self.gatord
        while g is not None and g.capturing:
            with self.state_lock:
                links = [st.link for st in [*self.streams.values(), *self.retired]]
            owed = [link for link in links if link.sent < len(link.pending)]
            now = time.monotonic()
            if not owed or now >= deadline:
                return
            time.sleep(max(0.0, min(min(link.backoff.at for link in owed), deadline) - now))
            for link in owed:
                g.send(link, b"", deadline)

    def flush(self) -> None:
        with self.lock:
            deadline = time.monotonic() + self.settings.send_timeout
            self.guarded(self.service, deadline)
            self.guarded(self._settle, deadline)

    def close(self) -> None:
        """Last round, every stream closed (marker log "closed" records), connections and log closed."""
        with self.lock:
            self.stop = True
            self.wake.set()
            deadline = time.monotonic() + self.settings.send_timeout
            self.guarded(self.service, deadline)
            self.guarded(self._settle, deadline)
            with self.state_lock:
                streams = [*self.retired, *self.streams.values()]
                self.retired = []
            for st in streams:
                self.guarded(self.finish, st, deadline, True)
            if self.gatord is not None:
                self.gatord.close_control()
            if self.log is not None:
                self.log.close()
                self.log = None
            thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.settings.send_timeout + 1)

    def wait_for_threads(self) -> None:
        """At exit: wait for the non-daemon threads that still run although Python marked them stopped."""
        main = threading.main_thread()
        for st in self.snapshot():
            if st.thread is not main and not st.thread.daemon:
                st.running.acquire()
                st.running.release()
