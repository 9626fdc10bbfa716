"""``streamline-bridge sensors`` on fixture trees and on a moving fake sensor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import FIXTURES
from fake_sysfs import FakeSensor
from streamline_bridge.cli import main


def sensors_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict]]:
    rc = main(["sensors", "--json", *args])
    return rc, json.loads(capsys.readouterr().out)


def test_orin_rails_with_files_units_values_and_configured_interval(capsys) -> None:
    rc, found = sensors_json(
        capsys, "--sysfs-root", str(FIXTURES / "sysfs/orin-l4t36"), "--source", "ina3221", "--measure", "0"
    )
    assert rc == 0 and len(found) == 1
    s = found[0]
    assert s["source"] == "ina3221" and s["available"] and not s["estimated"]
    assert [r["name"] for r in s["rails"]] == ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"]
    gpu = s["rails"][0]
    assert gpu["unit"] == "mV*mA" and gpu["value_mw"] == pytest.approx(4984 * 480 / 1000)
    assert gpu["files"][0].endswith("ina3221/1-0040/hwmon/hwmon1/in1_input")
    assert gpu["configured_update_ms"] == 7 and gpu["measured_update_ms"] is None
    assert s["config"]["devices"]["1-0041"] == {"update_interval_ms": 7, "samples": 1} and s["advice"] == []


def test_every_source_is_listed_available_or_with_its_reason(capsys, tmp_path: Path) -> None:
    rc, found = sensors_json(
        capsys, "--sysfs-root", str(FIXTURES / "sysfs/tx1-l4t28"), "--proc-root", str(tmp_path), "--measure", "0"
    )
    assert rc == 0
    by_name = {s["source"]: s for s in found}
    assert list(by_name) == ["ina3221x", "ina3221", "hwmon", "nvml", "rapl", "tegrastats", "cpu-model"]
    assert by_name["ina3221x"]["available"] and by_name["ina3221x"]["config"]["devices"]["1-0040"]["running_mode"] == 1
    assert not by_name["rapl"]["available"] and "RAPL" in by_name["rapl"]["reason"]
    assert not by_name["cpu-model"]["available"] and "stat" in by_name["cpu-model"]["reason"]


def test_measured_update_interval_of_a_moving_sensor(capsys, tmp_path: Path) -> None:
    rail = "bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1/curr1_input"
    with FakeSensor(FIXTURES / "sysfs/orin-l4t36", tmp_path / "sys", 0.007, {rail: lambda k: 400 + k}):
        rc, found = sensors_json(
            capsys, "--sysfs-root", str(tmp_path / "sys"), "--source", "ina3221", "--measure", "0.5"
        )
    assert rc == 0
    gpu = found[0]["rails"][0]
    assert 3.5 < gpu["measured_update_ms"] < 10.5
    assert found[0]["rails"][1]["measured_update_ms"] is None  # a rail that never changed


def test_text_output_and_errors(capsys, tmp_path: Path) -> None:
    assert (
        main(
            ["sensors", "--sysfs-root", str(FIXTURES / "sysfs/xavier-l4t32"), "--source", "ina3221x", "--measure", "0"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "ina3221x" in out and "VDDRQ" in out and "SYS5V" in out
    assert main(["sensors", "--source", "bogus"]) == 2
    assert "unknown power source 'bogus'" in capsys.readouterr().err
    assert main(["sensors", "--sysfs-root", str(tmp_path), "--source", "ina3221x", "--measure", "0"]) == 1
    assert "unavailable" in capsys.readouterr().out


def test_triggered_ina3221x_gets_a_note(capsys, tmp_path: Path) -> None:
    import shutil

    tree = tmp_path / "sys"
    shutil.copytree(FIXTURES / "sysfs/tx2-l4t32", tree)
    (tree / "bus/i2c/drivers/ina3221x/0-0041/iio:device1/running_mode").write_text("0\n")
    rc, found = sensors_json(capsys, "--sysfs-root", str(tree), "--source", "ina3221x", "--measure", "0")
    triggered = [a for a in found[0]["advice"] if "running_mode is 0" in a]
    assert rc == 0 and len(triggered) == 1 and triggered[0].startswith("0-0041: running_mode is 0")
