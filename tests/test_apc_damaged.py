"""ingest.apc on damaged captures: one clear Issue with file and byte offset, the rest still read."""

from __future__ import annotations

import json
import shutil

import pytest

from annotate import wire
from apc_writer import CaptureWriter
from streamline_bridge.cli import main
from streamline_bridge.ingest import apc

BASE = 4_000_000_000_000
MS = 1_000_000


def _writer() -> CaptureWriter:
    w = CaptureWriter()
    w.counter_key(0x6, "filesystem_rail", title="Power", name="VDD_IN", units="mW")
    w.summary(monotonic_raw=BASE)
    w.block_counter([(0, 1 * MS), (0x6, 100)])
    w.external(3, wire.handshake(9, 9) + wire.text(BASE + 2 * MS, 0, "a") + wire.text(BASE + 3 * MS, 0, "b"))
    return w


def _issues(rec) -> list[str]:
    return [str(i) for i in rec.meta.issues]


def test_record_cut_short_keeps_what_came_before(tmp_path):
    w = _writer()
    good = len(w.data())
    w.block_counter([(0, 2 * MS), (0x6, 200)])
    folder = w.write(tmp_path / "t.apc")
    data = (folder / "0000000000").read_bytes()
    (folder / "0000000000").write_bytes(data[:-3])
    rec = apc.read(folder)
    assert rec.meta.partial and len(rec.markers) == 2 and rec.power["power_mw"].tolist() == [100.0]
    (issue,) = rec.meta.issues
    assert issue.file.endswith("0000000000") and issue.offset == good
    assert "runs 3 bytes past the end" in issue.message


def test_record_header_cut_short(tmp_path):
    w = _writer()
    good = len(w.data())
    w.raw(b"\x05\x00")
    rec = apc.read(w.write(tmp_path / "h.apc"))
    assert rec.meta.partial and len(rec.markers) == 2
    assert rec.meta.issues[0].offset == good and "record header cut short" in rec.meta.issues[0].message


def test_negative_length(tmp_path):
    w = _writer()
    w.raw(b"\xff\xff\xff\xff\x0a")
    rec = apc.read(w.write(tmp_path / "n.apc"))
    assert rec.meta.partial and "negative" in _issues(rec)[0]


def test_unknown_frame_type_is_skipped_by_length(tmp_path):
    w = _writer()
    at = len(w.data())
    w.frame(20, b"\x01\x02\x03")
    w.block_counter([(0, 2 * MS), (0x6, 200)])
    rec = apc.read(w.write(tmp_path / "u.apc"))
    assert rec.meta.partial and rec.power["power_mw"].tolist() == [100.0, 200.0]
    (issue,) = rec.meta.issues
    assert issue.offset == at and "unknown frame type 20" in issue.message


def test_error_offsets_name_the_continuation_file(tmp_path):
    w = _writer()
    at = len(w.data())
    w.frame(33, b"")
    folder = w.write(tmp_path / "c.apc", split_at=[at - 10])
    (issue,) = apc.read(folder).meta.issues
    assert issue.file.endswith("0000000001") and issue.offset == 10


def test_broken_captured_xml(tmp_path, vectors):
    folder = tmp_path / "x.apc"
    shutil.copytree(vectors / "apc" / "gatord-6.5-local.apc", folder)
    (folder / "captured.xml").write_text('<captured protocol="650"><counters><counter key=')
    rec = apc.read(folder)
    assert rec.meta.partial and len(rec.markers) == 31 and rec.meta.protocol is None
    assert any(i.file.endswith("captured.xml") and "broken XML" in i.message for i in rec.meta.issues)


def test_broken_events_xml_leaves_counters_unscaled(tmp_path, vectors):
    folder = tmp_path / "e.apc"
    shutil.copytree(vectors / "apc" / "synthetic-p950.apc", folder)
    (folder / "events.xml").write_text("<events><category>")
    rec = apc.read(folder)
    assert rec.meta.partial and not any(r.source.startswith("apc counter") for r in rec.meta.rails.values())
    assert "power1" not in set(rec.power["rail"])
    assert any(i.file.endswith("events.xml") for i in rec.meta.issues)


