"""The Streamline annotation wire format: constants and pure encoders.

Every encoder returns one complete framed message (``u8 code``, ``u32le body length``, body),
byte for byte what Arm's ``streamline_annotate.c`` sends for the same call. Times are passed in
(CLOCK_MONOTONIC_RAW ns, see :func:`now`), so a recorded stream can be reproduced exactly.
Specification: ``../shared/spec/annotate-protocol.md`` (sections 4-6).

Strings may be ``str`` (sent as UTF-8) or ``bytes``. Fields that the protocol NUL-terminates
(visual text, counter title/name/units, activity names) are cut at their first NUL, as C's
``strlen`` would; tail strings are sent whole.
"""

import struct
import time
from typing import Callable, Iterable, Optional, Sequence, Tuple, Union

Text = Union[str, bytes]

PROTOCOLS = (4, 5)
DEFAULT_PROTOCOL = 5

# Message codes (spec section 1).
TEXT = 0x01
TEXT_COLOR = 0x02
NAME_CHANNEL = 0x03
NAME_GROUP = 0x04
VISUAL = 0x05
MARKER = 0x06
MARKER_COLOR = 0x07
COUNTER = 0x08
COUNTER_VALUE = 0x09
ACTIVITY_SWITCH = 0x0A
CAM_TRACK = 0x0B
CAM_JOB = 0x0C
CAM_VIEW_NAME = 0x0D
CAM_JOB_START = 0x0E
CAM_JOB_SET_DEPENDENCIES = 0x0F
CAM_JOB_STOP = 0x10

# Colours: the C header's 32-bit constants, laid out 0xBBGGRR1B (spec section 5.3).
RED = 0x0000FF1B
BLUE = 0xFF00001B
GREEN = 0x00FF001B
PURPLE = 0xFF00FF1B
YELLOW = 0x00FFFF1B
CYAN = 0xFFFF001B
WHITE = 0xFFFFFF1B
LTGRAY = 0xBBBBBB1B
DKGRAY = 0x5555551B
BLACK = 0x0000001B
COLOR_CYCLE = 0x00000000
COLOR_T1 = 0x00000001
COLOR_T2 = 0x00000002
COLOR_T3 = 0x00000003
COLOR_T4 = 0x00000004

# Counter classes, displays, series compositions, rendering types (enums of the C header).
DELTA, ABSOLUTE, ACTIVITY, INCIDENT = 1, 2, 3, 4
AVERAGE, ACCUMULATE, HERTZ, MAXIMUM, MINIMUM = 1, 2, 3, 4, 5
STACKED, OVERLAY, LOG10 = 1, 2, 3
FILL, LINE, BAR = 1, 2, 3

RAW_CLOCK = time.CLOCK_MONOTONIC_RAW
try:
    clock_ns = time.clock_gettime_ns
except AttributeError:  # Python 3.6

    def clock_ns(clock: int) -> int:
        """``time.clock_gettime_ns`` from the float clock (sub-ns precision for months of uptime)."""
        return int(time.clock_gettime(clock) * 1e9)


def now() -> int:
    """CLOCK_MONOTONIC_RAW in ns: the clock of every annotation time (``gator_get_time()``)."""
    return clock_ns(RAW_CLOCK)


def rgb(r: int, g: int, b: int) -> int:
    """The colour constant (0xBBGGRR1B) for an RGB triple, like the header's ``ANNOTATE_RED``."""
    return ((b & 0xFF) << 24) | ((g & 0xFF) << 16) | ((r & 0xFF) << 8) | 0x1B


def sleb128(v: int) -> bytes:
    """Signed LEB128 of ``v`` (already wrapped to its width)."""
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if (v == 0 and not b & 0x40) or (v == -1 and b & 0x40):
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def packed32(v: int) -> bytes:
    """``v`` as a C ``int32_t`` (unsigned arguments wrap: 0xFFFFFFFF -> -1), signed LEB128."""
    v &= 0xFFFFFFFF
    return sleb128(v - 0x100000000 if v & 0x80000000 else v)


def packed64(v: int) -> bytes:
    """``v`` as a C ``int64_t``, signed LEB128."""
    v &= 0xFFFFFFFFFFFFFFFF
    return sleb128(v - 0x10000000000000000 if v & 0x8000000000000000 else v)


# Fast paths for the fields every hot call has: small ints and a timestamp.
_SMALL = {i: packed32(i) for i in range(-64, 64)}
# Two LEB128 groups with the continuation bit, for each 14-bit value.
_LOW14 = [bytes(((i & 0x7F) | 0x80, ((i >> 7) & 0x7F) | 0x80)) for i in range(1 << 14)]
_time_cache: Tuple[int, bytes] = (-1, b"")  # (t >> 28, sleb128(t >> 28)), replaced whole


