"""Test helper (not a product feature): writes small gatord-style capture folders from the spec.

Follows ``../shared/spec/apc-capture-format.md``: ``captured.xml``, ``events.xml`` and data files
of ``i32le length + frame`` records, built from the :mod:`construct` declarations in
``streamline_bridge.ingest.apc_frames`` so that tests can make every case the recorded vectors
lack: gator.ko COUNTER and ANNOTATE frames, a 4-clock Summary after PERF_ATTRS frames, messages
split across EXTERNAL chunks, several data files, damaged records.

    w = CaptureWriter(protocol=950)
    w.counter_key(0x4, "hwmon_ina3221_0_1", title="Power", name="VDD_IN", units="W", multiplier=1e-6)
    w.summary(monotonic_raw=4_000_000_000_000)
    w.block_counter([(0, 0), (0x4, 1_500_000)])
    w.external(29, annotate.wire.handshake(7, 7) + annotate.wire.marker(4_000_000_100_000, "x"))
    w.write(tmp_path / "x.apc")
"""

from __future__ import annotations

import struct
from pathlib import Path
from xml.sax.saxutils import quoteattr

from streamline_bridge.ingest import apc_frames as fr

UNAME = "Linux test 4.9.140 #1 SMP PREEMPT aarch64 GNU/Linux"


class CaptureWriter:
    """Collects frames in order, then writes a capture folder."""

    def __init__(self, protocol: int = 950, type_: str = "Gator"):
        self.protocol = protocol
        self.type = type_
        self.records: list[bytes] = []
        self.keys: dict[int, str] = {}
        self.events: list[dict[str, str]] = []

    # --- frames ---------------------------------------------------------------------------------

    def frame(self, type_: int, body: bytes = b"", core: int | None = None) -> bytes:
        """Append a record holding frame ``type_`` (+ packed core) + ``body``; returns the frame."""
        data = fr.sleb_encode(type_) + (b"" if core is None else fr.sleb_encode(core)) + body
        self.records.append(fr.RecordHeader.build(len(data)) + data)
        return data

    def raw(self, data: bytes) -> None:
        """Append raw bytes (for damaged files)."""
        self.records.append(data)

    def summary(
        self,
        monotonic_raw: int,
        realtime: int = 1_700_000_000_000_000_000,
        boottime: int | None = None,
        monotonic: int | None = None,
        attributes: dict[str, str] | None = None,
    ) -> None:
        """A Summary message; four clocks when ``monotonic`` is given (gator 9.1+), else three."""
        attrs = {"uname": UNAME, "PAGESIZE": "4096", "nosync": ""} if attributes is None else attributes
        body = fr.SummaryMessage.build(
            {
                "clocks": {
                    "realtime": realtime,
                    "boottime": monotonic_raw if boottime is None else boottime,
                    "monotonic_raw": monotonic_raw,
                    "monotonic": monotonic,
                },
                "attributes": [{"key": k, "value": v} for k, v in attrs.items()] + [{"key": "", "value": None}],
            }
        )
        self.frame(fr.SUMMARY, body)

    def core_name(self, core: int, cpuid: int, name: str) -> None:
        self.frame(fr.SUMMARY, fr.CoreNameMessage.build({"core": core, "cpuid": cpuid, "name": name}))

    def block_counter(self, pairs: list[tuple[int, int]], core: int = 0) -> None:
        """A BLOCK_COUNTER frame of ``(key, value)`` pairs (key 0 time, 1 tid, 2 core)."""
        self.frame(fr.BLOCK_COUNTER, b"".join(fr.sleb_encode(k) + fr.sleb_encode(v) for k, v in pairs), core)

    def counter(self, messages: list[tuple[int, int, int, int]]) -> None:
        """A COUNTER frame (gator.ko): ``(time, core, key, value)`` messages."""
        self.frame(
            fr.COUNTER,
            b"".join(fr.CounterMessage.build({"time": t, "core": c, "key": k, "value": v}) for t, c, k, v in messages),
        )

    def external(self, ident: int, data: bytes = b"") -> None:
        """An EXTERNAL data chunk (or an id-only frame when ``data`` is empty)."""
        self.frame(fr.EXTERNAL, fr.sleb_encode(ident) + data)

    def close(self, ident: int) -> None:
        self.frame(fr.EXTERNAL, fr.sleb_encode(-1) + fr.sleb_encode(ident))

    def external_split(self, ident: int, data: bytes, sizes: list[int]) -> None:
        """``data`` as EXTERNAL chunks of the given sizes (the rest in a last chunk)."""
        pos = 0
        for n in sizes:
            self.external(ident, data[pos : pos + n])
            pos += n
        if pos < len(data):
            self.external(ident, data[pos:])

    def legacy_annotate(self, chunks: list[tuple[int, int, int, bytes]]) -> None:
        """An ANNOTATE frame (gator.ko) of ``(core, tid, time, bytes)`` chunks; time 0 + no bytes = close."""
        self.frame(
            fr.ANNOTATE,
            b"".join(
                fr.LegacyAnnotateChunk.build({"core": c, "tid": tid, "time": t, "size": len(d), "data": d})
                for c, tid, t, d in chunks
            ),
        )

    def perf_data(self, cpu: int, payload: bytes) -> None:
        """A 9.x PERF_DATA frame: cpu, u32le size, bytes (never parsed by the reader)."""
        self.frame(fr.PERF_DATA, struct.pack("<I", len(payload)) + payload, cpu)

    # --- XML ------------------------------------------------------------------------------------

    def counter_key(self, key: int, ctype: str, **event: str | float) -> None:
        """Declare a counter in captured.xml and, with ``event`` attributes, in events.xml."""
        self.keys[key] = ctype
        if event:
            self.events.append({"counter": ctype, **{k: str(v) for k, v in event.items()}})

    def captured_xml(self) -> str:
        counters = "".join(f'    <counter key="{k:#x}" type={quoteattr(t)}/>\n' for k, t in self.keys.items())
        return (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<captured version="1" type="{self.type}" '
            f'protocol="{self.protocol}" created="1700000001">\n'
            f'  <target name="Test" sample_rate="1000" cores="4" cpuid="0x41d07" supports_live="yes" '
            f'local_capture="yes"/>\n  <counters>\n{counters}  </counters>\n</captured>\n'
        )

    def events_xml(self) -> str:
        events = "".join(
            "    <event " + " ".join(f"{k}={quoteattr(v)}" for k, v in e.items()) + "/>\n" for e in self.events
        )
        return f'<?xml version="1.0" encoding="UTF-8"?>\n<events>\n  <category name="Test">\n{events}  </category>\n</events>\n'

    # --- output ---------------------------------------------------------------------------------

    def data(self) -> bytes:
        return b"".join(self.records)

    def write(self, folder: Path, *, split_at: list[int] | None = None, captured: bool = True) -> Path:
        """Write the folder; ``split_at`` = byte offsets where the data continues in the next file."""
        folder.mkdir(parents=True, exist_ok=True)
        data = self.data()
        cuts = [0, *(split_at or []), len(data)]
        for i, (a, b) in enumerate(zip(cuts, cuts[1:])):
            (folder / f"{i:010d}").write_bytes(data[a:b])
        if captured:
            (folder / "captured.xml").write_text(self.captured_xml())
        (folder / "events.xml").write_text(self.events_xml())
        return folder
