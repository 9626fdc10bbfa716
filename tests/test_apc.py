"""ingest.apc on the recorded capture vectors: every field of their expected decodes."""

from __future__ import annotations

import json
import shutil

import pytest

from streamline_bridge import ingest
from streamline_bridge.cli import main
from streamline_bridge.ingest import apc

VECTORS = ("gatord-6.5-local", "synthetic-p950")


@pytest.fixture(params=VECTORS)
def case(request, vectors):
    name = request.param
    expected = json.loads((vectors / "apc" / f"{name}.expected.json").read_text())
    return vectors / "apc" / f"{name}.apc", expected


def test_detected_and_read_through_the_registry(case):
    path, _ = case
    assert ingest.detect(path) == "apc"
    assert ingest.detect(path / "0000000000") == "apc"
    rec = ingest.read(path)
    assert rec.meta.format == "apc" and not rec.meta.partial and rec.meta.issues == []


def test_protocol_keys_summary_and_frames(case):
    path, exp = case
    cap = apc.read_capture(path)
    meta = cap.recording.meta
    assert meta.protocol == exp["protocol"]
    assert {hex(k): v for k, v in meta.counter_keys.items()} == exp["keys"]
    clocks = cap.summary["clocks"]
    got = [clocks["realtime_ns"], clocks["boottime_ns"], clocks["monotonic_raw_ns"]]
    if clocks["monotonic_ns"] is not None:
        got.append(clocks["monotonic_ns"])
    assert got == exp["summary"]["clocks"]
    assert cap.summary["attributes"] == exp["summary"]["attrs"]
    assert meta.clock_base_ns == exp["monotonic_raw_start"]
    assert meta.extra["frames"] == exp["frame_counts"]


def test_every_block_counter_sample(case):
    path, exp = case
    got = apc.read_capture(path).counters
    rows = [
        {
            "t_rel_ns": int(r.t_rel_ns),
            "core": int(r.core),
            "tid": int(r.tid),
            "key": int(r.key),
            "counter": r.counter,
            "value": int(r.value),
        }
        for r in got.itertuples()
    ]
    assert rows == exp["block_counter_samples"]


def test_every_annotation_stream_and_message(case):
    path, exp = case
    rec = apc.read(path)
    streams = {s["id"]: s for s in rec.meta.extra["streams"]}
    assert sorted(streams) == sorted(s["external_id"] for s in exp["annotation_streams"])
    for es in exp["annotation_streams"]:
        info = streams[es["external_id"]]
        assert (info["magic"], info["tid"], info["pid"], info["messages"]) == (
            es["magic"],
            es["tid"],
            es["pid"],
            len(es["messages"]),
        )
        rows = rec.markers[rec.markers["stream"] == info["stream"]]
        assert (rows["tid"] == es["tid"]).all() and (rows["pid"] == es["pid"]).all()
        for (_, row), msg in zip(rows.iterrows(), es["messages"]):
            assert row["code"] == msg["code"]
            time = msg.get("time", msg.get("start"))
            if time is not None:
                assert row["time_ns"] == time
            if "time_rel_ns" in msg:
                assert row["time_rel_ns"] == msg["time_rel_ns"] == time - exp["monotonic_raw_start"]
            for field in ("channel", "group", "key", "core"):
                if field in msg:
                    assert row[field] == msg[field], (field, msg)
            if msg["code"] in (1, 2, 5, 6, 7):
                assert row["text"] == msg["text"]
                assert row["kind"] == (
                    "end"
                    if msg["code"] == 1 and not msg["text"]
                    else {1: "text", 2: "text", 5: "visual", 6: "marker", 7: "marker"}[msg["code"]]
                )
            if "color" in msg and msg["code"] != 8:
                assert row["color"] == msg["color"]["u32"]
            if "value" in msg or "activity" in msg:
                assert row["value"] == msg.get("value", msg.get("activity"))


def test_channel_and_group_names_reach_text_rows(vectors):
    m = apc.read(vectors / "apc" / "gatord-6.5-local.apc").markers
    conv1 = m[m["text"] == "conv1"].iloc[0]
    assert (conv1["channel_name"], conv1["group_name"], conv1["group"]) == ("layers", "Caffe", 1)


