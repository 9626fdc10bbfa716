"""The renderers and the ``report`` command, on marker and power logs written with known times."""

from __future__ import annotations

import json
import struct
from array import array
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image
from rich.console import Console

from annotate import mirror, wire
from streamline_bridge import ingest
from streamline_bridge.cli import main
from streamline_bridge.energy import COLUMNS, combine, energy_table
from streamline_bridge.model import Recording
from streamline_bridge.power.log import PowerLogWriter
from streamline_bridge.report import by_name, emit, files, plot, registry, table, trace

MS = 1_000_000
BASE = 5_000_000_000_000  # CLOCK_MONOTONIC_RAW of the logs' start
LAYERS = (
    ("conv1___Convolution", 3.0),
    ("fire2/squeeze1x1___Convolution", 0.5),
    ("fire2/expand1x1___Convolution", 1.5),
    ("pool10___Pooling", 2.0),
)
ITERATIONS = 4


def power_mw(t_ns: np.ndarray, rail: int) -> np.ndarray:
    """The known power: a ramp per rail (exactly integrable from 1 ms samples)."""
    return (2000.0 + 1000 * rail) + (3.0 - rail) * (t_ns - BASE) / MS


def layer_times() -> list[tuple[int, str, int, int]]:
    """(iteration, name, start, end) of every layer: 20 ms after the start, 4 ms between iterations."""
    out, t = [], BASE + 20 * MS
    for it in range(ITERATIONS):
        for name, d in LAYERS:
            out.append((it, name, t, t + int(d * MS)))
            t += int(d * MS)
        t += 4 * MS
    return out


def write_marker_log(path: Path) -> None:
    """A marker log as ``annotate`` writes it: iteration bookmarks, layer texts on channel 3, one record
    per iteration."""
    pid, tid = 4242, 4243
    meta = {**mirror.metadata(5), "monotonic_raw_ns": BASE}
    data = mirror.header(meta) + mirror.record(mirror.OPENED, 1, wire.handshake(tid, pid, 5))
    data += mirror.record(mirror.MESSAGES, 1, wire.name_channel(BASE, 3, 1, "layers"))
    for it in range(ITERATIONS):
        msgs = []
        for i, name, start, end in layer_times():
            if i == it:
                if name == LAYERS[0][0]:
                    msgs.append(wire.marker(start, f"iteration {it}"))
                msgs += [wire.text(start, 3, name), wire.text(end, 3, "")]
        data += mirror.record(mirror.MESSAGES, 1, b"".join(msgs))
    path.write_bytes(data + mirror.record(mirror.CLOSED, 1))


def write_power_log(path: Path, estimated: bool = False) -> None:
    """A power log as the sampler writes it: 1 ms samples of the known power on three rails."""
    rails = ["VDD_IN", "VDD_GPU", "VDD_CPU"]
    t = np.arange(BASE, BASE + 150 * MS, MS, dtype=np.int64)
    meta = {
        "monotonic_raw_ns": BASE,
        "clock": "CLOCK_MONOTONIC_RAW",
        "source": "cpu-model" if estimated else "ina3221x",
        "estimated": estimated,
        "requested_hz": 1000,
        "rails": [{"name": r, "unit": "mW"} for r in rails],
    }
    w = PowerLogWriter(path, meta)
    w.write_samples(
        array("q", t.tolist()),
        array("I", [0] * len(t)),
        [array("f", power_mw(t, i).astype(np.float32).tolist()) for i in range(3)],
        0,
    )
    w.write_trailer({"update_period_ns": {"VDD_IN": 7 * MS, "VDD_GPU": MS, "VDD_CPU": MS}})
    w.close()


@pytest.fixture
def logs(tmp_path: Path) -> tuple[Path, Path]:
    write_marker_log(tmp_path / "markers.sbm")
    write_power_log(tmp_path / "power.sbp")
    return tmp_path / "markers.sbm", tmp_path / "power.sbp"


def result_of(markers: Path, power: Path, **kw):
    rec = combine([ingest.read(markers), ingest.read(power)])
    return rec, energy_table(rec, **kw)


def write(name: str, res, path: Path, rec=None) -> list[Path]:
    """Write ``res`` with the registry's renderer ``name`` (as report does)."""
    return emit(by_name([r for r in registry() if r.renders(res)], name), res, rec, path)


def exact_mj(start: int, end: int, rail: int) -> float:
    """Integral of the ramp, computed in float32 like the log stores it (values are exact in float32)."""
    a, b = (start - BASE) / MS, (end - BASE) / MS
    return ((2000.0 + 1000 * rail) * (b - a) + (3.0 - rail) * (b * b - a * a) / 2) * 1e-3


