"""Other hwmon power sensors: ``/sys/class/hwmon/hwmon*/power*_input`` (µW), or voltage x current.

A ``powerK_input`` (else ``powerK_average``) file is one rail in µW, named by ``powerK_label``
or ``<chip>_powerK``. Where a chip has no power file for a label, an ``inJ_input`` (mV) and a
``currK_input`` (mA) carrying the same label make a V x I rail. INA3221 chips are left to
:mod:`~streamline_bridge.power.ina3221`. ``update_interval`` (ms) is recorded per chip.

Sensor model: the INA2xx chips (``ina2*``) block-average and load a value every ``update_interval``:
``window:`` that (source ``driver``); other chips' models are left to the data.
"""

from __future__ import annotations

import glob
import os
import re
from typing import Any

from streamline_bridge.power.source import Rail, Roots, Unavailable
from streamline_bridge.power.sysfs import SysfsSource, checked_rails, read_number, read_text
from streamline_bridge.sensor_model import SensorModel

CLASS_DIR = "class/hwmon"
SKIP_CHIPS = ("ina3221",)
BLOCK_AVERAGING = "ina2"  # chip name prefix of the INA2xx family (block averages, update_interval)
_ATTR = re.compile(r"(power|in|curr)(\d+)_(input|average)$")


class HwmonSource(SysfsSource):
    """Power rails of generic hwmon chips."""

    name = "hwmon"


def _chip_rails(hw: str, chip: str, device: str, config: dict[str, Any]) -> list[Rail]:
    files: dict[tuple[str, int], str] = {}
    for entry in sorted(os.listdir(hw)):
        m = _ATTR.match(entry)
        if m and (m.group(3) == "input" or (m.group(1), int(m.group(2))) not in files):
            files[(m.group(1), int(m.group(2)))] = os.path.join(hw, entry)

    def label(kind: str, k: int) -> str | None:
        return read_text(os.path.join(hw, f"{kind}{k}_label"))

    extra = {"driver": chip, "device": device, **config}
    rails = []
    for (kind, k), path in sorted(files.items()):
        if kind == "power":
            rails.append(Rail(label("power", k) or f"{chip}_power{k}", "uW", (path,), 1e-3, {**extra, "channel": k}))
    have = {r.name for r in rails}
    volts = {label("in", k): p for (kind, k), p in files.items() if kind == "in" and label("in", k)}
    for (kind, k), path in sorted(files.items()):
        name = label("curr", k) if kind == "curr" else None
        if name and name in volts and name not in have:
            rails.append(Rail(name, "mV*mA", (volts[name], path), 1e-3, {**extra, "channel": k}))
    return rails


def find(roots: Roots, options: dict[str, Any] | None = None) -> HwmonSource:
    """Every power rail of every hwmon chip under ``roots.sys`` except the INA3221."""
    base = roots.sys_path(CLASS_DIR)
    if not os.path.isdir(base):
        raise Unavailable(f"{base}: no hwmon class")
    rails: list[Rail] = []
    devices: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for hw in sorted(glob.glob(os.path.join(glob.escape(base), "hwmon*")), key=_hwmon_index):
        real = os.path.realpath(hw)
        chip = read_text(os.path.join(hw, "name")) or os.path.basename(hw)
        if real in seen or chip in SKIP_CHIPS:
            continue
        seen.add(real)
        device = os.path.basename(hw)
        config = {"update_interval_ms": read_number(os.path.join(hw, "update_interval"))}
        chip_rails = _chip_rails(hw, chip, device, config)
        interval = config["update_interval_ms"]
        if chip.startswith(BLOCK_AVERAGING) and interval:
            for rail in chip_rails:
                rail.sensor_model = SensorModel("window", period_ns=interval * 1_000_000, source="driver")
        if chip_rails:
            devices[device] = {"chip": chip, **config}
            rails += chip_rails
    return HwmonSource(checked_rails(rails, base, "no hwmon chip with a power reading"), {"devices": devices})


def _hwmon_index(path: str) -> int:
    digits = os.path.basename(path)[len("hwmon") :]
    return int(digits) if digits.isdigit() else -1
