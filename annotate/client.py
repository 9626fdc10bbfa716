"""The annotation client's public API: :class:`Client` (names of ``streamline_annotate.h``) and its hot path.

Hot path (every API call): read the clock, encode the message, append it to the calling thread's
``bytearray``. No lock, no system call, no exception can reach the caller. The sender
(:mod:`annotate.sender`) drains every buffer each flush interval (sooner when one is 3/4 of
``buffer_size``, and synchronously in :meth:`Client.flush`) to the thread's data connection
(:mod:`annotate.gatord`) and to the marker log. Options: :mod:`annotate.config`; exit, signal and
fork hooks: :mod:`annotate.hooks`.
"""

import contextlib
import os
import threading
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple, Union

from annotate import hooks, wire
from annotate.config import DEFAULT_BUFFER_SIZE, MAX_BUFFER, OPTIONS, Settings, warn
from annotate.mirror import MESSAGES, record
from annotate.sender import Sender, Stream, ThreadEnd

Text = wire.Text
shutdown_all = hooks.shutdown_all

_clock = wire.clock_ns
_RAW = wire.RAW_CLOCK
_text, _text_color, _marker, _marker_color = wire.text, wire.text_color, wire.marker, wire.marker_color
_counter_value = wire.counter_value
_HOLD = threading.Event()  # never set: what a call made while the process ends waits on
_HOLD_S = 2.0  # the process is gone long before


def _syscall_gettid() -> int:
    """The calling thread's kernel id on Python < 3.8 (no ``threading.get_native_id``)."""
    import ctypes

    number = {"x86_64": 186, "aarch64": 178, "armv7l": 224, "armv6l": 224, "i686": 224, "i386": 224}
    nr = number.get(os.uname().machine)
    tid = ctypes.CDLL(None, use_errno=True).syscall(nr) if nr is not None else -1
    return tid if tid > 0 else threading.get_ident() & 0xFFFFFFFF


_gettid = getattr(threading, "get_native_id", _syscall_gettid)


