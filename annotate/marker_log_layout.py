"""The marker log's layout (``docs/marker-log.md``, version 1), declared once.

Written by :mod:`annotate.mirror` (and ``streamline-bridge listen``), read by
``streamline_bridge.ingest.marker_log``. Standard library only, like all of ``annotate``.

A header (magic, u32 version, u32 n, n bytes of JSON metadata), then records: u8 type,
u32 stream id, u32 payload length, payload. All integers little-endian.
"""

import json
import struct
from typing import Any, Dict

MAGIC = b"SBMARK1\n"
VERSION = 1
HEADER = struct.Struct("<8sII")  # magic, version, length of the JSON metadata that follows
RECORD = struct.Struct("<BII")  # type, stream id, payload length (the payload follows)
OPENED, MESSAGES, CLOSED = 1, 2, 3  # record types: a stream's first bytes, more of its bytes, its end
RECORD_TYPES = {OPENED: "opened", MESSAGES: "messages", CLOSED: "closed"}


def header(meta: Dict[str, Any]) -> bytes:
    """The file header: magic, u32 version, u32 n, n bytes of JSON metadata."""
    blob = json.dumps(meta, separators=(",", ":")).encode()
    return HEADER.pack(MAGIC, VERSION, len(blob)) + blob


def record(kind: int, stream: int, payload: bytes = b"") -> bytes:
    """One record: u8 type, u32 stream id, u32 payload length, payload."""
    return RECORD.pack(kind, stream & 0xFFFFFFFF, len(payload)) + payload