def p32(v: int) -> bytes:
    """:func:`packed32` with a table for -64..63."""
    b = _SMALL.get(v)
    return b if b is not None else packed32(v)


def ptime(t: int) -> bytes:
    """:func:`packed64` of a timestamp, fast: for 2**28 <= t < 2**63 the first four groups all
    continue, so LEB128(t) = two table entries + LEB128(t >> 28), cached (it changes every 268 ms)."""
    global _time_cache
    top = t >> 28
    if 0 < top < 0x800000000:
        cached = _time_cache
        if cached[0] != top:
            cached = _time_cache = (top, sleb128(top))
        return _LOW14[t & 0x3FFF] + _LOW14[(t >> 14) & 0x3FFF] + cached[1]
    return packed64(t)


def color_bytes(c: int) -> bytes:
    """The 4 wire bytes ``R G B T`` of a colour constant 0xBBGGRR1B."""
    return bytes(((c >> 8) & 0xFF, (c >> 16) & 0xFF, (c >> 24) & 0xFF, c & 0xFF))


def utf8(s: Optional[Text]) -> bytes:
    """A tail string's bytes (``None`` = empty, as a NULL ``char*``; other objects via ``str``)."""
    if s.__class__ is str:
        try:
            return s.encode()
        except UnicodeEncodeError:  # lone surrogates: never fail the caller over a label
            return s.encode("utf-8", "replace")
    if s is None:
        return b""
    return bytes(s) if isinstance(s, (bytes, bytearray, memoryview)) else utf8(str(s))


def zstr(s: Optional[Text]) -> bytes:
    """A NUL-terminated string field: the text up to its first NUL, then NUL."""
    return utf8(s).split(b"\0", 1)[0] + b"\0"


_pack_header = struct.Struct("<BI").pack
# Prebuilt headers for bodies shorter than 256 bytes, per code.
_HEADERS = [[bytes((code, n, 0, 0, 0)) for n in range(256)] for code in range(CAM_JOB_STOP + 1)]


def frame(code: int, body: bytes) -> bytes:
    """One message: code, u32le body length, body."""
    n = len(body)
    return (_HEADERS[code][n] if n < 256 else _pack_header(code, n)) + body


def handshake(tid: int, pid: int, protocol: int = DEFAULT_PROTOCOL, dont_mangle_keys: bool = False) -> bytes:
    """The 20 bytes that open a data connection (and a marker-log stream): spec section 4."""
    return b"ANNOTATE %d\n" % protocol + struct.pack(
        "<IIB", tid & 0xFFFFFFFF, pid & 0xFFFFFFFF, 1 if dont_mangle_keys else 0
    )


# --- one encoder per message code --------------------------------------------------------------


def text(time: int, channel: int, s: Optional[Text]) -> bytes:
    """0x01: text on ``channel``; empty ``s`` ends the channel's annotation."""
    body = ptime(time) + p32(channel) + utf8(s)
    n = len(body)
    return (_HEADERS[TEXT][n] if n < 256 else _pack_header(TEXT, n)) + body


def text_color(time: int, channel: int, col: int, s: Optional[Text]) -> bytes:
    """0x02: coloured text on ``channel``."""
    body = ptime(time) + p32(channel) + color_bytes(col) + utf8(s)
    n = len(body)
    return (_HEADERS[TEXT_COLOR][n] if n < 256 else _pack_header(TEXT_COLOR, n)) + body


def text_encoder(channel: int, col: Optional[int], s: Optional[Text]) -> Callable[[int], bytes]:
    """:func:`text` (``col`` None) or :func:`text_color` with all but the time encoded once: the
    returned function of the time gives the same bytes, for a text sent many times."""
    code = TEXT if col is None else TEXT_COLOR
    tail = p32(channel) + (b"" if col is None else color_bytes(col)) + utf8(s)
    headers = _HEADERS[code]

    def encode(time: int) -> bytes:
        body = ptime(time) + tail
        n = len(body)
        return (headers[n] if n < 256 else _pack_header(code, n)) + body

    return encode


def name_channel(time: int, channel: int, group: int, name: Optional[Text]) -> bytes:
    """0x03: name ``channel`` and put it in ``group``."""
    return frame(NAME_CHANNEL, ptime(time) + p32(channel) + p32(group) + utf8(name))


def name_group(time: int, group: int, name: Optional[Text]) -> bytes:
    """0x04: name ``group``."""
    return frame(NAME_GROUP, ptime(time) + p32(group) + utf8(name))


def visual(time: int, s: Optional[Text], data: bytes) -> bytes:
    """0x05: an image (any format Streamline detects) with a caption."""
    return frame(VISUAL, ptime(time) + zstr(s) + bytes(data))


def marker(time: int, s: Optional[Text]) -> bytes:
    """0x06: a marker (bookmark), optionally labelled."""
    body = ptime(time) + utf8(s)
    n = len(body)
    return (_HEADERS[MARKER][n] if n < 256 else _pack_header(MARKER, n)) + body