def test_logs_give_the_exact_energies(logs):
    _, res = result_of(*logs, warmup=1)
    tab = res.table.set_index(["name", "rail"])
    for name, _d in LAYERS:
        key = name.split("___")[0]
        occ = [(s, e) for it, n, s, e in layer_times() if n == name and it >= 1]
        want = np.mean([exact_mj(s, e, 0) for s, e in occ])
        assert tab.loc[(key, "VDD_IN"), "energy_mj"] == pytest.approx(want, rel=1e-9)
        assert tab.loc[(key, "VDD_IN"), "n"] == ITERATIONS - 1
    assert res.meta["iteration_source"] == "markers" and res.meta["style"] == "channels"
    assert tab.loc[("fire2/squeeze1x1", "VDD_IN"), "layer_type"] == "Convolution"


def test_rich_table_shows_rows_in_execution_order_totals_and_warnings(logs):
    _, res = result_of(*logs)
    con = Console(record=True, width=220)
    table.render(res, con)
    text = con.export_text()
    names = ["conv1", "fire2/squeeze1x1", "fire2/expand1x1", "pool10"]
    assert [text.index(n + " ") for n in names] == sorted(text.index(n + " ") for n in names)
    assert "total" in text and "VDD_IN: energy per layer" in text and "VDD_CPU: energy" in text and " ±" in text
    assert "4 of 4 layers on VDD_IN are not resolved" in text  # 4 iterations are too few to say how sure
    assert "no idle power known" in text


def test_csv_reads_back_with_its_companion_metadata(logs, tmp_path):
    _, res = result_of(*logs, warmup=1)
    written = write("csv", res, tmp_path / "t.csv")
    assert written == [tmp_path / "t.csv", tmp_path / "t.meta.json"]
    back = pd.read_csv(tmp_path / "t.csv", keep_default_na=False, na_values=[""])
    assert list(back.columns) == list(COLUMNS)
    np.testing.assert_allclose(back["energy_mj"], res.table["energy_mj"], rtol=1e-12)
    assert back["name"].tolist() == res.table["name"].tolist()
    meta = json.loads((tmp_path / "t.meta.json").read_text())
    assert (
        meta["version"] == 2 and meta["files_version"] == 2 and meta["warmup"] == 1 and meta["warnings"] == res.warnings
    )
    assert meta["totals"][0]["rail"] == "VDD_IN"


def test_json_is_an_array_of_rows_that_pandas_reads_with_its_metadata_beside(logs, tmp_path):
    _, res = result_of(*logs)
    assert write("json", res, tmp_path / "t.json") == [tmp_path / "t.json", tmp_path / "t.meta.json"]
    rows = json.loads((tmp_path / "t.json").read_text())
    assert len(rows) == len(res.table) and list(rows[0]) == list(COLUMNS)
    assert rows[0]["dynamic_mj"] is None  # NaN is written as null
    assert rows[0]["energy_mj"] == pytest.approx(res.table["energy_mj"].iloc[0])
    back = pd.read_json(tmp_path / "t.json")  # the default orient reads it; "records" too
    assert list(back.columns) == list(COLUMNS) and back["name"].tolist() == res.table["name"].tolist()
    np.testing.assert_allclose(back["energy_mj"], res.table["energy_mj"], rtol=1e-12)
    pd.testing.assert_frame_equal(pd.read_json(tmp_path / "t.json", orient="records"), back)
    assert json.loads((tmp_path / "t.meta.json").read_text())["by"] == "layer"


def test_parquet_keeps_columns_types_and_metadata(logs, tmp_path):
    _, res = result_of(*logs, by="group")
    assert write("parquet", res, tmp_path / "t.parquet") == [tmp_path / "t.parquet"]  # metadata inside
    pt = pq.read_table(tmp_path / "t.parquet")
    meta = json.loads(pt.schema.metadata[files.PARQUET_KEY])
    assert meta["by"] == "group" and meta["rails"]["VDD_IN"]["sensor_model"] == "instant"
    back = pt.to_pandas()
    assert back["name"].unique().tolist() == ["conv1", "fire2", "pool10"]
    pd.testing.assert_series_equal(back["energy_mj"], res.table["energy_mj"])


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_plot_writes_a_valid_image(logs, tmp_path, suffix):
    _, res = result_of(*logs)
    [out] = write("plot", res, tmp_path / f"fig{suffix}")
    data = out.read_bytes()
    if suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        with Image.open(out) as im:
            assert im.size[0] > 500 and im.size[1] > 500
    else:
        assert b"<svg" in data[:1000] and b"conv1" in data
    with pytest.raises(ValueError, match="must end in"):
        plot.write(res, None, tmp_path / "fig.pdf")


