"""The annotation messages: one specification per code of :mod:`annotate.wire` (``../shared/spec/annotate-protocol.md``).

Everything code-specific derives from :data:`SPECS`: the decoder
(:mod:`~streamline_bridge.ingest.annotation_stream`) decodes a fixed ``layout`` vectorised and a
variable one with its ``reader``; the markers table takes each message's ``columns``; the marker
kind is ``kind``. Adding a message is one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from annotate import wire
from streamline_bridge.ingest import leb128

VARINT, COLOR, TAIL = "varint", "color", "tail"  # field types of the fixed layouts (the :class:`Body` methods)
Layout = tuple[tuple[str, str], ...]  # (field name, field type) in wire order

HEADER_SIZE = 5  # u8 code + u32 length, before every message body

# Field faults, shared by the per-message and the vectorised paths (index 0: no fault).
FAULTS = ("", "packed integer longer than 10 bytes", "message body too short for its fields")


class FieldError(Exception):
    """A message body that does not hold its fields (the decoder turns it into a DecodeError)."""


class Body:
    """Reads the fields of one message body, one at a time (variable layouts, and small batches)."""

    def __init__(self, buf: bytes, pos: int, end: int):
        self.buf, self.pos, self.end = buf, pos, end

    def varint(self) -> int:
        try:
            value, self.pos = leb128.decode(self.buf, self.pos, self.end)
        except leb128.LEB128Error as exc:
            raise FieldError(FAULTS[2] if exc.offset >= self.end else FAULTS[1]) from None
        return leb128.to_int64(value)  # as the vectorised path gives it

    def color(self) -> int:
        if self.pos + 4 > self.end:
            raise FieldError(FAULTS[2])
        r, g, b, t = self.buf[self.pos : self.pos + 4]
        self.pos += 4
        return t | r << 8 | g << 16 | b << 24

    def zstr(self) -> str:
        nul = self.buf.find(b"\0", self.pos, self.end)
        if nul < 0:
            raise FieldError("string not NUL-terminated inside the body")
        s = self.buf[self.pos : nul].decode("utf-8", "replace")
        self.pos = nul + 1
        return s

    def rest(self) -> bytes:
        out = self.buf[self.pos : self.end]
        self.pos = self.end
        return out

    def tail(self) -> str:
        return self.rest().decode("utf-8", "replace")

    def count(self, min_item_size: int) -> int:
        n = self.varint()
        if n < 0 or n * min_item_size > self.end - self.pos:
            raise FieldError(f"count {n} does not fit in the body")
        return n


def _visual(r: Body) -> dict[str, Any]:
    return {"time": r.varint(), "text": r.zstr(), "image": r.rest()}


COUNTER_INTS = (
    "key",
    "per_cpu",
    "class",
    "display",
    "modifier",
    "series_composition",
    "rendering_type",
    "average_selection",
    "average_cores",
    "percentage",
)


def _counter(r: Body) -> dict[str, Any]:
    f: dict[str, Any] = {name: r.varint() for name in COUNTER_INTS}
    f["activity_count"] = r.count(5)
    f["cores"] = r.varint()
    f["color"] = r.color()
    f["activities"] = [(r.zstr(), r.color()) for _ in range(f["activity_count"])]
    f["title"], f["name"], f["units"] = r.zstr(), r.zstr(), r.zstr()
    f["description"] = r.tail()
    return f


def _cam_job(r: Body) -> dict[str, Any]:
    f: dict[str, Any] = {
        "view": r.varint(),
        "job": r.varint(),
        "track": r.varint(),
        "start": r.varint(),
        "duration": r.varint(),
        "color": r.color(),
        "primary_dep": r.varint(),
    }
    f["deps"] = [r.varint() for _ in range(r.count(1))]
    f["name"] = r.tail()
    return f


def _cam_deps(r: Body) -> dict[str, Any]:
    f: dict[str, Any] = {"view": r.varint(), "job": r.varint(), "time": r.varint(), "primary_dep": r.varint()}
    f["deps"] = [r.varint() for _ in range(r.count(1))]
    return f


@dataclass(frozen=True)
class MessageSpec:
    """One message code: its name, marker kind, fields and the markers-table columns they fill."""

    name: str
    kind: str  # the markers table's kind (model.MARKER_KINDS)
    columns: dict[str, str]  # markers-table column -> message field
    layout: Layout | None = None  # a fixed layout (decoded vectorised), or None: ``reader`` reads it
    reader: Callable[[Body], dict[str, Any]] | None = field(default=None, compare=False)
    kind_when_empty: str | None = None  # the kind of a message whose text is empty (a text end)

    def read(self, body: Body) -> dict[str, Any]:
        """The fields of one message."""
        if self.reader is not None:
            return self.reader(body)
        return {name: getattr(body, kind)() for name, kind in self.layout or ()}


_TIME_CHANNEL = (("time", VARINT), ("channel", VARINT))
_TEXT = {"time_ns": "time", "channel": "channel", "text": "text"}
SPECS: dict[int, MessageSpec] = {
    wire.TEXT: MessageSpec("STR", "text", _TEXT, (*_TIME_CHANNEL, ("text", TAIL)), kind_when_empty="end"),
    wire.TEXT_COLOR: MessageSpec(
        "STR_COLOR", "text", {**_TEXT, "color": "color"}, (*_TIME_CHANNEL, ("color", COLOR), ("text", TAIL))
    ),
    wire.NAME_CHANNEL: MessageSpec(
        "NAME_CHANNEL",
        "name_channel",
        {"time_ns": "time", "channel": "channel", "group": "group", "text": "name"},
        (*_TIME_CHANNEL, ("group", VARINT), ("name", TAIL)),
    ),
    wire.NAME_GROUP: MessageSpec(
        "NAME_GROUP",
        "name_group",
        {"time_ns": "time", "group": "group", "text": "name"},
        (("time", VARINT), ("group", VARINT), ("name", TAIL)),
    ),
    wire.VISUAL: MessageSpec("VISUAL", "visual", {"time_ns": "time", "text": "text"}, reader=_visual),
    wire.MARKER: MessageSpec(
        "MARKER", "marker", {"time_ns": "time", "text": "text"}, (("time", VARINT), ("text", TAIL))
    ),
    wire.MARKER_COLOR: MessageSpec(
        "MARKER_COLOR",
        "marker",
        {"time_ns": "time", "color": "color", "text": "text"},
        (("time", VARINT), ("color", COLOR), ("text", TAIL)),
    ),
    wire.COUNTER: MessageSpec(
        "COUNTER", "counter_def", {"key": "key", "color": "color", "text": "name"}, reader=_counter
    ),
    wire.COUNTER_VALUE: MessageSpec(
        "COUNTER_VALUE",
        "counter_value",
        {"time_ns": "time", "core": "core", "key": "key", "value": "value"},
        (("time", VARINT), ("core", VARINT), ("key", VARINT), ("value", VARINT)),
    ),
    wire.ACTIVITY_SWITCH: MessageSpec(
        "ACTIVITY_SWITCH",
        "activity_switch",
        {"time_ns": "time", "core": "core", "key": "key", "value": "activity"},
        (("time", VARINT), ("core", VARINT), ("key", VARINT), ("activity", VARINT), ("tid", VARINT)),
    ),
    wire.CAM_TRACK: MessageSpec(
        "CAM_TRACK",
        "cam_track",
        {"text": "name"},
        (("view", VARINT), ("track", VARINT), ("parent", VARINT), ("name", TAIL)),
    ),
    wire.CAM_JOB: MessageSpec(
        "CAM_JOB", "cam_job", {"time_ns": "start", "color": "color", "text": "name"}, reader=_cam_job
    ),
    wire.CAM_VIEW_NAME: MessageSpec(
        "CAM_VIEW_NAME", "cam_view_name", {"text": "name"}, (("view", VARINT), ("name", TAIL))
    ),
    wire.CAM_JOB_START: MessageSpec(
        "CAM_JOB_START",
        "cam_job_start",
        {"time_ns": "time", "color": "color", "text": "name"},
        (("view", VARINT), ("job", VARINT), ("track", VARINT), ("time", VARINT), ("color", COLOR), ("name", TAIL)),
    ),
    wire.CAM_JOB_SET_DEPENDENCIES: MessageSpec(
        "CAM_JOB_SET_DEPS", "cam_job_deps", {"time_ns": "time"}, reader=_cam_deps
    ),
    wire.CAM_JOB_STOP: MessageSpec(
        "CAM_JOB_STOP", "cam_job_stop", {"time_ns": "time"}, (("view", VARINT), ("job", VARINT), ("time", VARINT))
    ),
}
MAX_CODE = max(SPECS)