def test_power_counter_becomes_a_rail_in_mw(vectors):
    rec = apc.read(vectors / "apc" / "gatord-6.5-local.apc")
    # filesystem_fake_power: units W, multiplier 0.001; the file held 1500, then 1600, 1700, 2500, 1800 (mW)
    assert list(rec.power["rail"].cat.categories) == ["VDD_GPU"]
    p = rec.power
    assert list(dict.fromkeys(p["power_mw"])) == [1500.0, 1600.0, 1700.0, 2500.0, 1800.0]
    assert (p["time_ns"] - p["time_rel_ns"] == rec.meta.clock_base_ns).all()
    first_2500 = p.loc[p["power_mw"] == 2500.0, "time_rel_ns"].iloc[0]
    assert 2.0e9 < first_2500 < 2.1e9  # the README: 2500 written at +2.02 s
    info = rec.meta.rails["VDD_GPU"]
    assert info.unit == "W" and 0.29e9 < info.update_period_ns < 0.31e9  # written 0.3 s apart
    # memory counters are not power: summarised only
    assert "rail" not in rec.meta.extra["counters"]["Linux_meminfo_memfree"]


def test_hwmon_microwatts_scaled_to_mw(vectors):
    rec = apc.read(vectors / "apc" / "synthetic-p950.apc")
    hwmon = rec.power[rec.power["rail"] == "power1"]  # (the stream's own "Power" counter may be a rail too)
    assert hwmon["power_mw"].tolist() == pytest.approx([1234.567, 2500.0])
    assert hwmon["time_rel_ns"].tolist() == [0, 100_000_000]
    assert rec.meta.rails["power1"].source == "apc counter hwmon_ina226-i2c-1-40_0_3"
    assert rec.meta.extra["counters"]["hwmon_ina226-i2c-1-40_0_0"]["max"] == pytest.approx(5.012)


def test_meta_extra_for_inspect(vectors):
    extra = apc.read(vectors / "apc" / "gatord-6.5-local.apc").meta.extra
    assert extra["external"] == {"empty_frames": 1, "id_only_frames": 2, "close_records": 2}
    # 6.x writes BLOCK_COUNTER frames of type + core only (README); id-only EXTERNAL frames have a body: the id
    assert extra["header_only_frames"] == {"BLOCK_COUNTER": 2, "EXTERNAL": 1}
    assert extra["summary"]["clock_count"] == 3
    assert 5.0 < extra["duration_s"] < 5.1
    assert all(s["closed"] for s in extra["streams"])


def test_inspect_json_on_a_capture(vectors, capsys):
    assert main(["inspect", "--json", str(vectors / "apc" / "synthetic-p950.apc")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "apc" and info["protocol"] == 950 and info["clock_base_ns"] == 4_000_000_000_000
    assert info["markers"]["count"] == 7 and info["power"]["rails"]["power1"]["samples"] == 2
    assert info["extra"]["frames"] == {"SUMMARY": 2, "BLOCK_COUNTER": 2, "EXTERNAL": 3}


def test_inspect_table_on_a_capture(vectors, capsys):
    assert main(["inspect", str(vectors / "apc" / "gatord-6.5-local.apc")]) == 0
    out = capsys.readouterr().out
    assert "VDD_GPU" in out and "ANNOTATE 4" in out


def test_unfinished_capture_without_captured_xml(vectors, tmp_path):
    folder = tmp_path / "unfinished.apc"
    shutil.copytree(vectors / "apc" / "gatord-6.5-local.apc", folder)
    (folder / "captured.xml").unlink()
    rec = apc.read(folder)
    assert rec.meta.partial
    assert any("captured.xml missing" in i.message and "did not finish" in i.message for i in rec.meta.issues)
    assert len(rec.markers) == 31  # annotations need no key map
    assert rec.power.empty and rec.meta.extra["counters"]["key 0x5c"]["samples"] == 51
