"""The annotation client: per-thread buffers, a background sender, gatord's life cycle, the file mirror.

Hot path (every API call): read the clock, encode the message, append it to the calling thread's
``bytearray``. No lock, no system call, no exception can reach the caller. The sender thread
drains every buffer each flush interval (sooner when one is 3/4 of ``buffer_size``, and
synchronously in :meth:`Client.flush`) to the thread's data connection and to the marker log.

Draining is lock-free against the producers: the sender copies the first ``n`` bytes and deletes
them (``del buf[:n]``); both are single operations under the GIL and a producer only ever appends
whole messages, so nothing is lost or torn.

Life cycle (spec section 3): assume a capture is running and connect at once; on any failure
(control socket absent or closed, data connect or send failing) drop the data connections and the
socket side of the buffers, then wait for gatord's capture-start byte 0x00 on the control socket
(reconnecting it every ``retry_interval`` s), reconnect, and re-send every counter definition,
CAM track and CAM view name (that order, newest first within each) before new messages.
"""

import atexit
import contextlib
import os
import signal
import sys
import threading
import time
import weakref
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from annotate import wire
from annotate.mirror import CLOSED, MESSAGES, OPENED, MarkerLog, record
from annotate.transport import DEFAULT_PREFIX, DEFAULT_TCP_PORTS, Endpoints, poll_control

Text = wire.Text

DEFAULT_FLUSH_INTERVAL = 0.1  # s
DEFAULT_BUFFER_SIZE = 64 * 1024  # the C library's per-thread ring
MAX_BUFFER = 16 * 1024 * 1024  # per thread; beyond this (sender stuck) new messages are dropped

_clock = wire.clock_ns
_RAW = wire.RAW_CLOCK
_text, _text_color, _marker, _marker_color = wire.text, wire.text_color, wire.marker, wire.marker_color
_counter_value = wire.counter_value


def _syscall_gettid() -> int:
    """The calling thread's kernel id on Python < 3.8 (no ``threading.get_native_id``)."""
    import ctypes

    number = {"x86_64": 186, "aarch64": 178, "armv7l": 224, "armv6l": 224, "i686": 224, "i386": 224}
    nr = number.get(os.uname().machine)
    tid = ctypes.CDLL(None, use_errno=True).syscall(nr) if nr is not None else -1
    return tid if tid > 0 else threading.get_ident() & 0xFFFFFFFF


_gettid = getattr(threading, "get_native_id", _syscall_gettid)


def _env_flag(name: str) -> Optional[bool]:
    v = os.environ.get(name)
    return None if v is None or v == "" else v.strip().lower() not in ("0", "no", "false", "off")


def _warn(msg: str) -> None:
    try:
        print(f"annotate: {msg}", file=sys.stderr, flush=True)
    except Exception:  # stderr closed: nothing else to do
        pass


class _Stream:
    """One thread's message stream: its buffer, handshake and (sender-owned) data connection."""

    __slots__ = ("tid", "buf", "hello", "thread", "sock", "opened", "inflight")

    def __init__(self, tid: int, hello: bytes) -> None:
        self.tid = tid
        self.buf = bytearray()
        self.hello = hello
        self.thread = threading.current_thread()
        self.sock = None
        self.opened = False  # the marker log has its "stream opened" record
        self.inflight = b""


class Region(contextlib.ContextDecorator):
    """Text on a channel while a block (or decorated function) runs; ended on exit, exceptions too."""

    def __init__(self, client: "Client", name: Text, channel: int = 0, color: Optional[int] = None) -> None:
        self.client, self.name, self.channel, self.color = client, name, channel, color

    def __enter__(self) -> "Region":
        self.client.text(self.name, self.channel, self.color)
        return self

    def __exit__(self, *exc: object) -> bool:
        self.client.end(self.channel)
        return False


