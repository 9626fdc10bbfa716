"""The sampler process against a moving fake sensor: values, update periods, missing samples, crashes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES, ROOT
from fake_sysfs import TX1_BASES as BASES
from fake_sysfs import TX1_IIO as IIO
from fake_sysfs import FakeSensor, tx1_ramps
from helpers import wait_until
from streamline_bridge import ingest
from streamline_bridge.power import Sampler, SamplerError
from streamline_bridge.power.log import PowerLogWriter, read_log
from streamline_bridge.power.sampling import Config, _Loop, _Stop
from streamline_bridge.power.source import Rail, Source

PERIOD_S = 0.007


def test_samples_are_the_sensor_values_at_or_before_their_time(tmp_path: Path) -> None:
    out = tmp_path / "power.sbp"
    with FakeSensor(FIXTURES / "sysfs/tx1-l4t28", tmp_path / "sys", PERIOD_S, tx1_ramps()) as fake:
        with Sampler(out, sysfs_root=tmp_path / "sys", rate_hz=1000) as s:
            assert s.info["source"] == "ina3221x" and s.info["rails"] == list(BASES)
            wait_until(lambda: s.latest.get("samples", 0) >= 200)
            time.sleep(0.3)
    log = read_log(out)
    assert log.trailer is not None and log.trailer["error"] is None and not log.problems
    assert log.meta["clock"] == "CLOCK_MONOTONIC_RAW" and log.meta["requested_hz"] == 1000
    assert log.meta["config"]["devices"]["1-0040"]["running_mode"] == 1
    assert len(log.t_start) == log.trailer["samples"] >= 200
    assert np.all(np.diff(log.t_start) > 0) and np.all(log.t_end >= log.t_start)
    for rail, base in BASES.items():
        values = log.power[rail]
        assert not np.isnan(values).any()
        k = values - base
        assert np.all(k == np.round(k)) and k.min() >= 0
        assert np.all(np.diff(k) >= 0), f"{rail}: an older value after a newer one"
        assert np.all(fake.earliest_ns(k.astype(np.int64)) <= log.t_end), f"{rail}: a value seen before it existed"
        period = log.trailer["update_period_ns"][rail]
        assert 0.5 * PERIOD_S * 1e9 < period < 1.5 * PERIOD_S * 1e9
    rec = ingest.read(out)
    assert rec.meta.format == "power-log" and not rec.meta.partial
    assert list(rec.meta.rails) == list(BASES)
    assert 0.5 * PERIOD_S * 1e9 < rec.meta.rails["VDD_IN"].update_period_ns < 1.5 * PERIOD_S * 1e9
    assert rec.meta.extra["achieved_hz"] > 0 and rec.meta.extra["source"] == "ina3221x"
    assert len(rec.power) == 3 * len(log.t_end)


def test_the_record_covers_everything_between_start_and_stop(tmp_path: Path) -> None:
    out = tmp_path / "power.sbp"
    with FakeSensor(FIXTURES / "sysfs/tx1-l4t28", tmp_path / "sys", PERIOD_S, tx1_ramps()):
        s = Sampler(out, sysfs_root=tmp_path / "sys", rate_hz=1000, status_ms=20).start()
        after_start = time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW)
        wait_until(lambda: s.latest.get("samples", 0) >= 50)  # a few updates: the sensor's period is known
        before_stop = time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW)
        s.stop()
    log = read_log(out)
    assert log.t_start[0] == s.info["first_ns"] <= after_start
    for rail in BASES:  # each rail's next update after the request is in: the energy up to it is known
        values = log.power[rail]
        assert log.t_start[np.flatnonzero(values[1:] != values[:-1])[-1]] > before_stop


def test_a_file_missing_for_a_while_gives_nan_and_sampling_goes_on(tmp_path: Path) -> None:
    gpu = f"{IIO}/in_power1_input"
    out = tmp_path / "power.sbp"
    with FakeSensor(FIXTURES / "sysfs/tx1-l4t28", tmp_path / "sys", PERIOD_S, tx1_ramps()) as fake:
        with Sampler(out, sysfs_root=tmp_path / "sys", rate_hz=1000, gone_after_s=60.0, status_ms=20) as s:
            wait_until(lambda: s.latest.get("samples", 0) >= 100)
            vanished_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW)
            fake.vanish(gpu)
            # a status whose own reading of the GPU failed: every sample counted after it is NaN
            # (a status merely received after the unlink may have been sent before it)
            wait_until(lambda: s.latest["mw"]["VDD_GPU"] is None)
            n0 = s.latest["samples"]
            wait_until(lambda: s.latest["samples"] > n0 + 100)
            fake.restore(gpu)
            wait_until(lambda: s.latest["mw"]["VDD_GPU"] is not None)  # read again: every later sample too
            n1 = s.latest["samples"]
            wait_until(lambda: s.latest["samples"] > n1 + 100)
    log = read_log(out)
    gpu_mw, in_mw = log.power["VDD_GPU"], log.power["VDD_IN"]
    missing = np.isnan(gpu_mw)
    assert missing[n0 : n0 + 100].all(), "the missing file was not seen as missing samples"
    assert not np.isnan(in_mw).any()
    assert np.all(log.t_end[missing] >= vanished_ns), "NaN before the file went away"
    assert not missing[n1:].any(), "the file came back but the sampler did not reopen it"
    assert log.trailer["missing"]["VDD_GPU"] == int(missing.sum())
    assert log.trailer["error"] is None


def test_a_rail_gone_for_good_is_marked_failed_naming_the_file_and_the_others_go_on(tmp_path: Path) -> None:
    cpu = f"{IIO}/in_power2_input"
    out = tmp_path / "power.sbp"
    with FakeSensor(FIXTURES / "sysfs/tx1-l4t28", tmp_path / "sys", PERIOD_S, tx1_ramps()) as fake:
        s = Sampler(out, sysfs_root=tmp_path / "sys", rate_hz=1000, gone_after_s=0.3, status_ms=20).start()
        wait_until(lambda: s.latest.get("samples", 0) > 100)  # counted, not hoped for from 0.3 s on a busy machine
        fake.vanish(cpu)
        wait_until(lambda: "VDD_CPU" in s.failed_rails)
        n = s.latest["samples"]
        wait_until(lambda: s.latest["samples"] > n + 200)  # the others go on
        assert s.running
        stats = s.stop()
    assert list(s.failed_rails) == ["VDD_CPU"] and "in_power2_input" in s.failed_rails["VDD_CPU"]
    assert stats["failed_rails"] == s.failed_rails and stats["error"] is None
    log = read_log(out)
    assert log.trailer is not None and log.trailer["failed_rails"] == s.failed_rails
    assert len(log.t_start) == log.trailer["samples"] > n + 200
    assert not np.isnan(log.power["VDD_IN"]).any() and not np.isnan(log.power["VDD_GPU"]).any()
    assert np.isnan(log.power["VDD_CPU"][n:]).all()


def test_garbage_in_a_rail_is_marked_failed_and_when_every_rail_fails_the_run_ends(tmp_path: Path) -> None:
    tree = tmp_path / "sys"
    shutil.copytree(FIXTURES / "sysfs/tx1-l4t28", tree)
    out = tmp_path / "power.sbp"
    s = Sampler(out, sysfs_root=tree, rate_hz=1000, gone_after_s=0.1, status_ms=20).start()
    wait_until(lambda: s.latest.get("samples", 0) > 50)
    (tree / IIO / "in_power0_input").write_text("garbage\n")
    wait_until(lambda: "VDD_IN" in s.failed_rails)
    assert s.running and "no number" in s.failed_rails["VDD_IN"] and "in_power0_input" in s.failed_rails["VDD_IN"]
    for i in (1, 2):
        (tree / IIO / f"in_power{i}_input").write_text("x\n")
    wait_until(lambda: not s.running)
    with pytest.raises(SamplerError, match="every rail failed") as err:
        s.stop()
    assert "in_power1_input" in str(err.value) and "in_power2_input" in str(err.value)
    log = read_log(out)
    assert log.trailer is not None and set(log.trailer["failed_rails"]) == set(BASES)
    assert s.stats["samples"] == len(log.t_start) > 50
    assert log.power["VDD_GPU"][:50].tolist() == [96.0] * 50


def test_sigkill_keeps_every_completed_chunk(tmp_path: Path) -> None:
    out = tmp_path / "power.sbp"
    s = Sampler(out, sysfs_root=FIXTURES / "sysfs/tx1-l4t28", rate_hz=1000, chunk_ms=50).start()
    wait_until(lambda: s.latest.get("samples", 0) >= 100)
    os.kill(s.info["pid"], signal.SIGKILL)
    with pytest.raises(SamplerError, match="SIGKILL"):
        s.stop()
    log = read_log(out)
    assert log.trailer is None and len(log.t_start) >= 100
    assert log.power["VDD_IN"].tolist() == [2079.0] * len(log.t_start)
    rec = ingest.read(out)
    assert rec.meta.partial and any("no trailer" in i.message for i in rec.meta.issues)
    assert len(rec.power) == 3 * len(log.t_start)


def test_the_sampler_stops_by_itself_when_its_parent_dies(tmp_path: Path) -> None:
    out = tmp_path / "power.sbp"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from streamline_bridge.power import Sampler\n"
            f"s = Sampler({str(out)!r}, sysfs_root={str(FIXTURES / 'sysfs/nano-l4t32')!r}).start()\n"
            "print(s.info['pid'], flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        text=True,
    )
    assert parent.stdout is not None
    int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    wait_until(lambda: out.exists() and read_log(out).trailer is not None)
    assert read_log(out).trailer["stop_reason"] == "parent closed the pipe"


def test_an_unavailable_source_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SamplerError, match="no RAPL zone"):
        Sampler(tmp_path / "p.sbp", source="rapl", sysfs_root=FIXTURES / "sysfs/tx1-l4t28").start()


def test_estimated_source_is_marked_in_the_log_and_the_recording(tmp_path: Path) -> None:
    out = tmp_path / "power.sbp"
    with Sampler(out, source="cpu-model", rate_hz=200, options={"cpu_window_ms": 20}) as s:
        wait_until(lambda: s.latest.get("samples", 0) >= 20)
    rec = ingest.read(out)
    assert rec.estimated and rec.meta.rails["CPU (estimated)"].estimated
    assert "ESTIMATED" in rec.meta.extra["warning"]
    assert rec.power["power_mw"].between(2000, 2000 + 1500 * os.cpu_count()).all()  # from the first sample on


def test_rapl_power_from_a_wrapping_energy_counter(tmp_path: Path) -> None:
    zone = "class/powercap/intel-rapl:0"
    max_uj = 100_000  # the counter wraps every 100 ms
    functions = {f"{zone}/energy_uj": lambda k: (7_000 * k) % max_uj}  # 7000 µJ per 7 ms = 1000 mW
    out = tmp_path / "power.sbp"
    fake = FakeSensor(FIXTURES / "sysfs/rapl-x86", tmp_path / "sys", PERIOD_S, functions)
    fake.path(f"{zone}/max_energy_range_uj").write_text(f"{max_uj}\n")
    with fake:
        with Sampler(out, source="rapl", sysfs_root=tmp_path / "sys", rate_hz=1000, status_ms=20) as s:
            wait_until(lambda: s.latest.get("samples", 0) >= 300)
    log = read_log(out)
    p = log.power["package-0"]
    p = p[~np.isnan(p)]
    assert len(p) > 100 and p.min() > 0, "the wrap gave a negative or zero power"
    assert 700 < np.median(p) < 1400


class ScriptedSource(Source):
    """One rail whose reads follow a script: a few failed reads, then the same value as before."""

    name = "scripted"

    def __init__(self, script: list[float], stop: _Stop):
        super().__init__([Rail("R", "mW")])
        self.script, self.stop, self.n = script, stop, 0

    def open(self) -> None:
        pass

    def read(self) -> list[float]:
        v = self.script[min(self.n, len(self.script) - 1)]
        self.n += 1
        if self.n > len(self.script):
            self.stop.reason = "script done"
        self.errors[0] = "scripted failure" if v != v else None
        return [v]


def test_a_rail_that_recovers_with_its_old_value_is_not_declared_gone(tmp_path: Path) -> None:
    stop = _Stop()
    script = [5.0] * 10 + [float("nan")] * 3 + [5.0] * 3000  # 0.3 s at 10 kHz after the failures
    src = ScriptedSource(script, stop)
    writer = PowerLogWriter(tmp_path / "p.sbp", {"rails": [src.rails[0].to_dict()]})
    loop = _Loop(
        Config(output="", rate_hz=10_000, gone_after_s=0.05, chunk_ms=10),
        src,
        writer,
        lambda e: None,
        {"event": "ready"},
    )
    assert loop.run(stop) is None
    loop.flush()
    # the warm-up read and the samples take len(script) + 1 reads, the last one asking to stop; then
    # one more sample, begun after the request
    assert loop.missing == [3] and loop.samples == len(script) + 1
    assert len(loop.changes[0]) == 0  # 5 -> (failures) -> 5 is no change of value


FILE_LIMIT = """
import json, resource, signal, sys, time
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # inherited by the sampler: its disk is "full"
from streamline_bridge.power import Sampler, SamplerError
s = Sampler(sys.argv[1], sysfs_root=sys.argv[2], rate_hz=1000, chunk_ms=10).start()
deadline = time.monotonic() + 30
while s.running and time.monotonic() < deadline:
    time.sleep(0.02)
try:
    s.stop()
except SamplerError as exc:
    print(json.dumps({"error": str(exc), "stats": s.stats}))
"""


def test_a_log_that_cannot_grow_stops_the_sampler_cleanly_with_whole_records(tmp_path: Path) -> None:
    out = tmp_path / "power.sbp"
    r = subprocess.run(
        [sys.executable, "-c", FILE_LIMIT, str(out), str(FIXTURES / "sysfs/tx1-l4t28")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and r.stdout, r.stderr
    said = json.loads(r.stdout)
    assert said["error"] == f"{out}: cannot write the power log: File too large (the power sampler stopped)"
    assert "Traceback" not in r.stderr
    log = read_log(out)
    assert not log.problems and log.truncated_at is None and log.trailer is None  # whole records, no room for more
    assert said["stats"]["samples"] == len(log.t_start) > 0 and out.stat().st_size <= 20_000
