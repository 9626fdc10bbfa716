"""ingest.apc on captures built by tests/apc_writer.py: the cases the recorded vectors lack."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotate import wire
from apc_writer import CaptureWriter
from streamline_bridge.ingest import apc, apc_counter_frames, apc_frames

BASE = 4_000_000_000_000
MS = 1_000_000


def _stream(tid: int, texts: list[str], t0: int = BASE + 10 * MS, protocol: int = 5) -> bytes:
    out = wire.handshake(tid, 100, protocol)
    for i, s in enumerate(texts):
        out += wire.text(t0 + i * MS, 1, s)
    return out


def _power_writer(**kw) -> CaptureWriter:
    w = CaptureWriter(**kw)
    w.counter_key(0x4, "hwmon_ina3221_0_1", title="Power", name="VDD_IN", units="W", multiplier="0.000001")
    w.counter_key(0x6, "filesystem_gpu_rail", title="Power", name="VDD_GPU", units="mW", multiplier="1")
    w.counter_key(0x8, "hwmon_ina3221_0_2", title="Power", name="VDD_CPU")  # no units: hwmon power is W
    w.counter_key(0xA, "hwmon_ina3221_0_3", title="Energy", name="E", units="J", multiplier="0.000001")
    return w


def test_four_clock_summary_after_perf_attrs_and_bulk_frames_skipped(tmp_path):
    w = _power_writer()
    for _ in range(3):
        w.raw(bytes.fromhex("02000000 0b00"))  # header-only PERF_ATTRS, before the Summary (9.x)
    w.perf_data(1, bytes(1000))
    w.block_counter([(0, 5 * MS), (0x4, 2_000_000), (0x6, 1500), (0x8, 3), (0xA, 77)])  # before the Summary too
    w.summary(monotonic_raw=BASE, boottime=BASE + 7, monotonic=BASE + 500_000)
    w.perf_data(0, bytes(5000))
    w.frame(apc_frames.SCHED_TRACE, bytes.fromhex("01 00 01 00"), core=0)
    rec = apc.read(w.write(tmp_path / "p.apc"))
    assert rec.meta.clock_base_ns == BASE and not rec.meta.partial
    assert rec.meta.extra["summary"]["clock_count"] == 4
    assert rec.meta.extra["summary"]["clocks"]["monotonic_ns"] == BASE + 500_000
    assert rec.meta.extra["frames"] == {
        "SUMMARY": 1,
        "BLOCK_COUNTER": 1,
        "SCHED_TRACE": 1,
        "PERF_ATTRS": 3,
        "PERF_DATA": 2,
    }
    assert rec.meta.extra["skipped_bytes"]["PERF_DATA"] == 2 * 6 + 1000 + 5000
    assert rec.meta.extra["header_only_frames"] == {"PERF_ATTRS": 3}
    p = {r: float(v) for r, v in zip(rec.power["rail"], rec.power["power_mw"])}
    assert p == {"VDD_IN": 2000.0, "VDD_GPU": 1500.0, "VDD_CPU": 3000.0}  # µW, mW and W
    assert rec.power["time_ns"].tolist() == [BASE + 5 * MS] * 3
    assert rec.meta.rails["VDD_IN"].unit == "W" and rec.meta.rails["VDD_GPU"].unit == "mW"
    assert "rail" not in rec.meta.extra["counters"]["hwmon_ina3221_0_3"]  # energy is not power


def test_block_counter_tid_core_keys_and_many_timestamps_per_frame(tmp_path):
    w = _power_writer(protocol=650)
    w.summary(monotonic_raw=BASE)
    w.block_counter([(0, 1), (0x4, 10), (1, 55), (0x4, 11), (2, 3), (0x4, 12), (0, 2), (0x4, 13)], core=2)
    cap = apc.read_capture(w.write(tmp_path / "b.apc"))
    c = cap.counters
    assert list(zip(c["t_rel_ns"], c["tid"], c["core"], c["value"])) == [
        (1, 0, 2, 10),
        (1, 55, 2, 11),
        (1, 55, 3, 12),
        (2, 0, 2, 13),
    ]


def test_gator_ko_counter_and_legacy_annotate_frames(tmp_path):
    w = _power_writer(protocol=640)
    w.summary(monotonic_raw=BASE)
    w.counter([(10 * MS, 0, 0x6, 900), (20 * MS, 0, 0x6, 950)])
    red = wire.RED.to_bytes(4, "little")  # 1B FF 00 00
    name_group = b"\x1c\x08" + (1).to_bytes(4, "little") + (5).to_bytes(2, "little") + b"Caffe"
    name_chan = (
        b"\x1c\x07" + (3).to_bytes(4, "little") + (1).to_bytes(4, "little") + (6).to_bytes(2, "little") + b"layers"
    )
    text = b"\x1c\x06" + (3).to_bytes(4, "little") + (9).to_bytes(2, "little") + red + b"conv1"
    end = b"\x1c\x06" + (3).to_bytes(4, "little") + (0).to_bytes(2, "little")
    marker = b"\x1c\x05" + (7).to_bytes(2, "little") + b"epoch 1"
    visual = b"\x1c\x04" + (3).to_bytes(2, "little") + b"img" + (2).to_bytes(4, "little") + b"\x89P"
    stream = name_group + name_chan + text
    w.legacy_annotate([(0, 77, 30 * MS, stream[:7]), (1, 88, 31 * MS, red + b"hello\n")])
    w.legacy_annotate([(0, 77, 32 * MS, stream[7:] + end), (0, 77, 40 * MS, marker + visual + b"plain\n")])
    w.legacy_annotate([(0, 77, 0, b""), (0, 77, 50 * MS, b"again\n")])  # close, then a new stream of tid 77
    rec = apc.read(w.write(tmp_path / "ko.apc"))
    assert not rec.meta.partial, rec.meta.issues
    assert rec.power["power_mw"].tolist() == [900.0, 950.0]
    assert rec.power["time_rel_ns"].tolist() == [10 * MS, 20 * MS]
    m = rec.markers
    got = list(zip(m["tid"], m["kind"], m["time_rel_ns"], m["channel"], m["text"], m["color"]))
    na = m["color"].iloc[0]
    assert got == [
        (77, "name_group", 30 * MS, na, "Caffe", na),
        (77, "name_channel", 32 * MS, 3, "layers", na),  # starts at stream byte 13, in the second chunk
        (77, "text", 32 * MS, 3, "conv1", wire.RED),
        (77, "end", 32 * MS, 3, "", na),
        (77, "marker", 40 * MS, na, "epoch 1", na),
        (77, "visual", 40 * MS, na, "img", na),
        (77, "text", 40 * MS, 0, "plain", na),
        (88, "text", 31 * MS, 0, "hello", wire.RED),
        (77, "text", 50 * MS, 0, "again", na),
    ]
    assert (m["time_ns"] - m["time_rel_ns"] == BASE).all()
    conv1 = m[m["text"] == "conv1"].iloc[0]
    assert (conv1["channel_name"], conv1["group"], conv1["group_name"]) == ("layers", 1, "Caffe")
    streams = [s for s in rec.meta.extra["streams"] if s["source"] == "ANNOTATE"]
    assert [(s["tid"], s["messages"], s["closed"]) for s in streams] == [(77, 7, True), (88, 1, False), (77, 1, False)]
    assert m["stream"].tolist() == [0] * 7 + [1, 2]


@pytest.mark.parametrize("split", range(1, 60, 7))
def test_messages_split_across_chunks_and_interleaved_connections(tmp_path, split):
    a = _stream(11, ["conv1", "", "pool1", ""])
    b = _stream(12, ["worker", ""], t0=BASE + 20 * MS)
    w = CaptureWriter()
    w.summary(monotonic_raw=BASE)
    w.external(5, a[:split])
    w.external(5)  # id-only (6.x)
    w.frame(apc_frames.EXTERNAL)  # empty (6.x)
    w.external(6, b[:split])
    w.external(5, a[split:])
    w.close(5)
    w.external(5, _stream(13, ["reused"]))  # the id is reused by a new connection after its close
    w.external(6, b[split:])
    rec = apc.read(w.write(tmp_path / "s.apc"))
    assert not rec.meta.partial, rec.meta.issues
    streams = rec.meta.extra["streams"]
    assert [(s["id"], s["tid"], s["messages"], s["closed"]) for s in streams] == [
        (5, 11, 4, True),
        (6, 12, 2, False),
        (5, 13, 1, False),
    ]
    m = rec.markers
    assert list(zip(m["stream"], m["text"])) == [
        (0, "conv1"),
        (0, ""),
        (0, "pool1"),
        (0, ""),
        (1, "worker"),
        (1, ""),
        (2, "reused"),
    ]
    assert m["time_rel_ns"].tolist()[:2] == [10 * MS, 11 * MS]


def test_other_external_streams_are_skipped_with_a_note(tmp_path):
    w = CaptureWriter()
    w.summary(monotonic_raw=BASE)
    w.external(3, b"FTRACE 2\n" + bytes(100))
    w.external(4, b"MALI_GRAPHICS 1\n\x01\x02")
    w.external(5, _stream(9, ["x"]))
    rec = apc.read(w.write(tmp_path / "f.apc"))
    assert not rec.meta.partial and len(rec.markers) == 1
    assert [s["magic"] for s in rec.meta.extra["streams"]] == ["FTRACE 2", "MALI_GRAPHICS 1", "ANNOTATE 5"]
    assert sum("not an annotation stream" in i.message for i in rec.meta.issues) == 2


@pytest.mark.parametrize("cut", [1, 100, 187, 250])
def test_several_data_files_are_continuations(tmp_path, cut):
    w = _power_writer()
    w.summary(monotonic_raw=BASE)
    for i in range(10):
        w.block_counter([(0, i * 100 * MS), (0x6, 1000 + i)])
        w.external(7, _stream(9, [f"m{i}"]) if i == 0 else wire.text(BASE + (10 + i) * MS, 1, f"m{i}"))
    one = apc.read(w.write(tmp_path / "one.apc"))
    many = apc.read(w.write(tmp_path / "many.apc", split_at=[cut, cut + 40]))
    assert many.meta.extra["data_files"] == ["0000000000", "0000000001", "0000000002"]
    assert many.markers.equals(one.markers) and many.power.equals(one.power)
    assert len(many.markers) == 10 and len(many.power) == 10 and not many.meta.partial


def test_capture_without_summary_keeps_relative_counter_times(tmp_path):
    w = _power_writer()
    w.block_counter([(0, 5 * MS), (0x6, 1500)])
    w.external(1, _stream(2, ["a"]))
    rec = apc.read(w.write(tmp_path / "n.apc"))
    assert rec.meta.clock_base_ns is None
    assert rec.power["time_rel_ns"].tolist() == [5 * MS]
    assert rec.markers["time_rel_ns"].isna().all() and rec.markers["time_ns"].tolist() == [BASE + 10 * MS]
    assert any("no Summary frame" in i.message for i in rec.meta.issues)


def test_missing_data_file_is_an_input_error(tmp_path):
    (tmp_path / "empty.apc").mkdir()
    with pytest.raises(apc.InputError, match="no data file"):
        apc.read(tmp_path / "empty.apc")


_pair = st.tuples(st.integers(0, 300), st.integers(-(1 << 63), (1 << 63) - 1))


@settings(max_examples=200, deadline=None)
@given(frames=st.lists(st.tuples(st.integers(0, 7), st.lists(_pair, max_size=12)), max_size=12))
def test_bulk_block_counter_decode_equals_frame_by_frame(frames):
    """The numpy decode of all frames gives what the frame-by-frame decode gives, or defers to it."""
    w = CaptureWriter()
    for core, pairs in frames:
        w.block_counter(pairs, core=core)
    data = w.data()
    flat = apc_frames.walk(data).frames[apc_frames.BLOCK_COUNTER]
    each = apc_counter_frames.CounterColumns()
    apc_counter_frames._block_counters_each(data, flat, each)
    bulk = apc_counter_frames._block_counters_bulk(data, flat)
    if each.errors:
        assert bulk is None
        return
    if bulk is None:  # only values of 10 bytes are left to the scalar decoder
        assert any(abs(v) >= 1 << 62 for _, pairs in frames for _, v in pairs)
        return
    columns, backwards = bulk
    expected = each.arrays()
    assert {k: v.tolist() for k, v in columns.items()} == {k: v.tolist() for k, v in expected.items()}
    assert backwards == each.backwards


def test_bulk_decode_used_on_the_vectors(vectors):
    data = (vectors / "apc" / "gatord-6.5-local.apc" / "0000000000").read_bytes()
    flat = apc_frames.walk(data).frames[apc_frames.BLOCK_COUNTER]
    columns, backwards = apc_counter_frames._block_counters_bulk(data, flat)
    assert len(columns["value"]) == 153 and backwards == []


def test_counters_xml_of_9x_captures(tmp_path):
    w = CaptureWriter()
    w.summary(monotonic_raw=BASE)
    folder = w.write(tmp_path / "c.apc")
    (folder / "counters.xml").write_text(
        '<counters supports-multiple-ebs="yes"><counter name="ARMv8_Cortex_A57_cnt0"/>'
        '<counter name="hwmon_ina3221_0_1"/></counters>'
    )
    assert apc.read(folder).meta.extra["counters_offered"] == 2
