"""The sampler's rails in a live Streamline session: the feed, a capture round trip, gatord or a rail going away.

A fake gatord (annotate_support.FakeGatord, on unique abstract names) receives what the
sampler process sends; the capture is built from those bytes with tests/apc_writer.py and read
back by our own reader. Every wait is on a condition, never on timing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from annotate import GREEN, RED, Client
from annotate.layers import ChannelMap
from annotate_support import FakeGatord, unique_prefix
from apc_writer import CaptureWriter
from conftest import FIXTURES
from fake_sysfs import TX1_BASES, TX1_IIO, FakeSensor, tx1_ramps
from helpers import wait_until
from streamline_bridge import ingest
from streamline_bridge.cli import main
from streamline_bridge.ingest import annotation_power, annotation_stream, marker_log
from streamline_bridge.power import Sampler
from streamline_bridge.power.log import read_log
from streamline_bridge.power.streamline_feed import KEY_BASE, MODIFIER, StreamlineFeed, rail_key, rail_keys

IIO, BASES = TX1_IIO, TX1_BASES
PERIOD_S = 0.007


def samples_past(s: Sampler, n: int) -> None:
    start = s.latest.get("samples", 0)
    wait_until(lambda: s.latest.get("samples", 0) >= start + n, 30, f"{n} more samples")


# --- the feed on its own -----------------------------------------------------------------------


def test_rail_keys_are_stable_distinct_and_far_from_small_app_keys() -> None:
    assert rail_key("VDD_GPU") == rail_key("VDD_GPU") == KEY_BASE | 0xD2C99E  # CRC-32 of the name
    keys = rail_keys(["VDD_IN", "VDD_GPU", "VDD_CPU"])
    assert len(set(keys)) == 3 and all(KEY_BASE <= k < KEY_BASE + (1 << 24) for k in keys)
    assert rail_keys(["A", "A"]) == [rail_key("A"), KEY_BASE | ((rail_key("A") + 1) & 0xFFFFFF)]


def test_decimation_averages_blocks_stamped_at_their_centre_and_a_lost_rail_is_marked(tmp_path: Path) -> None:
    log = tmp_path / "feed.sbm"
    client = Client(file=log, gatord=False, flush_interval=60)
    feed = StreamlineFeed(["VDD_IN", "VDD_GPU"], sample_hz=1000, rate_hz=250, client=client, lost_after_s=0.002)
    assert feed.block == 4 and feed.rate_hz == 250
    t0 = 5_000_000_000
    nan = float("nan")
    gpu = [100.0, 101.0, 102.0, 103.5, nan, nan, nan, nan, nan, nan, 120.0, 121.0]
    for i, g in enumerate(gpu):
        feed.add(t0 + i * 1_000_000, [2000.0 + i, g])
    feed.add(t0 + 12_000_000, [3000.0, 130.0])  # a last, partial block
    feed.close()
    rec = marker_log.read(log)
    m = rec.markers
    defs = m[m["kind"] == "counter_def"]
    assert defs["text"].tolist() == ["VDD_IN", "VDD_GPU"] and defs["key"].tolist() == rail_keys(["VDD_IN", "VDD_GPU"])
    values = m[m["kind"] == "counter_value"]
    gpu_key = rail_key("VDD_GPU")
    in_rows = values[values["key"] == rail_key("VDD_IN")]
    assert in_rows["time_ns"].tolist() == [t0 + 1_500_000, t0 + 5_500_000, t0 + 9_500_000, t0 + 12_000_000]
    assert in_rows["value"].tolist() == [2001_500, 2005_500, 2009_500, 3000_000]  # µW: modifier 1000
    gpu_rows = values[values["key"] == gpu_key]
    # block 1: all four; block 2: none (lost); block 3: back with 120 and 121 (NaNs left out); last block
    assert gpu_rows["value"].tolist() == [101_625, 120_500, 130_000]
    assert gpu_rows["time_ns"].tolist() == [t0 + 1_500_000, t0 + 9_500_000, t0 + 12_000_000]
    marks = m[m["kind"] == "marker"]
    assert marks["text"].tolist() == ["VDD_GPU lost", "VDD_GPU back"]
    assert marks["color"].tolist() == [RED, GREEN]
    assert feed.stats()["values_sent"] == 7 and feed.stats()["markers_sent"] == 2

    # the same file read as power: Power-titled counters in mW
    assert rec.meta.rails["VDD_GPU"].source == annotation_power.SOURCE
    gpu_mw = rec.power[rec.power["rail"] == "VDD_GPU"]["power_mw"].tolist()
    assert gpu_mw == pytest.approx([101.625, 120.5, 130.0])
    assert "annotation counters at" in rec.meta.extra["power_source"]


def test_power_counters_of_any_application_in_w_or_uw_with_a_modifier(tmp_path: Path) -> None:
    log = tmp_path / "app.sbm"
    c = Client(file=log, gatord=False, flush_interval=60)
    c.counter(1, "Power", "board", units="W", modifier=100)
    c.counter(2, "power", "dsp", units="uW")
    c.counter(3, "Power", "odd", units="dBm")  # not a power unit: not a rail
    c.counter(4, "Temperature", "soc", units="mW")  # not titled Power
    for i, k in enumerate((1, 2, 3, 4)):
        c.counter_value(k, 250, time=1_000 + i)
    c.close()
    rec = marker_log.read(log)
    assert sorted(rec.meta.rails) == ["board", "dsp"]
    p = rec.power.set_index("rail")["power_mw"]
    assert p["board"] == pytest.approx(2500.0) and p["dsp"] == pytest.approx(0.25)


# --- the sampler process, a fake gatord and a capture --------------------------------------------


@pytest.fixture
def gatord(monkeypatch: pytest.MonkeyPatch):
    prefix = unique_prefix()
    monkeypatch.setenv("STREAMLINE_ANNOTATE_SOCKET_PREFIX", prefix)
    monkeypatch.delenv("STREAMLINE_ANNOTATE_TCP", raising=False)
    g = FakeGatord(prefix)
    yield g
    g.stop()


def all_closed(gatord: FakeGatord, connections: int) -> bool:
    """``connections`` connections accepted, and each read to its end."""
    return len(gatord.closed) >= connections and all(e.is_set() for e in gatord.closed)


def capture_of(gatord: FakeGatord, connections: int, base_ns: int, folder: Path) -> Path:
    """A capture folder holding what ``gatord`` received, each connection one EXTERNAL stream."""
    wait_until(lambda: all_closed(gatord, connections), 20, "every connection closed")
    w = CaptureWriter()
    w.summary(monotonic_raw=base_ns)
    for ident, data in enumerate(gatord.conns, start=1):
        w.external_split(ident, bytes(data), [4096] * (len(data) // 4096))
        w.close(ident)
    return w.write(folder)


def test_counters_and_markers_round_trip_through_a_capture_and_report_uses_them(
    tmp_path: Path, gatord: FakeGatord, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "power.sbp"
    layer_types = {"conv1": "Convolution", "fire2/squeeze1x1": "Convolution", "fire2/concat": "Concat"}
    with FakeSensor(FIXTURES / "sysfs/tx1-l4t28", tmp_path / "sys", PERIOD_S, tx1_ramps()):
        s = Sampler(out, sysfs_root=tmp_path / "sys", rate_hz=1000, status_ms=20, streamline=True).start()
        app = Client(flush_interval=0.02)  # the profiled program, same gatord
        layers = ChannelMap("squeezenet", client=app)
        samples_past(s, 30)
        for _ in range(3):
            for name, kind in layer_types.items():
                with layers.region(name, kind):
                    samples_past(s, 15)
        samples_past(s, 30)
        app.close()
        stats = s.stop()
    log = read_log(out)
    assert log.trailer["error"] is None and len(log.t_end) == stats["samples"]
    sent = stats["streamline"]
    assert sent["values_sent"] == 3 * stats["samples"] and sent["block"] == 1 and sent["modifier"] == MODIFIER

    apc = capture_of(gatord, 2, log.meta["monotonic_raw_ns"], tmp_path / "run.apc")  # the sampler's and app's
    rec = ingest.read(apc)
    assert rec.meta.format == "apc" and not rec.meta.partial
    assert list(rec.meta.rails) == list(BASES)
    assert rec.meta.extra["power_source"].startswith("annotation counters at")
    for rail in BASES:
        assert 0.5 * PERIOD_S * 1e9 < rec.meta.rails[rail].update_period_ns < 1.5 * PERIOD_S * 1e9  # the sensor's
        part = rec.power[rec.power["rail"] == rail]
        logged = dict(zip(log.t_end.tolist(), log.power[rail].tolist()))
        assert len(part) == len(logged)  # every sample, at its own time, with its value
        assert [logged[t] for t in part["time_ns"]] == pytest.approx(part["power_mw"].tolist(), abs=5e-4)
        assert (part["time_rel_ns"] == part["time_ns"] - log.meta["monotonic_raw_ns"]).all()
    texts = rec.markers[rec.markers["kind"] == "text"]
    assert texts["text"].tolist() == [f"{n}___{t}" for n, t in layer_types.items()] * 3
    assert texts["channel_name"].tolist() == ["conv1", "fire2", "fire2"] * 3
    assert (texts["group_name"] == "squeezenet").all()

    capsys.readouterr()
    assert main(["report", str(apc)]) == 0
    err = capsys.readouterr().err
    assert "power: annotation counters at" in err and "VDD_GPU" in err

    assert main(["report", str(apc), "--power", str(out)]) == 0
    err = capsys.readouterr().err
    assert "power: ina3221x: VDD_IN, VDD_GPU, VDD_CPU" in err
    assert "note: VDD_IN, VDD_GPU, VDD_CPU from annotation counters" in err


def test_gatord_going_away_mid_run_loses_nothing_from_the_power_log_or_the_marker_file(
    tmp_path: Path, gatord: FakeGatord
) -> None:
    out, markers = tmp_path / "power.sbp", tmp_path / "markers.sbm"
    with FakeSensor(FIXTURES / "sysfs/tx1-l4t28", tmp_path / "sys", PERIOD_S, tx1_ramps()):
        s = Sampler(out, sysfs_root=tmp_path / "sys", rate_hz=1000, status_ms=20, streamline=True).start()
        app = Client(file=markers, flush_interval=0.02)
        for i in range(10):
            if i == 5:
                wait_until(
                    lambda: (
                        len(gatord.conns) == 2
                        and min(map(len, gatord.conns)) > 20
                        and max(map(len, gatord.conns)) > 1000
                    ),
                    20,
                    "both processes sending",
                )
                gatord.stop()
            app.marker(f"step {i}")
            samples_past(s, 20)
        app.close()
        stats = s.stop()
    log = read_log(out)
    assert log.trailer is not None and log.trailer["error"] is None and not log.problems
    assert len(log.t_start) == stats["samples"] == log.trailer["samples"]
    assert not any(np.isnan(log.power[r]).any() for r in BASES)
    received = [annotation_stream.decode(bytes(c)) for c in gatord.conns]
    counter_values = sum(int((d.code == 9).sum()) for d in received)
    assert 0 < counter_values < stats["streamline"]["values_sent"]  # gatord saw only part of the run
    rec = marker_log.read(markers)
    assert rec.markers[rec.markers["kind"] == "marker"]["text"].tolist() == [f"step {i}" for i in range(10)]


def test_a_rail_that_drops_out_stops_its_counter_with_a_red_marker(tmp_path: Path, gatord: FakeGatord) -> None:
    gpu = f"{IIO}/in_power1_input"
    out = tmp_path / "power.sbp"
    with FakeSensor(FIXTURES / "sysfs/tx1-l4t28", tmp_path / "sys", PERIOD_S, tx1_ramps()) as fake:
        s = Sampler(
            out, sysfs_root=tmp_path / "sys", rate_hz=1000, status_ms=20, gone_after_s=60, streamline=True
        ).start()
        samples_past(s, 50)
        fake.vanish(gpu)
        wait_until(lambda: not fake.path(gpu).exists(), 20, "the GPU file gone")
        # a status whose own reading of the GPU failed: every sample counted after it is NaN
        wait_until(lambda: s.latest.get("mw", {}).get("VDD_GPU", 0.0) is None, 20, "a failed GPU read")
        samples_past(s, 300)  # well past the feed's 0.1 s
        s.stop()
    wait_until(lambda: all_closed(gatord, 1), 20, "the sampler's connection closed")
    (stream,) = [annotation_stream.decode(bytes(c)) for c in gatord.conns]
    m = stream.markers()
    lost = m[m["kind"] == "marker"]
    assert lost["text"].tolist() == ["VDD_GPU lost"] and lost["color"].tolist() == [RED]
    at = int(lost["time_ns"].iloc[0])
    values = m[m["kind"] == "counter_value"]
    gpu_t = values[values["key"] == rail_key("VDD_GPU")]["time_ns"]
    in_t = values[values["key"] == rail_key("VDD_IN")]["time_ns"]
    assert len(gpu_t) >= 50 and (gpu_t < at).all()  # nothing after the marker
    assert (in_t > at).sum() >= 100  # the other rails go on
    log = read_log(out)
    assert np.isnan(log.power["VDD_GPU"]).sum() >= 300 and log.trailer["error"] is None


def test_a_streamline_rate_of_zero_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "record",
            "--streamline",
            "--streamline-rate",
            "0",
            "-o",
            str(tmp_path / "run"),
            "--sysfs-root",
            str(FIXTURES / "sysfs/tx1-l4t28"),
            "--",
            "true",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "--streamline-rate must be above 0" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError):
        Sampler(tmp_path / "p.sbp", streamline=True, streamline_rate_hz=-1)
