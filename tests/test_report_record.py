"""End to end: ``record`` on a fake sensor whose power is a known function of time while a script
makes layer markers with ``annotate``, then ``report`` on the run folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from conftest import FIXTURES
from fake_sysfs import TX1_BASES, FakeSensor, tx1_ramps
from streamline_bridge import ingest
from streamline_bridge.cli import main
from streamline_bridge.energy import energy_table
from streamline_bridge.report import trace as trace_module

BASES = TX1_BASES  # mW at the start
SLOPE = 20  # mW per sensor update: a clock misaligned by 0.1 s would be 400 mW off
PERIOD_S = 0.005
LAYERS = ("conv1", "fire2/squeeze1x1", "pool10")
ITERATIONS = 5
SCRIPT = f"""
import annotate, time
annotate.name_channel(3, 1, "layers")
for i in range({ITERATIONS}):
    annotate.marker(f"iteration {{i}}")
    for name in {LAYERS!r}:
        with annotate.region(name, channel=3):
            time.sleep(0.02)
"""


def true_mj(fake: FakeSensor, base: int, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Integral of base + SLOPE k(t) mW, k(t) = floor((t - t0) / period): the sensor's value at every instant."""

    def integral(x):  # from t0 to x
        rel = (x - fake.t0).astype(np.float64)
        k = np.floor(rel / fake.period_ns)
        steps = fake.period_ns * k * (k - 1) / 2 + k * (rel - k * fake.period_ns)
        return base * rel + SLOPE * steps

    return (integral(end) - integral(start)) * 1e-9


def test_record_then_report_gives_the_fake_sensors_energy(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    with FakeSensor(FIXTURES / "sysfs/tx1-l4t28", tmp_path / "sys", PERIOD_S, tx1_ramps(SLOPE)) as fake:
        rc = main(
            [
                "record",
                "-o",
                str(run),
                "--idle",
                "0.2",
                "--sysfs-root",
                str(tmp_path / "sys"),
                "--",
                sys.executable,
                "-c",
                SCRIPT,
            ]
        )
    assert rc == 0
    rec = ingest.read(run)
    res = energy_table(rec, warmup=1)
    assert res.meta["iteration_source"] == "markers" and res.meta["iterations_used"] == ITERATIONS - 1
    tab = res.table
    assert tab["name"].unique().tolist() == list(LAYERS)
    assert (tab["n"] == ITERATIONS - 1).all() and (tab["time_ms"] >= 20.0).all()
    for rail, base in BASES.items():
        s = res.samples[res.samples["rail"] == rail]
        want = true_mj(fake, base, s["start_ns"].to_numpy(), s["end_ns"].to_numpy())
        # a sample shows the value of update k_seen <= k(t) (written late under load): the samples
        # themselves say how late, which bounds the error of the integral
        part = rec.power[rec.power["rail"] == rail]
        t, seen = part["time_ns"].to_numpy(), (part["power_mw"].to_numpy() - base) / SLOPE
        lag = np.max((t - fake.t0) // fake.period_ns - seen)
        assert lag >= 0
        bound = (lag + 1) * SLOPE * s["time_ms"].to_numpy() * 1e-3
        assert np.all(np.abs(s["energy_mj"].to_numpy() - want) <= bound)
        idle = res.meta["rails"][rail]["idle_mw"]
        assert base < idle < base + SLOPE * 1000
        np.testing.assert_allclose(s["dynamic_mj"], s["energy_mj"] - idle * s["time_ms"] * 1e-3, rtol=1e-9)
    out = tmp_path / "t.json"
    assert main(["report", str(run), "--warmup", "1", "-o", str(out), "--trace", str(tmp_path / "tr.json")]) == 0
    rows = json.loads(out.read_text())
    assert [r["name"] for r in rows[::3]] == list(LAYERS)
    meta = json.loads((tmp_path / "t.meta.json").read_text())
    assert meta["rails"]["VDD_IN"]["idle_mw"] == res.meta["rails"]["VDD_IN"]["idle_mw"]
    # the trace starts at the earliest event, the idle phase before the run: no negative time
    trace = json.loads((tmp_path / "tr.json").read_text())
    events = trace["traceEvents"]
    assert all(e["ts"] >= 0 for e in events if "ts" in e)
    phases = {e["name"]: e for e in events if e.get("cat") == "phase"}
    assert set(phases) == {"idle before", "run", "idle after"} and min(e["ts"] for e in events if "ts" in e) == 0
    first_slice = min(e["ts"] for e in events if e["ph"] == "X" and e.get("cat") != "phase")
    assert phases["idle before"]["ts"] < phases["run"]["ts"] < first_slice  # the idle phase is in, at >= 0
    base = trace["otherData"]["clock_base_ns"]
    assert base == min(rec.meta.extra["phases"]["idle_before"][0], int(rec.power["time_ns"].min()))
    assert_trace_event_format(events)
    rails = [e for e in events if e["ph"] == "C" and e["pid"] == trace_module.POWER_PID]
    assert sorted({e["name"] for e in rails}) == ["VDD_CPU", "VDD_GPU", "VDD_IN"]
    assert all(list(e["args"]) == ["mW"] for e in rails)  # one track per rail: "VDD_IN mW"


# Trace Event Format (Google's "Trace Event Format" document): fields every event of a phase must have
REQUIRED = {
    "X": {"name", "ph", "ts", "dur", "pid", "tid"},
    "C": {"name", "ph", "ts", "pid", "args"},
    "i": {"name", "ph", "ts", "pid", "s"},
    "M": {"name", "ph", "pid", "args"},
}


def assert_trace_event_format(events: list[dict]) -> None:
    """Every event has its phase's required fields with the right types; counters one numeric series per track."""
    for e in events:
        assert REQUIRED[e["ph"]] <= set(e), e
        assert isinstance(e["pid"], int) and isinstance(e.get("tid", 0), int)
        if "ts" in e:
            assert isinstance(e["ts"], (int, float)) and e["ts"] >= 0
        if e["ph"] == "X":
            assert e["dur"] >= 0
        if e["ph"] == "C":  # a counter: numbers only, one track per argument
            assert e["args"] and all(isinstance(v, (int, float)) for v in e["args"].values())
        if e["ph"] == "i":
            assert e["s"] in ("g", "p", "t")
        if e["ph"] == "M":
            assert e["name"] in ("process_name", "thread_name") and isinstance(e["args"]["name"], str)
