"""Output conventions of report (stdout, -o -, --meta, -q/-v, exit statuses, --help) and time-only tables."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import test_report
from streamline_bridge import ingest
from streamline_bridge.cli import COMMANDS, build_parser, main
from streamline_bridge.commands.outputs import table_of
from streamline_bridge.energy import COLUMNS, combine
from streamline_bridge.energy.timetable import power_gap, time_table
from streamline_bridge.model import Recording
from test_report import ITERATIONS, LAYERS, MS, layer_times

logs = test_report.logs  # the marker and power logs of known times (fixture)


def test_format_without_output_goes_to_stdout_and_writes_no_file(logs, tmp_path, capsys, monkeypatch) -> None:
    m, p = logs
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(m), "--power", str(p), "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    table = pd.read_csv(io.StringIO(out))
    assert list(table.columns) == list(COLUMNS) and len(table) == 3 * len(LAYERS)
    assert "warning:" in err and "warning" not in out  # diagnostics on stderr
    assert main(["report", str(m), "--power", str(p), "-o", "-", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3 * len(LAYERS) and rows[0]["rail"] == "VDD_IN"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["markers.sbm", "power.sbp"]  # no "-", no "-.meta.json"


def test_meta_goes_beside_a_real_file_or_to_meta_file_never_beside_a_stream(logs, tmp_path, capsys) -> None:
    m, p = logs
    assert (
        main(["report", str(m), "--power", str(p), "-o", "-", "--format", "csv", "--meta", str(tmp_path / "m.json")])
        == 0
    )
    assert json.loads((tmp_path / "m.json").read_text())["by"] == "layer"
    assert main(["report", str(m), "--power", str(p), "-o", "/dev/null", "--format", "csv"]) == 0
    assert not Path("/dev/null.meta.json").exists()  # a device is a stream, not a file to put metadata beside
    assert main(["report", str(m), "--power", str(p), "-o", str(tmp_path / "t.txt")]) == 0
    assert "VDD_IN: energy per layer" in (tmp_path / "t.txt").read_text() and not (tmp_path / "t.meta.json").exists()


def test_quiet_and_verbose(logs, tmp_path, capsys) -> None:
    m, p = logs
    assert main(["report", str(m), "--power", str(p), "-o", str(tmp_path / "t.csv")]) == 0
    assert "wrote" in capsys.readouterr().err
    assert main(["report", "-q", str(m), "--power", str(p), "-o", str(tmp_path / "t.csv")]) == 0
    err = capsys.readouterr().err
    assert "wrote" not in err and "power:" not in err and "warning:" in err  # -q keeps warnings
    assert main(["report", "-q", str(m), "--power", str(p), "--warmup", "-1"]) == 2
    assert "--warmup must be 0 or more" in capsys.readouterr().err  # errors even with -q


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_shows_its_exit_statuses_and_verbosity(command, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "exit status:" in out and "3  damaged or unusable input" in out and "2  bad arguments" in out
    assert "-q, --quiet" in out and "-v, --verbose" in out


def test_markers_without_power_give_the_time_table(logs, tmp_path, capsys) -> None:
    m, _ = logs
    rec = ingest.read(m)
    assert power_gap(rec) == "no power samples"
    res = time_table(rec, warmup=1, reason=power_gap(rec))
    assert res.meta["time_only"] and res.meta["rails"] == {} and res.warnings[0] == "time only: no power samples"
    for name, ms in LAYERS:
        row = res.table.set_index("name").loc[name.split("___")[0]]
        assert row["time_ms"] == pytest.approx(ms) and row["n"] == ITERATIONS - 1 and row["time_ms_sd"] == 0
        assert np.isnan(row["energy_mj"]) and row["rail"] == ""
    assert res.table["share"].sum() == pytest.approx(1.0)
    assert res.totals["time_ms"].iloc[0] == pytest.approx(sum(ms for _, ms in LAYERS))
    groups = time_table(rec, by="group").table.set_index("name")["time_ms"]
    assert groups.to_dict() == pytest.approx({"conv1": 3.0, "fire2": 2.0, "pool10": 2.0})  # fire2: 0.5 + 1.5
    iterations = time_table(rec, by="iteration").table
    assert len(iterations) == ITERATIONS and iterations["iteration"].tolist() == list(range(ITERATIONS))

    assert main(["report", str(m), "--plot", str(tmp_path / "t.svg"), "--trace", str(tmp_path / "t.json")]) == 0
    out = capsys.readouterr().out
    assert "time per layer" in out and "time only: no power samples" in out and out.count("time only") == 1
    assert b"no power" in (tmp_path / "t.svg").read_bytes()
    trace = json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    slices = [e for e in trace if e["ph"] == "X"]
    assert len(slices) == ITERATIONS * len(LAYERS) and min(e["ts"] for e in trace if "ts" in e) == 0
    assert slices[0]["dur"] == pytest.approx(3000.0) and not [e for e in trace if e["ph"] == "C"]


def test_power_that_does_not_overlap_the_markers_gives_the_time_table_and_one_note(logs, capsys) -> None:
    m, p = logs
    power = ingest.read(p)
    late = Recording(
        ingest.read(m).markers, power.power.assign(time_ns=power.power["time_ns"] + 1000 * 10**9), power.meta
    )
    gap = power_gap(late)
    assert gap.startswith("the power record (6000.000..6000.149 s) does not overlap the markers (5000.000..5000.060 s")
    options = build_parser().parse_args(["report", "x", "--warmup", "1"])
    res, _ = table_of(late, options)  # what report computes
    assert res.meta["time_only"] and res.warnings[0] == f"time only: {gap}"
    first = [e - s for it, n, s, e in layer_times() if n == LAYERS[0][0] and it >= 1]
    assert res.table["time_ms"].iloc[0] == pytest.approx(np.mean(first) / MS)
    assert power_gap(combine([ingest.read(m), power])) is None
    assert main(["report", str(m), "--power", str(p)]) == 0  # overlapping: energies
    assert "VDD_IN: energy per layer" in capsys.readouterr().out
