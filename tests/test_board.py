"""Board state from the fixture trees (TX1, Xavier, Orin, plain Linux), in run folders, reports and ``sensors``."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES
from streamline_bridge import board, ingest
from streamline_bridge.cli import main

BOARDS = FIXTURES / "board"


def state(name: str) -> dict:
    return board.snapshot(str(BOARDS / name / "sys"), str(BOARDS / name / "proc"))


def test_tx1_l4t28() -> None:
    s = state("tx1-l4t28")
    assert (s["model"], s["l4t"], s["kernel"]) == ("NVIDIA Jetson TX1", "R28.2.1", "4.4.38-tegra")
    assert s["cpu_model"] == "ARMv8 Processor rev 1 (v8l)" and s["nvpmodel"] is None  # the TX1 has no nvpmodel
    assert [c["governor"] for c in s["cpus"]] == ["interactive"] * 4 and s["cpus"][0]["hw_max_khz"] == 1734000
    assert s["devfreq"] == [
        {
            "name": "57000000.gpu",
            "kind": "gpu",
            "governor": "nvhost_podgov",
            "cur_hz": 76800000,
            "min_hz": 76800000,
            "max_hz": 998400000,
        }
    ]
    assert s["emc_hz"] == 1600000000 and s["thermal_c"]["CPU-therm"] == 33.5
    assert s["jetson_clocks"] is False  # CPU min 102 MHz < max


def test_xavier_l4t32_mode_15w_with_jetson_clocks() -> None:
    s = state("xavier-l4t32")
    assert s["l4t"] == "R32.4.3" and s["nvpmodel"] == {"id": 2, "name": "MODE_15W"}
    assert [c["online"] for c in s["cpus"]] == [True] * 4 + [False] * 4
    assert s["jetson_clocks"] is True and s["emc_hz"] == 1331200000
    assert s["devfreq"][0]["kind"] == "gpu" and s["devfreq"][0]["max_hz"] == 675750000
    line = board.summary(s)
    assert "nvpmodel 2 (MODE_15W)" in line and "jetson_clocks on" in line and "CPU 4/8 online 1190 MHz" in line


def test_orin_l4t36_maxn() -> None:
    s = state("orin-l4t36")
    assert s["l4t"] == "R36.2.0" and s["nvpmodel"] == {"id": 0, "name": "MAXN"} and s["kernel"] == "5.15.122-tegra"
    assert s["cpu_model"] == "Cortex-A78AE" and len(s["cpus"]) == 12 and s["jetson_clocks"] is False
    assert s["emc_hz"] == 3199000000 and s["devfreq"][0]["name"] == "17000000.ga10b"


def test_plain_linux_has_no_jetson_facts() -> None:
    s = state("linux-x86")
    assert s["l4t"] is None and s["nvpmodel"] is None and s["jetson_clocks"] is None and s["model"] is None
    assert s["cpu_model"].startswith("Intel(R) Core(TM) i7-8650U") and s["devfreq"] == [] and s["emc_hz"] is None
    assert board.summary(s).startswith("Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz, kernel 6.1.0-18-amd64, CPU 4/4")


def test_an_empty_tree_gives_nothing_and_never_raises(tmp_path: Path) -> None:
    s = board.snapshot(str(tmp_path / "sys"), str(tmp_path / "proc"))
    assert s["cpus"] == [] and s["kernel"] is None and s["thermal_c"] == {}
    assert board.summary(s) == "unknown board" and board.summary(None) == "board state not recorded"


def test_differences_name_the_settings_that_differ_not_the_moment_values() -> None:
    xavier = state("xavier-l4t32")
    assert board.differences(xavier, xavier) == []
    warmer = json.loads(json.dumps(xavier))
    warmer["thermal_c"]["GPU-therm"] += 10
    warmer["cpus"][0]["cur_khz"] = 1
    assert board.differences(xavier, warmer) == []  # temperatures and current clocks move by themselves
    other = json.loads(json.dumps(xavier))
    other["nvpmodel"] = {"id": 0, "name": "MAXN"}
    other["cpus"][1]["max_khz"] = 2265600
    diff = board.differences(xavier, other)
    assert len(diff) == 2 and diff[0].startswith("nvpmodel: ") and "MAXN" in diff[0] and diff[1].startswith("cpu1: ")
    assert board.differences(None, xavier) == []


def test_sensors_board_json_and_table(capsys) -> None:
    root = BOARDS / "orin-l4t36"
    assert (
        main(["sensors", "--board", "--json", "--sysfs-root", str(root / "sys"), "--proc-root", str(root / "proc")])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["nvpmodel"]["name"] == "MAXN"
    assert main(["sensors", "--board", "--sysfs-root", str(root / "sys"), "--proc-root", str(root / "proc")]) == 0
    out = capsys.readouterr().out
    assert "board: NVIDIA Jetson AGX Orin Developer Kit, L4T R36.2.0" in out and "17000000.ga10b (gpu)" in out


@pytest.fixture
def tx1_tree(tmp_path: Path) -> Path:
    """A TX1 with its INA3221 power sensors and its board files: tree/sys, tree/proc, tree/etc."""
    tree = tmp_path / "tree"
    shutil.copytree(BOARDS / "tx1-l4t28", tree)
    shutil.copytree(FIXTURES / "sysfs/tx1-l4t28", tree / "sys", dirs_exist_ok=True)
    return tree


def test_record_keeps_the_board_state_at_start_and_end_and_force_replaces_a_run(
    tx1_tree: Path, tmp_path: Path, capsys
) -> None:
    run = tmp_path / "run"
    args = [
        "record",
        "-o",
        str(run),
        "--idle",
        "0",
        "--sysfs-root",
        str(tx1_tree / "sys"),
        "--proc-root",
        str(tx1_tree / "proc"),
        "--",
        sys.executable,
        "-c",
        CHILD,
    ]
    assert main(args) == 0
    err = capsys.readouterr().err
    echoed = next(line for line in err.splitlines() if "running " in line).split("running ", 1)[1]
    assert shlex.split(echoed) == [sys.executable, "-c", CHILD]  # quoted: a shell gives back the same argv
    m = json.loads((run / "manifest.json").read_text())
    assert m["board"]["start"]["model"] == "NVIDIA Jetson TX1" and m["board"]["end"]["l4t"] == "R28.2.1"
    samples = ingest.read(run).meta.extra["board"]["samples"]  # board.jsonl: the first line at the start
    assert samples and samples[0]["thermal_c"]["CPU-therm"] == 33.5 and samples[0]["cpu_khz"]["0"] == 1734000
    assert m["board"]["end"]["time_ns"] >= m["board"]["start"]["time_ns"]
    first_start = m["started_monotonic_raw_ns"]
    assert main(args) == 2  # a run is there: bad arguments, nothing touched
    assert "--force" in capsys.readouterr().err
    assert json.loads((run / "manifest.json").read_text())["started_monotonic_raw_ns"] == first_start
    force = [*args[:3], "--force", *args[3:]]
    (run / "notes.txt").write_text("mine")
    assert main(force) == 2  # not only a run's files: --force refuses before deleting anything
    assert "holds other files than a run's (notes.txt)" in capsys.readouterr().err
    assert json.loads((run / "manifest.json").read_text())["started_monotonic_raw_ns"] == first_start
    assert (run / "notes.txt").read_text() == "mine"
    (run / "notes.txt").unlink()
    assert main(force) == 0 and main(force) == 0  # a run replaced, twice in a row
    assert json.loads((run / "manifest.json").read_text())["started_monotonic_raw_ns"] > first_start
    assert sorted(os.listdir(run)) == ["board.jsonl", "manifest.json", "markers.sbm", "power.sbp"]
    capsys.readouterr()
    assert main(["report", str(run), "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("order,name,") and "conv1" in out  # the table, not the board, on stdout as CSV
    assert main(["report", str(run), "--trace", str(tmp_path / "t.json")]) == 0
    assert "board: NVIDIA Jetson TX1, L4T R28.2.1, kernel 4.4.38-tegra" in capsys.readouterr().out
    events = json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    temperatures = [e for e in events if e["ph"] == "C" and e["name"] == "temperature °C"]
    assert temperatures and temperatures[0]["args"]["CPU-therm"] == 33.5 and temperatures[0]["ts"] >= 0
    assert [e for e in events if e["name"] == "clock MHz"][0]["args"] == {"57000000.gpu": 76.8, "EMC": 1600.0}


CHILD = "import annotate; annotate.marker('iteration 0'); annotate.text('conv1', channel=3); annotate.end(channel=3)"


def test_board_log_writes_once_a_period_and_reads_back_what_a_crash_left(tmp_path: Path) -> None:
    root = BOARDS / "orin-l4t36"
    log = board.BoardLog(tmp_path / "b.jsonl", str(root / "sys"), str(root / "proc"), period_s=1.0)
    assert [log.poll(t) for t in (0, 500_000_000, 999_999_999, 1_000_000_000, 1_500_000_000, 2_100_000_000)] == [
        True,
        False,
        False,
        True,
        False,
        True,
    ]
    log.close()
    assert not log.poll(10**12)  # closed: nothing more
    lines = board.read_log(tmp_path / "b.jsonl")
    assert len(lines) == 3 and lines[0]["devfreq_hz"] == {"17000000.ga10b": 306000000}
    assert lines[0]["emc_hz"] == 3199000000 and len(lines[0]["cpu_khz"]) == 12
    with open(tmp_path / "b.jsonl", "a") as f:
        f.write('{"time_ns": 1, "cpu_')  # cut short
    assert len(board.read_log(tmp_path / "b.jsonl")) == 3 and board.read_log(tmp_path / "none") == []