class Client:
    """An annotation client. Options left ``None`` come from the environment at setup time:

    ``file`` (``STREAMLINE_ANNOTATE_FILE``): also write every message to this marker log;
    ``protocol`` (``STREAMLINE_ANNOTATE_PROTOCOL``, 5; 4 for gatord 5.24-7.8);
    ``tcp`` (``STREAMLINE_ANNOTATE_TCP=1``: 127.0.0.1:8082/8083 instead of abstract sockets);
    ``flush_interval`` in s (``STREAMLINE_ANNOTATE_FLUSH_MS``, 100 ms; 0 = the file is written
    through on every call); ``address_prefix`` (``STREAMLINE_ANNOTATE_SOCKET_PREFIX``, the names
    ``\\0<prefix>-parent``/``\\0<prefix>``); ``gatord`` (``STREAMLINE_ANNOTATE_GATORD``, default on:
    off = file only, no sockets).
    """

    def __init__(
        self,
        file: Union[str, os.PathLike, None] = None,
        protocol: Optional[int] = None,
        tcp: Optional[bool] = None,
        flush_interval: Optional[float] = None,
        *,
        address_prefix: Optional[str] = None,
        tcp_ports: Optional[Tuple[int, int]] = None,
        gatord: Optional[bool] = None,
        retry_interval: float = 1.0,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        dont_mangle_keys: bool = False,
        send_timeout: float = 2.0,
    ) -> None:
        self._options: Dict[str, Any] = {}
        self._counters: List[bytes] = []  # definitions, for re-sending after a capture restart
        self._tracks: List[bytes] = []
        self._views: List[bytes] = []
        self._log: Optional[MarkerLog] = None
        self._configured = False
        self._closed = False
        self._on = True  # accept messages (capturing, or a file to write); optimistic until set up
        self._put: Callable[[bytes], None] = self._put_first
        self._reset_process_state()
        self._store_options(
            file=file, protocol=protocol, tcp=tcp, flush_interval=flush_interval, address_prefix=address_prefix,
            tcp_ports=tcp_ports, gatord=gatord, retry_interval=retry_interval, buffer_size=buffer_size,
            dont_mangle_keys=dont_mangle_keys, send_timeout=send_timeout,
        )

    # --- configuration and life cycle ---------------------------------------------------------

    def _store_options(self, **options: Any) -> None:
        unknown = set(options) - set(self._options) if self._options else set()
        if unknown:
            raise TypeError(f"unknown annotate option(s): {', '.join(sorted(unknown))}")
        self._options.update(options)

    def _reset_process_state(self) -> None:
        """Everything that belongs to one process: locks, threads, connections, buffers."""
        self._pid = os.getpid()
        self._lock = threading.RLock()  # sending and writing (sender, flush, close)
        self._state_lock = threading.RLock()  # the stream registry; never held while sending
        self._wake = threading.Event()
        self._reset_streams()

    def _reset_streams(self) -> None:
        self._tls = threading.local()
        self._streams: Dict[int, _Stream] = {}
        self._retired: List[_Stream] = []  # ended threads whose tid a new thread got
        self._sender: Optional[threading.Thread] = None
        self._stop = False
        self._ctrl = None
        self._next_ctrl_try = 0.0
        self._capturing = True
        self._resend = False
        self._warned = self._errored = False

    def setup(self, **options: Any) -> None:
        """(Re)configure with the options of the constructor and connect now (``ANNOTATE_SETUP``)."""
        self.close()
        with self._lock:
            self._store_options(**options)
            self._reset_streams()
            self._closed = False
            self._configure()
            with self._state_lock:
                self._start_sender()

    def _configure(self) -> None:
        o = self._options
        env = os.environ
        file = o["file"] if o["file"] is not None else (env.get("STREAMLINE_ANNOTATE_FILE") or None)
        protocol = o["protocol"] if o["protocol"] is not None else int(env.get("STREAMLINE_ANNOTATE_PROTOCOL") or wire.DEFAULT_PROTOCOL)
        if protocol not in wire.PROTOCOLS:
            raise ValueError(f"annotation protocol {protocol} is not supported (use 4 or 5)")
        tcp = o["tcp"] if o["tcp"] is not None else bool(_env_flag("STREAMLINE_ANNOTATE_TCP"))
        if o["flush_interval"] is not None:
            interval = float(o["flush_interval"])
        else:
            interval = float(env.get("STREAMLINE_ANNOTATE_FLUSH_MS") or DEFAULT_FLUSH_INTERVAL * 1000) / 1000
        gatord = o["gatord"] if o["gatord"] is not None else _env_flag("STREAMLINE_ANNOTATE_GATORD") is not False
        prefix = o["address_prefix"] or env.get("STREAMLINE_ANNOTATE_SOCKET_PREFIX") or DEFAULT_PREFIX
        self.protocol = protocol
        self.endpoints = Endpoints(prefix, tcp, tuple(o["tcp_ports"] or DEFAULT_TCP_PORTS))
        self.flush_interval = max(interval, 0.0)
        self._gatord = gatord
        self._retry = float(o["retry_interval"])
        self._wake_at = int(o["buffer_size"]) * 3 // 4
        self._dont_mangle = bool(o["dont_mangle_keys"])
        self._send_timeout = float(o["send_timeout"])
        self._log = None
        if file is not None:
            try:
                self._log = MarkerLog(file, protocol)
            except OSError as exc:
                _warn(f"cannot write the marker log: {exc}")
        self._write_through = self._log is not None and self.flush_interval == 0
        self._put = self._put_write_through if self._write_through else self._put_buffered
        self._capturing = gatord
        self._on = gatord or self._log is not None
        self._configured = True

    def _start_sender(self) -> None:
        """Start this process's sender thread and exit hooks (first use, setup, or after fork)."""
        if self._sender is not None or self._closed:
            return
        _register(self)
        self._sender = threading.Thread(target=self._run, name="annotate-sender", daemon=True)
        self._sender.start()

    def close(self) -> None:
        """Flush everything, close every stream (marker log "closed" records) and connection.

        Later calls are dropped until :meth:`setup` is called again.
        """
        if self._pid != os.getpid():  # a forked child without fork hooks (Python 3.6): not its state
            return
        with self._lock:
            if self._closed or not self._configured:
                self._closed = True
                return
            self._closed = True
            self._on = False
            self._stop = True
            self._wake.set()
            self._guarded(self._service)
            for st in self._snapshot():
                self._guarded(self._finish, st)
            self._close_ctrl()
            if self._log is not None:
                self._log.close()
                self._log = None
            sender = self._sender
        if sender is not None and sender is not threading.current_thread():
            sender.join(self._send_timeout + 1)

    def flush(self) -> None:
        """Send and write everything buffered so far, now (``gator_annotate_flush()``)."""
        if self._configured and not self._closed and self._pid == os.getpid():
            with self._lock:
                self._guarded(self._service)

    def _after_fork_in_child(self) -> None:
        """The child gets its own buffers, connections and sender; the parent's are not its."""
        for st in [*self._streams.values(), *self._retired]:
            if st.sock is not None:
                st.sock.close()
        if self._ctrl is not None:
            self._ctrl.close()
        self._reset_process_state()
        self._capturing = self._configured and self._gatord
        self._on = self._capturing or self._log is not None or not self._configured
        self._resend = self._capturing and bool(self._counters or self._tracks or self._views)

    @property
    def capturing(self) -> bool:
        """Whether messages currently go to gatord (a capture is believed to be running)."""
        return self._configured and self._capturing and not self._closed

    # --- hot path -----------------------------------------------------------------------------

    def _attach(self) -> Optional[_Stream]:
        """First message of this thread (in this process/configuration): create its stream."""
        with self._state_lock:
            if self._closed or not self._on:
                return None
            self._start_sender()
            tid = _gettid()
            old = self._streams.get(tid)
            if old is not None:  # an ended thread whose id the kernel gave to this one
                self._retired.append(old)
                if old.opened and self._write_through:
                    self._log_write(record(CLOSED, tid))  # before this thread's "opened"
                    old.opened = False
            st = self._streams[tid] = _Stream(tid, wire.handshake(tid, os.getpid(), self.protocol, self._dont_mangle))
            if self._write_through:
                self._log_write(record(OPENED, tid, st.hello))
                st.opened = True
        self._tls.st = st
        self._tls.buf = st.buf
        return st

    def _ensure_configured(self) -> None:
        """Implicit setup on first use, from the environment."""
        with self._lock:
            if self._closed:  # shut down before its first use
                self._on = False
            elif not self._configured:
                try:
                    self._configure()
                except ValueError as exc:  # a bad environment value: run without annotations
                    _warn(str(exc))
                    self._closed = self._configured = True
                    self._on = False

    def _put_first(self, msg: bytes) -> None:
        self._ensure_configured()
        if self._on:
            self._put(msg)

    def _put_buffered(self, msg: bytes) -> None:
        try:
            buf = self._tls.buf
        except AttributeError:
            st = self._attach()
            if st is None:
                return
            buf = st.buf
        if len(buf) < self._wake_at:
            buf += msg
        else:
            self._put_full(buf, msg)

    def _put_full(self, buf: bytearray, msg: bytes) -> None:
        """Append past the hot path's threshold: wake the sender; drop beyond MAX_BUFFER."""
        if len(buf) >= self._wake_at and not self._wake.is_set():
            self._wake.set()
        if len(buf) < MAX_BUFFER:
            buf += msg

    def _put_write_through(self, msg: bytes) -> None:
        st = getattr(self._tls, "st", None) or self._attach()
        if st is not None:
            self._log_write(record(MESSAGES, st.tid, msg))
            if self._capturing:
                self._put_full(st.buf, msg)

    def _log_write(self, data: bytes) -> None:
        log = self._log
        if log is None:
            return
        try:
            log.write(data)
        except OSError as exc:
            with self._state_lock:
                if self._log is log:
                    _warn(f"marker log {log.path} failed, no longer written: {exc}")
                    self._log = None
                    self._write_through = False
                    self._put = self._put_buffered
                    self._on = self._capturing

    # --- the sender ---------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stop:
                    return
                self._guarded(self._service)
            self._wake.wait(self.flush_interval or DEFAULT_FLUSH_INTERVAL)
            self._wake.clear()

    def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        """Run a sender step; an unexpected error is reported once and never reaches a caller."""
        try:
            fn(*args)
        except Exception as exc:  # the channel must never fail the application
            if not self._errored:
                self._errored = True
                _warn(f"internal error, annotations may be incomplete: {exc!r}")

    def _service(self) -> None:
        """One sender step: follow gatord's state, then drain every stream."""
        if self._gatord:
            self._poll_gatord()
        # ended threads first, so that a "closed" record precedes the "opened" of a reused tid
        # (the main thread counts as ended during interpreter exit, while atexit code may still annotate)
        main = threading.main_thread()
        with self._state_lock:
            retired, self._retired = self._retired, []
            streams = list(self._streams.values())
        for st in retired:
            self._finish(st)
        for st in streams:
            if st.thread is not main and not st.thread.is_alive():
                self._finish(st)
            else:
                self._drain(st, self._capturing)

    def _poll_gatord(self) -> None:
        if self._ctrl is None:
            now = time.monotonic()
            if now < self._next_ctrl_try:
                return
            self._next_ctrl_try = now + self._retry
            try:
                self._ctrl = self.endpoints.connect_control()
            except OSError as exc:
                if self._capturing:
                    self._fail(f"no gatord at {self.endpoints.describe()} ({exc.strerror or exc})")
                return
        got = poll_control(self._ctrl)
        if got is None:
            return
        if got == b"":
            self._close_ctrl()
            self._fail("gatord closed the control connection")
            self._poll_gatord()  # reconnect at once when it is already back
        elif not self._capturing:  # while capturing, a 0x00 changes nothing (Arm's library does not even read it)
            self._capture_started()

    def _capture_started(self) -> None:
        """gatord wrote 0x00: a capture starts. Earlier messages are not sent (as the C library)."""
        for st in self._snapshot():
            self._drain(st, False)
            self._close_data(st)
        self._capturing = True
        self._on = True
        self._resend = bool(self._counters or self._tracks or self._views)

    def _fail(self, reason: str) -> None:
        """Stop feeding gatord until the next capture start; the marker log goes on."""
        if self._capturing and self._log is None and not self._warned:
            self._warned = True
            _warn(f"{reason}; annotations are not recorded (set STREAMLINE_ANNOTATE_FILE=PATH to keep them in a file)")
        self._capturing = False
        self._on = self._log is not None
        for st in self._snapshot():
            self._close_data(st)

    def _drain(self, st: _Stream, to_gatord: bool) -> None:
        buf = st.buf
        n = len(buf)
        if n == 0 and not st.inflight:
            return
        # ``inflight``: what a drain took and had not delivered when a signal handler (same
        # thread, so the lock lets it in) drained again before the process dies
        data = st.inflight + buf[:n] if st.inflight else buf[:n]
        st.inflight = data
        del buf[:n]
        if self._log is not None and not self._write_through:
            out = record(MESSAGES, st.tid, data)
            if not st.opened:
                out = record(OPENED, st.tid, st.hello) + out
                st.opened = True
            self._log_write(out)
        if to_gatord and self._capturing:
            self._send(st, data)
        st.inflight = b""

    def _send(self, st: _Stream, data: bytes) -> None:
        try:
            if st.sock is None:
                st.sock = self.endpoints.connect_data(st.hello, self._send_timeout)
                if self._resend:
                    self._resend = False
                    st.sock.sendall(b"".join([*reversed(self._counters), *reversed(self._tracks), *reversed(self._views)]))
            st.sock.sendall(data)
        except OSError as exc:
            self._fail(f"cannot send to gatord at {self.endpoints.describe()} ({exc.strerror or exc})")

    def _finish(self, st: _Stream) -> None:
        """A thread has ended (or the client closes): last data, close its connection and stream."""
        self._drain(st, self._capturing)
        self._close_data(st)
        if st.opened and self._log is not None:
            self._log_write(record(CLOSED, st.tid))
            st.opened = False
        with self._state_lock:
            if self._streams.get(st.tid) is st:
                del self._streams[st.tid]

    def _snapshot(self) -> List[_Stream]:
        with self._state_lock:
            return list(self._streams.values())

    @staticmethod
    def _close_data(st: _Stream) -> None:
        if st.sock is not None:
            st.sock.close()
            st.sock = None

    def _close_ctrl(self) -> None:
        if self._ctrl is not None:
            self._ctrl.close()
            self._ctrl = None

    # --- the API (names of streamline_annotate.h) ---------------------------------------------

    def text(self, s: Optional[Text] = "", channel: int = 0, color: Optional[int] = None) -> None:
        """Text on ``channel`` of this thread until the next text or :meth:`end` there."""
        if self._on:
            t = _clock(_RAW)
            self._put(_text(t, channel, s) if color is None else _text_color(t, channel, color, s))

    def end(self, channel: int = 0) -> None:
        """End the text annotation on ``channel`` (``ANNOTATE_END`` / ``ANNOTATE_CHANNEL_END``)."""
        if self._on:
            self._put(_text(_clock(_RAW), channel, None))

    def prepare_text(self, s: Optional[Text] = "", channel: int = 0, color: Optional[int] = None) -> Callable[[], None]:
        """:meth:`text` encoded once: each call of the result sends it, stamped with that call's time
        (half the cost of :meth:`text`, for texts sent many times, such as a network's layers), or
        with ``time`` (ns, CLOCK_MONOTONIC_RAW) for work timed by someone else (a runtime's profiler).
        ``prepare_text(None, channel)`` is :meth:`end` on ``channel``."""
        encode = wire.text_encoder(channel, color, s)

        def send(time: Optional[int] = None) -> None:
            if self._on:
                self._put(encode(_clock(_RAW) if time is None else time))

        return send

    def marker(self, s: Optional[Text] = "", color: Optional[int] = None, time: Optional[int] = None) -> None:
        """A marker (bookmark) on the timeline, optionally labelled and coloured (at ``time`` ns
        CLOCK_MONOTONIC_RAW, default now)."""
        if self._on:
            t = _clock(_RAW) if time is None else time
            self._put(_marker(t, s) if color is None else _marker_color(t, color, s))

    def name_channel(self, channel: int, group: int, name: Text) -> None:
        """Name ``channel`` of this thread and place it in ``group``."""
        if self._on:
            self._put(wire.name_channel(_clock(_RAW), channel, group, name))

    def name_group(self, group: int, name: Text) -> None:
        """Name ``group`` (of this thread)."""
        if self._on:
            self._put(wire.name_group(_clock(_RAW), group, name))

    def visual(self, data: bytes, s: Text = "") -> None:
        """An image (GIF, PNG, ...) on the timeline, with a caption."""
        if self._on:
            self._put(wire.visual(_clock(_RAW), s, data))

    def _define(self, registry: List[bytes], msg: bytes) -> None:
        registry.append(msg)
        if self._on:
            self._put(msg)

    def counter(self, key: int, title: Text, name: Text, **fields: Any) -> None:
        """Define counter ``key`` (all fields of ``gator_annotate_counter``, see :func:`annotate.wire.counter`)."""
        self._define(self._counters, wire.counter(key, title, name, **fields))

    def absolute_counter(self, key: int, title: Text, name: Text) -> None:
        """``ANNOTATE_ABSOLUTE_COUNTER``: values are levels (maximum shown)."""
        self.counter(key, title, name, counter_class=wire.ABSOLUTE, display=wire.MAXIMUM)

    def delta_counter(self, key: int, title: Text, name: Text) -> None:
        """``ANNOTATE_DELTA_COUNTER``: values are increments (accumulated)."""
        self.counter(key, title, name, counter_class=wire.DELTA, display=wire.ACCUMULATE)

    def counter_value(self, key: int, value: int, core: int = 0, time: Optional[int] = None) -> None:
        """A value of counter ``key`` (at ``time`` ns CLOCK_MONOTONIC_RAW, default now)."""
        if self._on:
            if not self._configured:
                self._ensure_configured()
            t = _clock(_RAW) if time is None else time
            self._put(_counter_value(t, core, key, value, self.protocol))

    def activity_switch(self, key: int, activity: int, tid: int, core: int = 0) -> None:
        """Activity counter ``key`` switches to ``activity`` (1..N, 0 = idle) for ``tid`` on ``core``."""
        if self._on:
            self._put(wire.activity_switch(_clock(_RAW), core, key, activity, tid))

    def cam_view_name(self, view: int, name: Text) -> None:
        """Name Custom Activity Map view ``view``."""
        self._define(self._views, wire.cam_view_name(view, name))

    def cam_track(self, view: int, track: int, parent: int, name: Text) -> None:
        """Define a CAM track (``parent`` -1 = root)."""
        self._define(self._tracks, wire.cam_track(view, track, parent, name))

    def cam_job(
        self,
        view: int,
        job: int,
        name: Text,
        track: int,
        start: int,
        duration: int,
        color: int = wire.COLOR_CYCLE,
        primary_dependency: int = -1,
        dependencies: Iterable[int] = (),
    ) -> None:
        """A complete CAM job: ``start`` (ns, CLOCK_MONOTONIC_RAW) and ``duration`` (ns)."""
        if self._on:
            self._put(wire.cam_job(view, job, name, track, start, duration, color, primary_dependency, dependencies))

    def cam_job_start(self, view: int, job: int, name: Text, track: int, time: int, color: int = wire.COLOR_CYCLE) -> None:
        """A CAM job starts at ``time``."""
        if self._on:
            self._put(wire.cam_job_start(view, job, name, track, time, color))

    def cam_job_set_dependencies(
        self, view: int, job: int, time: int, primary_dependency: int = -1, dependencies: Sequence[int] = ()
    ) -> None:
        """Set a started CAM job's dependencies."""
        if self._on:
            self._put(wire.cam_job_set_dependencies(view, job, time, primary_dependency, dependencies))

    def cam_job_stop(self, view: int, job: int, time: int) -> None:
        """A CAM job stops at ``time``."""
        if self._on:
            self._put(wire.cam_job_stop(view, job, time))

    def region(self, name: Text, channel: int = 0, color: Optional[int] = None) -> Region:
        """``with client.region("conv1"):`` or ``@client.region("conv1")``: text at entry, end at exit."""
        return Region(self, name, channel, color)