def test_trace_has_slices_counters_instants_and_names(logs, tmp_path):
    rec, res = result_of(*logs)
    write("trace", res, tmp_path / "t.json", rec)
    doc = json.loads((tmp_path / "t.json").read_text())
    ev = doc["traceEvents"]
    assert doc["displayTimeUnit"] == "ms"
    slices = [e for e in ev if e["ph"] == "X"]
    assert len(slices) == ITERATIONS * len(LAYERS)
    first = slices[0]
    assert first["name"] == "conv1" and first["pid"] == 4242 and first["tid"] == 4243
    assert (
        first["ts"] == pytest.approx(20_000.0) and first["dur"]
    )  # time zero: the power record's start == pytest.approx(3_000.0)
    assert first["args"]["VDD_IN mJ"] == pytest.approx(exact_mj(BASE + 20 * MS, BASE + 23 * MS, 0), rel=1e-6)
    counters = {e["name"] for e in ev if e["ph"] == "C"}
    assert counters == {"VDD_IN", "VDD_GPU", "VDD_CPU"}  # each with the one argument mW: track "VDD_IN mW"
    vdd_in = [e for e in ev if e["ph"] == "C" and e["name"] == "VDD_IN"]
    assert len(vdd_in) == 150 and vdd_in[5]["args"]["mW"] == pytest.approx(2000 + 3.0 * 5)  # every change
    early = rec.power.assign(time_ns=rec.power["time_ns"] - 1_030 * MS)  # power 1.03 s earlier than the markers
    short = trace.build(res, Recording(rec.markers, early, rec.meta))
    # power from 1 s before the first slice (20 ms in): the samples from 50 ms on, and the one before
    assert len([e for e in short["traceEvents"] if e["ph"] == "C" and e["name"] == "VDD_IN"]) == 101
    assert [e["name"] for e in ev if e["ph"] == "i"] == [f"iteration {i}" for i in range(ITERATIONS)]
    names = {(e["name"], e["args"]["name"]) for e in ev if e["ph"] == "M"}
    assert ("thread_name", "thread 4243") in names and ("process_name", "power rails") in names


def test_estimated_power_is_said_in_every_output(tmp_path):
    write_marker_log(tmp_path / "m.sbm")
    write_power_log(tmp_path / "p.sbp", estimated=True)
    rec, res = result_of(tmp_path / "m.sbm", tmp_path / "p.sbp")
    assert res.estimated and res.table["estimated"].all()
    con = Console(record=True, width=220)
    table.render(res, con)
    text = con.export_text()
    assert (
        text.startswith("ESTIMATED power: VDD_IN, VDD_GPU, VDD_CPU (cpu-model)") and "VDD_GPU: energy per layer" in text
    )
    assert text.count("ESTIMATED") == 1  # said once, first
    write("csv", res, tmp_path / "t.csv")
    assert json.loads((tmp_path / "t.meta.json").read_text())["estimated"] is True
    assert pd.read_csv(tmp_path / "t.csv")["estimated"].all()
    write("json", res, tmp_path / "t.json")
    assert pd.read_json(tmp_path / "t.json")["estimated"].all()
    write("parquet", res, tmp_path / "t.parquet")
    assert json.loads(pq.read_table(tmp_path / "t.parquet").schema.metadata[files.PARQUET_KEY])["estimated"]
    write("plot", res, tmp_path / "f.svg")
    assert b"ESTIMATED" in (tmp_path / "f.svg").read_bytes()
    doc = trace.build(res, rec)
    assert doc["otherData"]["estimated_power"] and "VDD_IN (ESTIMATED)" in {
        e["name"] for e in doc["traceEvents"] if e["ph"] == "C"
    }


def test_report_command_writes_every_output(logs, tmp_path, capsys):
    m, p = logs
    rc = main(
        [
            "report",
            str(m),
            "--power",
            str(p),
            "--warmup",
            "1",
            "-o",
            str(tmp_path / "t.json"),
            "--plot",
            str(tmp_path / "f.png"),
            "--trace",
            str(tmp_path / "tr.json"),
            "--baseline",
            "none",
        ]
    )
    assert rc == 0
    err = capsys.readouterr().err
    assert "wrote" in err and "not resolved" in err
    meta = json.loads((tmp_path / "t.meta.json").read_text())
    assert meta["warmup"] == 1 and meta["baseline"] == "none"
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "tr.json").read_text())["displayTimeUnit"] == "ms"
    assert main(["report", str(m), "--power", str(p), "--by", "iteration"]) == 0
    out = capsys.readouterr().out
    assert "iteration 3" in out and "mean" in out


