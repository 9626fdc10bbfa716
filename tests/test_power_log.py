"""The power log on disk: exact round trip, cuts at every byte, damaged records, the ingest reader."""

from __future__ import annotations

import json
import math
from array import array
from pathlib import Path

import numpy as np
import pytest

from streamline_bridge import ingest
from streamline_bridge.cli import main
from streamline_bridge.errors import InputError
from streamline_bridge.power.log import MAGIC, RECORD_HEAD_SIZE, PowerLogWriter, read_log

RAILS = [
    {"name": "VDD_IN", "unit": "mW", "files": ["/sys/x/in_power0_input"], "scale": 1.0, "extra": {"channel": 0}},
    {"name": "VDD_GPU", "unit": "mV*mA", "files": ["/sys/x/v", "/sys/x/i"], "scale": 1e-3, "extra": {}},
]
META = {
    "format": "streamline-bridge power log",
    "source": "ina3221x",
    "estimated": False,
    "config": {"devices": {"1-0040": {"running_mode": 1}}},
    "rails": RAILS,
    "requested_hz": 1000.0,
    "clock": "CLOCK_MONOTONIC_RAW",
    "monotonic_raw_ns": 1_000_000_000,
    "realtime_ns": 1_795_000_000_000_000_000,
    "host": "tx1",
}
V1 = Path(__file__).resolve().parents[1] / "fixtures" / "power-log" / "v1-ina3221x.sbp"


def _header_len(data: bytes) -> int:
    """magic, version, JSON length, JSON, CRC (docs/power-log.md)."""
    return 16 + int.from_bytes(data[12:16], "little") + 4


