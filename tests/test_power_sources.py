"""Every source on its fixture tree: discovery, rail names, units, files, values, failures."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import sys
import types
from pathlib import Path

import pytest

from conftest import FIXTURES
from helpers import wait_until
from streamline_bridge.power import discovery, sysfs
from streamline_bridge.power.counter import CounterPower
from streamline_bridge.power.source import Unavailable
from streamline_bridge.power.tegrastats import parse_power

SYSFS = FIXTURES / "sysfs"


def opened(tree: str, name: str | None = None, proc: Path | None = None, **options):
    src = discovery.find_source(
        name, discovery.roots(str(SYSFS / tree), str(proc) if proc else "/nonexistent"), options
    )
    src.open()
    return src


@pytest.mark.parametrize(
    "tree, source, rails, values",
    [
        ("tx1-l4t28", "ina3221x", ["VDD_IN", "VDD_GPU", "VDD_CPU"], [2079, 96, 312]),
        (
            "tx2-l4t32",
            "ina3221x",
            ["VDD_SYS_GPU", "VDD_SYS_SOC", "VDD_4V0_WIFI", "VDD_IN", "VDD_SYS_CPU", "VDD_SYS_DDR"],
            [76, 381, 364, 1373, 152, 189],
        ),
        ("nano-l4t32", "ina3221x", ["POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"], [930, 0, 80]),
        ("xavier-l4t32", "ina3221x", ["GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"], [1144, 381, 2498, 0, 190, 2690]),
        (
            "orin-l4t36",
            "ina3221",
            ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"],
            [4984 * 480 / 1000, 4984 * 160 / 1000, 4976 * 708 / 1000, 4984 * 60 / 1000],
        ),
        ("hwmon-ina226", "hwmon", ["ina226_power1", "VBAT"], [4512.0, 3800 * 500 / 1000]),
    ],
)
def test_discovery_finds_every_rail_with_its_value_in_mw(tree, source, rails, values) -> None:
    src = opened(tree)
    try:
        assert src.name == source
        assert [r.name for r in src.rails] == rails
        assert src.read() == pytest.approx(values)
        assert src.estimated is False
        for r in src.rails:
            assert all(Path(f).is_file() for f in r.files)
    finally:
        src.close()


def test_ina3221x_reads_power_files_and_records_running_mode() -> None:
    src = opened("tx1-l4t28")
    vdd_in = src.rails[0]
    assert vdd_in.unit == "mW" and vdd_in.files[0].endswith("1-0040/iio_device/in_power0_input")
    assert vdd_in.extra == {"driver": "ina3221x", "device": "1-0040", "channel": 0, "running_mode": 1}
    assert src.config["devices"]["1-0040"]["running_mode"] == 1
    assert opened("tx2-l4t32").rails[3].files[0].endswith("0-0041/iio:device1/in_power0_input")
    src.close()


def test_ina3221x_without_power_files_multiplies_voltage_and_current(tmp_path: Path) -> None:
    tree = tmp_path / "sys"
    shutil.copytree(SYSFS / "nano-l4t32", tree)
    dev = tree / "bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    for k in range(3):
        (dev / f"in_power{k}_input").unlink()
    (dev / "rail_name_2").rename(dev / "rail_name2")  # the spelling without underscore exists too
    src = discovery.find_source(None, discovery.roots(str(tree), "/nonexistent"))
    with src:
        assert [r.unit for r in src.rails] == ["mV*mA"] * 3
        assert [r.name for r in src.rails] == ["POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"]
        assert src.read() == pytest.approx([5000 * 186 / 1000, 0.0, 5000 * 16 / 1000])


def test_ina3221_hwmon_skips_nc_and_the_shunt_sum_and_records_its_configuration() -> None:
    src = opened("orin-l4t36")
    names = [r.name for r in src.rails]
    assert "NC" not in names and "sum of shunt voltages" not in names
    assert all(r.unit == "mV*mA" and r.extra["channel"] in (1, 2, 3) for r in src.rails)
    assert src.rails[3].extra["device"] == "1-0041" and src.rails[3].extra["channel"] == 2
    assert src.rails[0].files[0].endswith("1-0040/hwmon/hwmon1/in1_input")
    assert src.rails[0].files[1].endswith("1-0040/hwmon/hwmon1/curr1_input")
    assert src.config["devices"]["1-0040"] == {"update_interval_ms": 7, "samples": 1}
    assert src.configured_update_ns() == 7_000_000
    src.close()


def test_hwmon_skips_chips_without_power_and_the_ina3221() -> None:
    src = opened("hwmon-ina226")
    assert set(src.config["devices"]) == {"hwmon0", "hwmon2"}
    assert src.rails[0].unit == "uW" and src.rails[1].unit == "mV*mA"
    assert src.configured_update_ns() == 2_000_000
    src.close()


def test_rapl_zones_and_subzones() -> None:
    src = discovery.find_source("rapl", discovery.roots(str(SYSFS / "rapl-x86")))
    assert [r.name for r in src.rails] == ["package-0", "package-0/core", "package-0/uncore"]
    assert src.rails[1].extra["part_of"] == "package-0"
    assert src.rails[0].extra["max_energy_range_uj"] == 262143328850
    with src:
        assert all(v != v for v in src.read())  # a counter that has not moved gives no power yet


def test_counter_power_is_delta_energy_over_delta_time_and_handles_the_wrap() -> None:
    c = CounterPower(1e6, wrap=1000)  # µJ counter
    assert c.update(900, 0) != c.update(900, 0)  # NaN before the first change
    assert c.update(950, 1_000_000) == pytest.approx(50 * 1e6 / 1e6)  # 50 µJ in 1 ms = 50 mW
    assert c.update(950, 2_000_000) == pytest.approx(50.0)  # unchanged counter: same power
    assert c.update(50, 3_000_000) == pytest.approx(100 * 1e6 / 2e6)  # wrapped: 100 µJ in 2 ms


def test_discovery_order_prefers_the_ina3221_over_rapl(tmp_path: Path) -> None:
    tree = tmp_path / "sys"
    shutil.copytree(SYSFS / "rapl-x86", tree)
    shutil.copytree(SYSFS / "tx1-l4t28", tree, dirs_exist_ok=True)
    assert discovery.find_source(None, discovery.roots(str(tree), "/nonexistent")).name == "ina3221x"
    assert list(discovery.SOURCES) == ["ina3221x", "ina3221", "hwmon", "nvml", "rapl", "tegrastats", "cpu-model"]


def test_no_source_at_all_says_why_for_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(Unavailable) as err:
        discovery.find_source(None, discovery.roots(str(tmp_path), str(tmp_path)))
    text = str(err.value)
    for needle in ("ina3221x", "hwmon", "nvidia-ml-py", "RAPL", "tegrastats", "stat"):
        assert needle in text
    with pytest.raises(Unavailable, match="unknown power source"):
        discovery.find_source("bogus", discovery.roots())


def test_a_transient_read_error_gives_nan_naming_the_file_then_recovers(monkeypatch: pytest.MonkeyPatch) -> None:
    src = opened("tx1-l4t28")
    real = os.pread
    fail = {"n": 1}

    def flaky(fd: int, n: int, off: int) -> bytes:
        if fail["n"]:
            fail["n"] -= 1
            raise OSError(errno.EIO, "Input/output error")
        return real(fd, n, off)

    monkeypatch.setattr(sysfs.os, "pread", flaky)
    first = src.read()
    assert first[0] != first[0] and first[1:] == [96, 312]
    assert "in_power0_input" in src.errors[0] and "EIO" in src.errors[0]
    assert src.read() == [2079, 96, 312]  # reopened and read again
    src.close()


def test_a_vanished_file_reads_as_nan_until_it_comes_back(tmp_path: Path) -> None:
    tree = tmp_path / "sys"
    shutil.copytree(SYSFS / "tx1-l4t28", tree)
    src = discovery.find_source(None, discovery.roots(str(tree), "/nonexistent"))
    f = Path(src.rails[1].files[0])
    with src:
        f.write_text("")  # emptied and removed: the open descriptor reads nothing, reopening fails
        f.unlink()
        v = src.read()
        assert v[1] != v[1] and "no number" in (src.errors[1] or "")
        v = src.read()
        assert v[1] != v[1] and "ENOENT" in (src.errors[1] or "")
        f.write_text("123\n")
        assert src.read()[1] == 123


def test_nvml_without_the_library_is_unavailable_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(Unavailable, match="nvidia-ml-py package is not installed"):
        discovery.find_source("nvml", discovery.roots())


def fake_pynvml(energy: bool) -> types.ModuleType:
    nv = types.ModuleType("pynvml")
    state = {"mj": 1_000_000, "init": 0}

    class NVMLError(Exception):
        pass

    def total_energy(h):
        if not energy:
            raise NVMLError("Not Supported")
        state["mj"] += 5
        return state["mj"]

    nv.NVMLError = NVMLError
    nv.nvmlInit = lambda: state.__setitem__("init", state["init"] + 1)
    nv.nvmlShutdown = lambda: None
    nv.nvmlDeviceGetCount = lambda: 2
    nv.nvmlDeviceGetHandleByIndex = lambda i: i
    nv.nvmlDeviceGetName = lambda h: b"Fake GPU"
    nv.nvmlDeviceGetPowerUsage = lambda h: 71_000 + h
    nv.nvmlDeviceGetTotalEnergyConsumption = total_energy
    return nv


def test_nvml_power_usage_and_energy_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(energy=False))
    src = discovery.find_source("nvml", discovery.roots())
    assert [r.name for r in src.rails] == ["GPU0", "GPU1"] and src.rails[0].extra["method"] == "power usage"
    with src:
        assert src.read() == [71_000.0, 71_001.0]
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(energy=True))
    src = discovery.find_source("nvml", discovery.roots())
    assert src.rails[0].unit == "mJ" and src.rails[0].extra["method"] == "energy counter"
    with src:
        values = src.read()
        assert all(v > 0 for v in values)  # 5 mJ since the previous reading, over a few µs


# Lines copied verbatim from anchors.md §2 (one per release format).
TEGRASTATS = [
    (
        "RAM 3468/3983MB (lfb 48x4MB) SWAP 873/8192MB (cached 295MB) cpu [17%,13%,29%,5%]@408 EMC 1%@408 APE 25 "
        "GR3D 3%@76",
        {},
    ),
    (
        "RAM 696/7854MB (lfb 1675x4MB) CPU [0%@345,0%@345,0%@345,0%@345,0%@345,0%@345] EMC_FREQ 1%@665 GR3D_FREQ 0%@140 "
        "APE 150 MTS fg 0% bg 0% BCPU@30C MCPU@30C GPU@28C PLL@30C Tboard@26C Tdiode@27C PMIC@100C thermal@29.2C "
        "VDD_IN 1383/1383 VDD_CPU 153/191 VDD_GPU 76/76 VDD_SOC 384/384 VDD_WIFI 364/335 VDD_DDR 192/201",
        {"VDD_IN": 1383, "VDD_CPU": 153, "VDD_GPU": 76, "VDD_SOC": 384, "VDD_WIFI": 364, "VDD_DDR": 192},
    ),
    (
        "RAM 331/3964MB (lfb 758x4MB) SWAP 0/1982MB (cached 0MB) IRAM 0/252kB(lfb 252kB) CPU [0%@102,0%@102,0%@102,"
        "0%@102] EMC_FREQ 3%@204 GR3D_FREQ 0%@76 APE 25 PLL@20.5C CPU@23.5C PMIC@100C GPU@22.5C AO@27.5C thermal@23C "
        "POM_5V_IN 933/933 POM_5V_GPU 0/0 POM_5V_CPU 84/105",
        {"POM_5V_IN": 933, "POM_5V_GPU": 0, "POM_5V_CPU": 84},
    ),
    (
        "01-03-2023 16:07:54 RAM 2257/30536MB (lfb 5392x4MB) SWAP 0/15268MB (cached 0MB) CPU [0%@729,...] EMC_FREQ "
        "0%@204 GR3D_FREQ 0%@0 GR3D2_FREQ 0%@0 NVJPG1 729 VIC_FREQ 115 APE 233 CV0@-256C CPU@41.437C Tboard@29C "
        "SOC2@39.062C Tdiode@30.75C SOC0@39.031C CV1@-256C GPU@-256C tj@41.656C SOC1@38.937C CV2@-256C VDD_GPU_SOC "
        "2390mW/2390mW VDD_CPU_CV 796mW/796mW VIN_SYS_5V0 3522mW/3522mW NC 0mW/0mW VDDQ_VDD2_1V8AO 301mW/301mW NC "
        "0mW/0mW",
        {"VDD_GPU_SOC": 2390, "VDD_CPU_CV": 796, "VIN_SYS_5V0": 3522, "VDDQ_VDD2_1V8AO": 301},
    ),
    (
        "07-25-2026 09:08:28 RAM 20642/62817MB (lfb 1x2MB) CPU [23%@2201,10%@2201] EMC_FREQ 3%@3199 GR3D_FREQ "
        "12%@[1300,1300] NVENC0 off APE 174 cpu@52.968C/52.968C soc2@48.406C/48.406C VDD_GPU_SOC 5139mW/5139mW/5139mW "
        "VDD_CPU_CV 3268mW/3268mW/3268mW VIN_SYS_5V0 5500mW/5500mW/5500mW",
        {"VDD_GPU_SOC": 5139, "VDD_CPU_CV": 3268, "VIN_SYS_5V0": 5500},
    ),
]


@pytest.mark.parametrize("line, expected", TEGRASTATS)
def test_tegrastats_power_fields_of_every_release(line: str, expected: dict) -> None:
    assert parse_power(line) == expected


def test_tegrastats_source_follows_a_running_tegrastats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "tegrastats"
    script.write_text(
        f"#!/bin/sh\n[ \"$1\" = --interval ] || exit 2\nwhile :; do echo '{TEGRASTATS[2][0]}'; sleep 0.02; done\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    src = discovery.find_source("tegrastats", discovery.roots(), {"tegrastats_interval_ms": 20})
    assert [r.name for r in src.rails] == ["POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"]
    assert src.configured_update_ns() == 20_000_000
    with src:
        wait_until(lambda: src.read()[0] == 933, what="the fake tegrastats' line")
        assert src.read() == [933, 0, 84]


def test_cpu_model_is_idle_plus_per_core_power_times_utilisation(tmp_path: Path) -> None:
    stat_file = tmp_path / "stat"
    lines = ["cpu0 0 0 0 0 0 0 0 0", "cpu1 0 0 0 0 0 0 0 0", "cpu2 0 0 0 0 0 0 0 0", "cpu3 0 0 0 0 0 0 0 0"]
    stat_file.write_text("cpu  1000 0 500 8000 500 0 0 0 0 0\n" + "\n".join(lines) + "\n")
    src = discovery.find_source(
        "cpu-model",
        discovery.roots("/nonexistent", str(tmp_path)),
        {"cpu_window_ms": 0, "cpu_idle_w": 2.0, "cpu_core_w": 1.5},
    )
    assert src.estimated and src.rails[0].name == "CPU (estimated)" and src.config["cores"] == 4
    with src:
        # +150 user +50 system busy, +150 idle +50 iowait: utilisation 0.5
        stat_file.write_text("cpu  1150 0 550 8150 550 0 0 0 0 0\n" + "\n".join(lines) + "\n")
        assert src.read() == [pytest.approx((2.0 + 1.5 * 4 * 0.5) * 1000)]


def test_an_unreadable_source_is_passed_over(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_open = os.open

    def root_only(path, flags, *args):
        if str(path).endswith("energy_uj"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(sysfs.os, "open", root_only)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "pynvml", None)
    where = discovery.roots(str(SYSFS / "rapl-x86"), str(FIXTURES / "proc"))
    assert discovery.find_source(None, where).name == "cpu-model"
    rapl = discovery.survey(where, names=["rapl"])[0]
    assert rapl.source is None and "energy_uj: EACCES" in rapl.reason