class Region(contextlib.ContextDecorator):
    """Text on a channel while a block (or decorated function) runs; ended on exit, exceptions too."""

    def __init__(self, client: "Client", name: Text, channel: int = 0, color: Optional[int] = None) -> None:
        self.client, self.name, self.channel, self.color = client, name, channel, color

    def __enter__(self) -> "Region":
        self.client.text(self.name, self.channel, self.color)
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.end(self.channel)


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

    _sender: Sender  # set up with the configuration (every use is behind ``_configured``)

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
        self._options = dict(OPTIONS)
        self._counters: List[bytes] = []  # definitions, for re-sending after a capture restart
        self._tracks: List[bytes] = []
        self._views: List[bytes] = []
        self._configured = self._closed = self._dying = False
        self._on = True  # accept messages (capturing, or a file to write); optimistic until set up
        self._put: Callable[[bytes], None] = self._put_first
        self._reset_process_state()
        self._store_options(
            file=file,
            protocol=protocol,
            tcp=tcp,
            flush_interval=flush_interval,
            address_prefix=address_prefix,
            tcp_ports=tcp_ports,
            gatord=gatord,
            retry_interval=retry_interval,
            buffer_size=buffer_size,
            dont_mangle_keys=dont_mangle_keys,
            send_timeout=send_timeout,
        )
        hooks.install_signal_handlers()  # now, while maybe in the main thread: the first call may come from another

    # --- configuration and life cycle ---------------------------------------------------------

    def _store_options(self, **options: Any) -> None:
        unknown = set(options) - set(OPTIONS)
        if unknown:
            raise TypeError("unknown annotate option(s): " + ", ".join(sorted(unknown)))
        self._options.update(options)

    def _reset_process_state(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.RLock()  # configuration and close
        self._tls = threading.local()

    def setup(self, **options: Any) -> None:
        """(Re)configure with the options of the constructor and connect now (``ANNOTATE_SETUP``)."""
        self.close()
        with self._lock:
            self._store_options(**options)
            self._closed = self._dying = False
            self._configure()
            self._sender.start(self._register)

    def _configure(self) -> None:
        settings = Settings(self._options)
        self.protocol = settings.protocol
        self.endpoints = settings.endpoints
        self.flush_interval = settings.flush_interval
        self._wake_at = settings.wake_at
        self._dont_mangle = settings.dont_mangle_keys
        self._tls = threading.local()
        self._sender = Sender(settings, self._definitions, self._changed)
        self._configured = True
        self._changed()

    def _register(self) -> None:
        hooks.register(self)

    def _changed(self) -> None:
        """The sender's state changed: what the hot path does follows."""
        s = self._sender
        self._wake = s.wake
        self._put = self._put_write_through if s.write_through else self._put_buffered
        self._on = s.accepting and not self._closed or self._dying

    def _definitions(self) -> bytes:
        """Every counter definition, CAM track and CAM view name (that order, newest first within each)."""
        return b"".join([*reversed(self._counters), *reversed(self._tracks), *reversed(self._views)])

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
            self._on = self._dying
            sender = self._sender
        sender.close()

    def _close_for_exit(self) -> None:
        """The process ends: from now on a call from another thread waits (briefly) instead of returning."""
        if self._pid == os.getpid():
            self._dying = True
            self.close()

    def _wait_for_threads(self) -> None:
        if self._configured and not self._closed and self._pid == os.getpid():
            self._sender.wait_for_threads()

    def flush(self) -> None:
        """Send and write everything buffered so far, now (``gator_annotate_flush()``)."""
        if self._configured and not self._closed and self._pid == os.getpid():
            self._sender.flush()

    def _after_fork_in_child(self) -> None:
        """The child gets its own buffers, connections and sender; the parent's are not its."""
        self._reset_process_state()
        self._dying = False
        if self._configured and not self._closed:
            self._sender.after_fork_in_child()
            self._changed()

    @property
    def capturing(self) -> bool:
        """Whether messages currently go to gatord (a capture is believed to be running)."""
        return self._configured and not self._closed and self._sender.capturing

    # --- hot path -----------------------------------------------------------------------------

    def _attach(self) -> Optional[Stream]:
        """First message of this thread (in this process/configuration): create its stream."""
        s = self._sender
        with s.state_lock:
            if self._closed or not self._on:
                return None
            s.start(self._register)
            tid = _gettid()
            st = s.attach(tid, wire.handshake(tid, os.getpid(), self.protocol, self._dont_mangle))
        self._tls.st = st
        self._tls.buf = st.buf
        self._tls.end = ThreadEnd(st)
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
                    warn(str(exc))
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
                if self._dying:
                    self._hold()
                return
            buf = st.buf
        if len(buf) < self._wake_at:
            buf += msg
        else:
            self._put_full(buf, msg)
        if self._dying:
            self._hold()

    def _put_full(self, buf: bytearray, msg: bytes) -> None:
        """Append past the hot path's threshold: wake the sender; drop beyond MAX_BUFFER."""
        if len(buf) >= self._wake_at and not self._wake.is_set():
            self._wake.set()
        if len(buf) < MAX_BUFFER:
            buf += msg

    def _put_write_through(self, msg: bytes) -> None:
        st = getattr(self._tls, "st", None) or self._attach()
        if st is not None:
            s = self._sender
            s.log_write(record(MESSAGES, st.tid, msg))
            if s.capturing:
                self._put_full(st.buf, msg)
        if self._dying:
            self._hold()

    @staticmethod
    def _hold() -> None:
        """A call made after the last drain of a process that ends: it must not return (see :mod:`annotate.hooks`)."""
        if threading.current_thread() is not threading.main_thread():
            _HOLD.wait(_HOLD_S)

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

    def cam_job_start(
        self, view: int, job: int, name: Text, track: int, time: int, color: int = wire.COLOR_CYCLE
    ) -> None:
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