def write_log(path: Path, chunks: int = 3, per_chunk: int = 5, trailer: bool = True) -> tuple[list, list, list]:
    """A log whose times are 1 ms apart, VDD_IN = index, VDD_GPU = NaN every 4th sample."""
    w = PowerLogWriter(path, META)
    times, vin, vgpu = [], [], []
    for c in range(chunks):
        idx = range(c * per_chunk, (c + 1) * per_chunk)
        t = array("q", [1_000_000_000 + 1_000_000 * i for i in idx])
        d = array("I", [10_000 + i for i in idx])
        a = array("f", [float(i) for i in idx])
        b = array("f", [math.nan if i % 4 == 0 else 500.5 + (i // 7) for i in idx])
        w.write_samples(t, d, [a, b], missed=c)
        times += list(t)
        vin += list(a)
        vgpu += list(b)
    if trailer:
        w.write_trailer(
            {
                "samples": chunks * per_chunk,
                "achieved_hz": 1000.0,
                "update_period_ns": {"VDD_IN": 1_000_000, "VDD_GPU": 7_000_000},
                "error": None,
            }
        )
    w.close()
    return times, vin, vgpu


def test_round_trip_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "p.sbp"
    times, vin, vgpu = write_log(path)
    log = read_log(path)
    assert log.meta == META
    assert log.t_start.tolist() == times
    assert (log.t_end - log.t_start).tolist() == [10_000 + i for i in range(15)]
    assert log.power["VDD_IN"].tolist() == vin
    np.testing.assert_array_equal(log.power["VDD_GPU"], np.array(vgpu, dtype=np.float32).astype(np.float64))
    assert log.missed_ticks == 0 + 1 + 2 and log.trailer["achieved_hz"] == 1000.0
    assert log.truncated_at is None and not log.problems


def test_every_cut_reads_the_complete_records_before_it(tmp_path: Path) -> None:
    path = tmp_path / "p.sbp"
    write_log(path, chunks=2, per_chunk=3)
    data = path.read_bytes()
    header_len = _header_len(data)
    record_len = RECORD_HEAD_SIZE + 20 + 3 * (12 + 8)
    for cut in range(len(data)):
        if cut < header_len:
            with pytest.raises(ValueError):
                read_log(path, data[:cut])
            continue
        log = read_log(path, data[:cut])
        complete = min(2, (cut - header_len) // record_len)
        assert len(log.t_start) == 3 * complete
        assert log.trailer is None
        at_boundary = cut - header_len in (0, record_len, 2 * record_len)
        assert (log.truncated_at is None) == at_boundary


def test_a_damaged_record_is_skipped_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "p.sbp"
    write_log(path, chunks=3, per_chunk=4)
    data = bytearray(path.read_bytes())
    header_len = _header_len(data)
    record_len = RECORD_HEAD_SIZE + 20 + 4 * 20
    data[header_len + record_len + RECORD_HEAD_SIZE + 25] ^= 0xFF  # a byte inside the second record
    path.write_bytes(bytes(data))
    log = read_log(path)
    assert len(log.t_start) == 8 and log.trailer is not None
    assert log.problems == [(header_len + record_len, "record checksum mismatch (100 bytes)")]
    rec = ingest.read(path)
    assert rec.meta.partial and rec.meta.issues[0].offset == header_len + record_len


def test_ingest_gives_the_long_power_table_and_rail_facts(tmp_path: Path) -> None:
    path = tmp_path / "p.sbp"
    times, vin, _ = write_log(path)
    assert ingest.detect(path) == "power-log"
    rec = ingest.read(path)
    assert list(rec.power.columns) == ["time_ns", "time_rel_ns", "rail", "power_mw"]
    assert len(rec.power) == 30 and rec.markers.empty
    vdd_in = rec.power[rec.power["rail"] == "VDD_IN"]
    assert vdd_in["time_ns"].tolist() == [t + 10_000 + i for i, t in enumerate(times)]  # read completion
    assert vdd_in["time_rel_ns"].iloc[0] == times[0] + 10_000 - META["monotonic_raw_ns"]
    assert vdd_in["power_mw"].tolist() == vin
    assert rec.power[rec.power["rail"] == "VDD_GPU"]["power_mw"].isna().sum() == 4
    gpu = rec.meta.rails["VDD_GPU"]
    assert (gpu.unit, gpu.update_period_ns, gpu.estimated, gpu.source) == ("mV*mA", 7_000_000, False, "ina3221x")
    assert gpu.extra["files"] == ["/sys/x/v", "/sys/x/i"]
    assert rec.meta.clock_base_ns == META["monotonic_raw_ns"] and not rec.meta.partial
    assert rec.meta.extra["achieved_hz"] == 1000.0 and rec.meta.extra["sensor_config"] == META["config"]


def test_without_a_trailer_the_update_period_is_estimated_from_the_samples(tmp_path: Path) -> None:
    path = tmp_path / "p.sbp"
    write_log(path, chunks=10, per_chunk=10, trailer=False)  # VDD_GPU changes every 7 samples = 7 ms
    rec = ingest.read(path)
    assert rec.meta.partial and "no trailer" in rec.meta.issues[-1].message
    # change times are read completions: the read time grows by 1 ns per sample in this log
    assert rec.meta.rails["VDD_GPU"].update_period_ns == 7_000_007
    assert rec.meta.rails["VDD_IN"].update_period_ns == 1_000_001


def test_bad_input_is_one_input_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sbp"
    bad.write_bytes(MAGIC + b"\x03\x00\x00\x00" + b"\x00" * 8)
    with pytest.raises(InputError, match="version 3 is not supported"):
        ingest.read(bad, "power-log")
    bad.write_bytes(b"not a power log at all")
    with pytest.raises(InputError, match="not a power log"):
        ingest.read(bad, "power-log")


def test_inspect_summarises_a_power_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.sbp"
    write_log(path)
    assert main(["inspect", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "power-log" and info["power"]["rails"]["VDD_GPU"]["update_period_ms"] == 7.0
    assert info["extra"]["source"] == "ina3221x" and info["extra"]["achieved_hz"] == 1000.0