# --- process-wide hooks: exit, signals, fork ---------------------------------------------------

_clients: "weakref.WeakSet[Client]" = weakref.WeakSet()
_hooked_pid = 0
_previous_handlers: Dict[int, Any] = {}


def shutdown_all() -> None:
    """Close every client of this process (at exit, on SIGTERM/SIGINT)."""
    for c in list(_clients):
        c.close()


def _register(client: Client) -> None:
    """Remember a started client; the first one in a process installs the exit hooks."""
    global _hooked_pid
    _clients.add(client)
    if _hooked_pid == os.getpid():
        return
    first = _hooked_pid == 0
    _hooked_pid = os.getpid()
    if first:
        atexit.register(shutdown_all)  # inherited by forked children
        _install_signal_handlers()
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None:  # multiprocessing children leave through os._exit(), after its finalizers
        mp_util.Finalize(None, shutdown_all, exitpriority=-100)


def _install_signal_handlers() -> None:
    """SIGTERM/SIGINT: flush, then the default action. Only where no one else has a handler."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            if signal.getsignal(sig) == signal.SIG_DFL:
                _previous_handlers[sig] = signal.signal(sig, _on_signal)
        except (ValueError, OSError):
            pass


def _on_signal(signum: int, frame: object) -> None:
    shutdown_all()
    signal.signal(signum, _previous_handlers.get(signum, signal.SIG_DFL))
    os.kill(os.getpid(), signum)


def _after_fork_in_child() -> None:
    for c in list(_clients):
        c._after_fork_in_child()


if hasattr(os, "register_at_fork"):  # Python 3.7+; on 3.6 a forked child must not annotate
    os.register_at_fork(after_in_child=_after_fork_in_child)