def test_stream_cut_mid_message(tmp_path):
    w = _writer()
    msg = wire.text(BASE + 4 * MS, 0, "cut")
    w.external(3, msg[:6])  # the capture stopped inside this message; the connection never closed
    folder = w.write(tmp_path / "m.apc")
    rec = apc.read(folder)
    assert rec.meta.partial and rec.markers["text"].tolist() == ["a", "b"]
    (issue,) = rec.meta.issues
    assert "stream ends inside a message" in issue.message and "connection was open" in issue.message
    data = (folder / "0000000000").read_bytes()
    assert data[issue.offset : issue.offset + 6] == msg[:6]


def test_bad_message_in_a_stream_keeps_the_messages_before(tmp_path):
    w = _writer()
    w.external(3, b"\x63\x00\x00\x00\x00")  # unknown message code 0x63
    w.close(3)
    rec = apc.read(w.write(tmp_path / "b.apc"))
    assert rec.meta.partial and rec.markers["text"].tolist() == ["a", "b"]
    assert "unknown message code 99" in _issues(rec)[0]


def test_non_monotonic_counter_time(tmp_path):
    w = _writer()
    at = len(w.data())
    w.block_counter([(0, 0), (0x6, 200)])  # earlier than the 1 ms sample before it
    rec = apc.read(w.write(tmp_path / "t.apc"))
    assert rec.meta.partial and len(rec.power) == 2
    (issue,) = rec.meta.issues
    assert issue.offset == at and "time goes backwards" in issue.message


def test_non_monotonic_annotation_time(tmp_path):
    w = _writer()
    w.external(3, wire.text(BASE, 0, "early"))
    rec = apc.read(w.write(tmp_path / "a.apc"))
    assert rec.meta.partial and rec.markers["text"].tolist() == ["a", "b", "early"]
    assert "message time goes backwards 1 time(s)" in _issues(rec)[0]


def test_damaged_block_counter_frame(tmp_path):
    w = _writer()
    at = len(w.data())
    w.frame(5, b"\x00\x00\x80\x01\x06", core=None)  # core 0, time 128, then key 6 without its value
    rec = apc.read(w.write(tmp_path / "d.apc"))
    assert rec.meta.partial and len(rec.power) == 1
    assert f"BLOCK_COUNTER frame at {at + 4}" in _issues(rec)[0]


def test_damaged_summary(tmp_path):
    w = CaptureWriter()
    w.frame(1, b"\x01\x0bXXXXXXXXXXX")  # canary overwritten
    w.external(3, wire.handshake(9, 9) + wire.text(BASE + 2 * MS, 0, "a"))
    rec = apc.read(w.write(tmp_path / "s.apc"))
    assert rec.meta.partial and rec.meta.clock_base_ns is None and len(rec.markers) == 1
    assert rec.meta.issues[0].offset == 0 and "damaged SUMMARY frame" in rec.meta.issues[0].message


def test_cli_exit_status_3_on_a_damaged_capture(tmp_path, capsys):
    w = _writer()
    w.raw(b"\x09\x00\x00\x00\x05")
    assert main(["inspect", "--json", str(w.write(tmp_path / "z.apc"))]) == 3  # EXIT_DAMAGED
    info = json.loads(capsys.readouterr().out)
    assert info["partial"] and info["markers"]["count"] == 2
    assert any("0000000000 at byte" in i and "runs 8 bytes past the end" in i for i in info["issues"])


@pytest.mark.parametrize("name", ["0000000000", "captured.xml"])
def test_folder_must_exist(tmp_path, name):
    with pytest.raises(apc.InputError):
        apc.read(tmp_path / "missing.apc" / name)


def test_frame_type_byte_above_127(tmp_path):
    """Found by the fuzzer: a frame whose first byte is >= 0x80 (a multi-byte or bad type)."""
    w = _writer()
    at = len(w.data())
    w.raw(b"\x03\x00\x00\x00\xc8\x01\x00")  # packed type 200
    w.raw(b"\x01\x00\x00\x00\xff")  # a packed integer cut short by its frame
    rec = apc.read(w.write(tmp_path / "t.apc"))
    assert rec.meta.partial and len(rec.markers) == 2
    assert [(i.offset, i.message) for i in rec.meta.issues] == [(at, "2 frames of unknown type (200, 255), 12 bytes")]
