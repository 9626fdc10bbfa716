"""ingest.tegrastats on the verbatim sample lines of every release format (fixtures/tegrastats)."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FIXTURES
from helpers import read_or_one_line_error
from streamline_bridge import ingest
from streamline_bridge.errors import InputError
from streamline_bridge.ingest import tegrastats

T = FIXTURES / "tegrastats"


def _rails(rec) -> dict[str, list[float]]:
    return {str(r): part["power_mw"].tolist() for r, part in rec.power.groupby("rail", observed=True, sort=False)}


@pytest.mark.parametrize(
    "name, expected",
    [
        (
            "tx2.log",
            {
                "VDD_IN": [1383, 14025],
                "VDD_CPU": [153, 2209],
                "VDD_GPU": [76, 6854],
                "VDD_SOC": [384, 1371],
                "VDD_WIFI": [364, 19],
                "VDD_DDR": [192, 2702],
            },
        ),
        ("nano.log", {"POM_5V_IN": [933], "POM_5V_GPU": [0], "POM_5V_CPU": [84]}),
        ("agx-xavier.log", {"GPU": [1155], "CPU": [385], "SOC": [2502], "CV": [0], "VDDRQ": [192], "SYS5V": [2692]}),
        (
            "agx-orin-jp5.log",
            {"VDD_GPU_SOC": [2390], "VDD_CPU_CV": [796], "VIN_SYS_5V0": [3522], "VDDQ_VDD2_1V8AO": [301]},
        ),  # the two NC (not connected) rails left out
        ("agx-orin-jp7.log", {"VDD_GPU_SOC": [5139], "VDD_CPU_CV": [3268], "VIN_SYS_5V0": [5500]}),
    ],
)
def test_rails_of_every_release_format(name, expected):
    assert ingest.detect(T / name) == "tegrastats"
    rec = ingest.read(T / name)
    assert _rails(rec) == expected  # current values only, never summed, no RAM/EMC/APE/NVENC/temperatures
    assert all(r.unit == "mW" and r.source == "tegrastats" for r in rec.meta.rails.values())


def test_unconnected_rails_parsed_but_not_read():
    parsed = tegrastats.parse_line((T / "agx-orin-jp5.log").read_text())
    assert parsed.rails["NC"] == 0.0 and parsed.rails["NC#2"] == 0.0
    rec = tegrastats.read_log(T / "agx-orin-jp5.log")
    assert any("2 rail(s) named NC (not connected) left out" in i.message for i in rec.meta.issues)


def test_tx2_second_line_keeps_nvenc_out():
    line = (T / "tx2.log").read_text().splitlines()[1]
    parsed = tegrastats.parse_line(line)
    assert "NVENC" not in parsed.rails and "APE" not in parsed.rails and "RAM" not in parsed.rails
    assert parsed.averages["VDD_IN"] == (14416.0,)


def test_jetpack7_three_values_and_stamp():
    parsed = tegrastats.parse_line((T / "agx-orin-jp7.log").read_text())
    assert parsed.stamp.isoformat() == "2026-07-25T09:08:28"
    assert parsed.rails["VDD_GPU_SOC"] == 5139.0 and parsed.averages["VDD_GPU_SOC"] == (5139.0, 5139.0)


@pytest.mark.parametrize("name", ["tx1-l4t28.log", "tx1-sudo.log"])
def test_tx1_logs_have_no_rails_and_say_so(name):
    rec = ingest.read(T / name)
    assert rec.power.empty and not rec.meta.partial
    assert any("no power rails" in i.message and "TX1" in i.message for i in rec.meta.issues)


def test_without_stamps_line_index_times_default_interval():
    rec = ingest.read(T / "tx2.log")
    vin = rec.power[rec.power["rail"] == "VDD_IN"]
    assert vin["time_rel_ns"].tolist() == [0, 1_000_000_000]
    assert rec.meta.clock_base_ns is None
    assert rec.meta.rails["VDD_IN"].update_period_ns == 1_000_000_000
    assert any("no timestamps" in i.message for i in rec.meta.issues)


def test_given_interval(tmp_path):
    rec = tegrastats.read_log(T / "tx2.log", interval_ms=100)
    assert rec.power[rec.power["rail"] == "VDD_IN"]["time_rel_ns"].tolist() == [0, 100_000_000]


def test_stamped_log_spreads_lines_within_a_second(tmp_path):
    line = (T / "agx-orin-jp7.log").read_text().strip()
    stamps = ["07-25-2026 09:08:28"] * 5 + ["07-25-2026 09:08:29"] * 5 + ["07-25-2026 09:08:30"]
    body = "".join(s + line[len(s) :].replace("5139mW/", f"{5000 + i}mW/", 1) + "\n" for i, s in enumerate(stamps))
    f = tmp_path / "orin.log"
    f.write_text(body)
    rec = tegrastats.read_log(f)
    gpu = rec.power[rec.power["rail"] == "VDD_GPU_SOC"]
    assert gpu["power_mw"].tolist() == [5000.0 + i for i in range(11)]
    assert gpu["time_rel_ns"].tolist() == [i * 200_000_000 for i in range(11)]  # 2 s / 10 lines = 200 ms
    assert rec.meta.extra["first_stamp"] == "2026-07-25 09:08:28"


def test_noise_lines_and_a_cut_last_line(tmp_path):
    lines = (T / "tx2.log").read_text().splitlines()
    f = tmp_path / "t.log"
    f.write_text(lines[0] + "\nsomething else\n" + lines[1] + "\n" + lines[0][:-30])
    rec = tegrastats.read_log(f)
    assert rec.meta.partial and len(rec.power[rec.power["rail"] == "VDD_IN"]) == 2
    msgs = [str(i) for i in rec.meta.issues]
    assert any("line 2 is not a tegrastats line" in m for m in msgs)
    assert any("line 4 is cut short" in m for m in msgs)


def test_missing_rail_in_some_lines_is_nan(tmp_path):
    lines = (T / "tx2.log").read_text().splitlines()
    f = tmp_path / "t.log"
    f.write_text(lines[0] + "\n" + lines[0].replace(" VDD_DDR 192/201", "") + "\n")
    rec = tegrastats.read_log(f)
    ddr = rec.power[rec.power["rail"] == "VDD_DDR"]["power_mw"].tolist()
    assert ddr[0] == 192.0 and math.isnan(ddr[1])


def test_not_tegrastats(tmp_path):
    f = tmp_path / "x.log"
    f.write_text("hello\nworld\n")
    assert not tegrastats.sniff(f)
    with pytest.raises(InputError, match="no tegrastats lines"):
        tegrastats.read_log(f)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.text(alphabet="0123456789 /mW@%C[],.-:_RAMVDIN_GPUEMCcpu\n", max_size=400))
def test_random_text_only_input_errors(tmp_path, body):
    p = tmp_path / "r.log"
    p.write_text("RAM 1/2MB CPU [1%@2] VDD_IN 5/5\n" + body)
    rec = read_or_one_line_error(tegrastats.read_log, p)
    assert rec is None or len(rec.power) % max(len(rec.meta.rails), 1) == 0