def marker_color(time: int, col: int, s: Optional[Text]) -> bytes:
    """0x07: a coloured marker."""
    body = ptime(time) + color_bytes(col) + utf8(s)
    n = len(body)
    return (_HEADERS[MARKER_COLOR][n] if n < 256 else _pack_header(MARKER_COLOR, n)) + body


def counter(
    key: int,
    title: Optional[Text],
    name: Optional[Text],
    *,
    per_cpu: bool = False,
    counter_class: int = ABSOLUTE,
    display: int = MAXIMUM,
    units: Optional[Text] = "",
    modifier: int = 1,
    series_composition: int = STACKED,
    rendering_type: int = FILL,
    average_selection: bool = False,
    average_cores: bool = False,
    percentage: bool = False,
    activities: Sequence[Text] = (),
    activity_colors: Sequence[int] = (),
    cores: int = 0,
    color: int = COLOR_CYCLE,
    description: Optional[Text] = "",
) -> bytes:
    """0x08: a counter definition (all 18 fields of ``gator_annotate_counter``; spec section 6).

    ``activities`` are the names of activity values 1..N; ``activity_colors`` their colours
    (missing ones are ``COLOR_CYCLE``).
    """
    colors = list(activity_colors) + [COLOR_CYCLE] * (len(activities) - len(activity_colors))
    body = b"".join(
        (
            p32(key),
            p32(int(bool(per_cpu))),
            p32(counter_class),
            p32(display),
            p32(modifier),
            p32(series_composition),
            p32(rendering_type),
            p32(int(bool(average_selection))),
            p32(int(bool(average_cores))),
            p32(int(bool(percentage))),
            p32(len(activities)),
            p32(cores),
            color_bytes(color),
            b"".join(zstr(a) + color_bytes(c) for a, c in zip(activities, colors)),
            zstr(title),
            zstr(name),
            zstr(units),
            utf8(description),
        )
    )
    return frame(COUNTER, body)


def counter_value(time: int, core: int, key: int, value: int, protocol: int = DEFAULT_PROTOCOL) -> bytes:
    """0x09: a counter value; protocol 5 packs it as 64 bits, protocol 4 wraps it to 32."""
    body = ptime(time) + p32(core) + p32(key) + (packed64(value) if protocol >= 5 else packed32(value))
    return frame(COUNTER_VALUE, body)


def activity_switch(time: int, core: int, key: int, activity: int, tid: int) -> bytes:
    """0x0a: the activity counter ``key`` switches to ``activity`` (0 = idle) on ``core``."""
    return frame(ACTIVITY_SWITCH, ptime(time) + p32(core) + p32(key) + p32(activity) + p32(tid))


def cam_track(view: int, track: int, parent: int, name: Optional[Text]) -> bytes:
    """0x0b: a Custom Activity Map track (``parent`` -1 = root)."""
    return frame(CAM_TRACK, p32(view) + p32(track) + p32(parent) + utf8(name))


def _deps(primary: int, dependencies: Iterable[int]) -> bytes:
    deps = list(dependencies)
    return p32(primary) + p32(len(deps)) + b"".join(p32(d) for d in deps)


def cam_job(
    view: int,
    job: int,
    name: Optional[Text],
    track: int,
    start: int,
    duration: int,
    col: int,
    primary_dependency: int = -1,
    dependencies: Iterable[int] = (),
) -> bytes:
    """0x0c: a complete CAM job (start time and duration in ns)."""
    body = p32(view) + p32(job) + p32(track) + packed64(start) + packed64(duration) + color_bytes(col)
    return frame(CAM_JOB, body + _deps(primary_dependency, dependencies) + utf8(name))


def cam_view_name(view: int, name: Optional[Text]) -> bytes:
    """0x0d: name a CAM view."""
    return frame(CAM_VIEW_NAME, p32(view) + utf8(name))


def cam_job_start(view: int, job: int, name: Optional[Text], track: int, time: int, col: int) -> bytes:
    """0x0e (v4+): a CAM job starts."""
    return frame(CAM_JOB_START, p32(view) + p32(job) + p32(track) + packed64(time) + color_bytes(col) + utf8(name))


def cam_job_set_dependencies(
    view: int, job: int, time: int, primary_dependency: int, dependencies: Iterable[int] = ()
) -> bytes:
    """0x0f (v4+): set a started job's dependencies."""
    return frame(
        CAM_JOB_SET_DEPENDENCIES, p32(view) + p32(job) + packed64(time) + _deps(primary_dependency, dependencies)
    )


def cam_job_stop(view: int, job: int, time: int) -> bytes:
    """0x10 (v4+): a CAM job stops."""
    return frame(CAM_JOB_STOP, p32(view) + p32(job) + packed64(time))
