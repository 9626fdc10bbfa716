"""End to end through a live fake sensor: ``record`` on a fake TX1 tree whose power files follow a sensor
model (tests/sensor_sim.py) while a script marks a known schedule, then ``report`` with no options."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES
from fake_sysfs import FakeSensor
from sensor_sim import register_functions, workload_script
from streamline_bridge import ingest
from streamline_bridge import simulate as sim
from streamline_bridge.cli import main
from streamline_bridge.energy import energy_table, sensors
from streamline_bridge.sensor_model import parse

IIO = "bus/i2c/drivers/ina3221x/1-0040/iio_device"
FILES = {f"{IIO}/in_power0_input": "VDD_IN", f"{IIO}/in_power1_input": "VDD_GPU", f"{IIO}/in_power2_input": "VDD_CPU"}
LEAD_S = 2.5  # the schedule starts this long after the fake sensor: record's idle phase and python's start first


@pytest.mark.parametrize("spec,period_ms", [("window:5ms", 5.0), ("ina3221:0x7127", 6.6)])
def test_record_then_report_recovers_the_layers_power_through_the_sensor_model(
    tmp_path: Path, capsys, spec, period_ms
) -> None:
    layers = (
        ("a", 30.0, {"VDD_IN": 3000.0, "VDD_GPU": 1500.0, "VDD_CPU": 900.0}),
        ("b", 60.0, {"VDD_IN": 6000.0, "VDD_GPU": 3500.0, "VDD_CPU": 700.0}),
        ("c", 20.0, {"VDD_IN": 4000.0, "VDD_GPU": 800.0, "VDD_CPU": 2000.0}),
    )
    schedule = sim.Schedule(
        layers,
        13,
        {"VDD_IN": 2000.0, "VDD_GPU": 500.0, "VDD_CPU": 600.0},
        gap_ms=0.0,
        pause_ms=(5.0, 15.0),
        lead_ms=LEAD_S * 1e3,
        time_jitter=0.0,
        power_jitter=0.0,
    )
    truth = sim.run(schedule, start_ns=0)
    period_ns = int(period_ms * 1e6)
    functions = register_functions(truth, FILES, parse(spec), period_ns, int(truth.end_ns // period_ns) + 400)
    run = tmp_path / "run"
    with FakeSensor(FIXTURES / "sysfs/tx1-l4t28", tmp_path / "sys", period_ns / 1e9, functions) as fake:
        script = workload_script(truth, fake.t0)
        rc = main(
            [
                "record",
                "-o",
                str(run),
                "--idle",
                "0.3",
                "--sysfs-root",
                str(tmp_path / "sys"),
                "--",
                sys.executable,
                "-c",
                script,
            ]
        )
    assert rc == 0, capsys.readouterr().err
    out = tmp_path / "t.json"
    assert main(["report", str(run), "--warmup", "1", "-o", str(out)]) == 0
    rows = json.loads(out.read_text())
    meta = json.loads((tmp_path / "t.meta.json").read_text())
    assert len(rows) == 9 and {r["method"] for r in rows} <= {"sequence", "integrate"}
    assert meta["rails"]["VDD_IN"]["refresh_ms"] == pytest.approx(period_ms, rel=0.01)
    # the truth over the intervals actually marked (the script wakes up late under load, so its markers
    # can miss the scheduled power steps): the scheduled power's mean over them
    res = energy_table(ingest.read(run), warmup=1)
    samples = res.samples.dropna(subset=["energy_mj"])
    for r in rows:
        s = samples[(samples["name"] == r["name"]) & (samples["rail"] == r["rail"])]
        a = s["start_ns"].to_numpy(np.float64) - fake.t0
        b = s["end_ns"].to_numpy(np.float64) - fake.t0
        mean_mw = sensors.means(truth.edges, truth.power[r["rail"]], a, b)
        want = float(np.sum(mean_mw * (b - a)) / np.sum(b - a)) / 1e3  # W
        scheduled = dict((n, mw) for n, _, mw in layers)[r["name"]][r["rail"]] / 1e3  # W
        # the markers of a script woken late under load straddle the power steps: the truth lies between
        # the layer's scheduled power and the scheduled power's mean over its marked intervals
        tol = (r["power_w_ci"] or 0) + 0.03 * want
        assert r["n"] == 12
        assert min(want, scheduled) - tol <= r["power_w"] <= max(want, scheduled) + tol, (r, want, scheduled)
    assert np.mean([r["resolved"] for r in rows]) >= 0.5