def test_report_command_errors_are_one_line_naming_the_input(logs, tmp_path, capsys):
    m, p = logs
    assert main(["report", str(p)]) == 3  # EXIT_DAMAGED: an input that cannot give a table
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(p) in err and "no markers" in err
    assert main(["report", str(m), "--power", str(p), "--offset", "100"]) == 0  # marker times are absolute
    assert main(["report", str(m), "--power", str(p), "-o", str(tmp_path / "x.txt"), "--format", "csv"]) == 0
    assert main(["report", str(m), "--power", str(p), "-o", str(tmp_path / "x.xlsx")]) == 2  # EXIT_USAGE
    assert "cannot tell the format" in capsys.readouterr().err
    assert not (tmp_path / "x.xlsx").exists()
    assert main(["report", str(m), "--power", str(p), "--warmup", "9"]) == 3
    assert "drops all 4 iteration(s)" in capsys.readouterr().err


def test_a_marker_log_cut_short_still_reports_and_exits_3(logs, tmp_path, capsys):
    m, p = logs
    data = m.read_bytes()
    cut = tmp_path / "cut.sbm"
    cut.write_bytes(data[: len(data) - struct.calcsize("<BII") - 40])  # into the last iteration's record
    rc = main(["report", str(cut), "--power", str(p), "-o", str(tmp_path / "t.csv")])
    assert rc == 3  # EXIT_DAMAGED, the partial table written
    assert pd.read_csv(tmp_path / "t.csv")["n"].tolist() == [ITERATIONS - 1] * 3 * len(LAYERS)
    assert "ends inside a record" in capsys.readouterr().err


def test_a_real_gatord_capture_gives_the_integral_of_its_power_counter_over_its_annotations(vectors):
    """gatord 6.5 capture: channel annotations of two threads and a fake VDD_GPU power counter (W)."""
    expected = json.loads((vectors / "apc/gatord-6.5-local.expected.json").read_text())
    start = expected["monotonic_raw_start"]
    power = [s for s in expected["block_counter_samples"] if s["counter"] == "filesystem_fake_power"]
    t = np.array([start + s["t_rel_ns"] for s in power], dtype=np.int64)
    p = np.array([s["value"] for s in power], dtype=np.float64)  # mW (milli-units of W)
    opened = {}
    want = {}
    for stream in expected["annotation_streams"]:
        for msg in stream["messages"]:
            if msg["name"] not in ("STR", "STR_COLOR"):
                continue
            key = (stream["tid"], msg["channel"])
            if key in opened and opened[key][0]:
                name, a = opened[key]
                xs = np.concatenate([[a], t[(t > a) & (t < msg["time"])], [msg["time"]]])
                ps = np.interp(xs, t, p)
                want[name] = float(np.sum((ps[1:] + ps[:-1]) * np.diff(xs) / 2)) * 1e-9
            opened[key] = (msg["text"], msg["time"])
    res = energy_table(ingest.read(vectors / "apc/gatord-6.5-local.apc"), baseline="none", sensor="instant")
    got = res.table.set_index("name")["energy_mj"].to_dict()
    assert set(got) == set(want) == {"conv1", "pool1", "hello", "worker"}
    for name, e in want.items():
        assert got[name] == pytest.approx(e, rel=1e-9)
    assert any("never closed" in w and "red text" in w for w in res.warnings)


def test_report_groups_from_a_json_mapping(logs, tmp_path, capsys):
    m, p = logs
    mapping = tmp_path / "groups.json"
    mapping.write_text(json.dumps({"conv1": "front", "fire2/squeeze1x1": "front"}))
    out = tmp_path / "g.json"
    assert main(["report", str(m), "--power", str(p), "--by", "group", "--groups", str(mapping), "-o", str(out)]) == 0
    names = [r["name"] for r in json.loads(out.read_text()) if r["rail"] == "VDD_IN"]
    assert names == ["front", "fire2", "pool10"]  # unmapped layers keep their prefix
    mapping.write_text("[1, 2]")
    assert main(["report", str(m), "--power", str(p), "--by", "group", "--groups", str(mapping)]) == 3
    assert "must be a JSON object" in capsys.readouterr().err
