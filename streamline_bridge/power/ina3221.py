"""INA3221 through the mainline hwmon driver ``ina3221`` (L4T >= 34: Orin, Xavier on JetPack 5; mainline Linux).

Layout: ``/sys/bus/i2c/drivers/ina3221/<bus>-<addr>/hwmon/hwmonN/``, channels k = 1..3:
``ink_label``, ``ink_input`` bus mV, ``currk_input`` mA (no power file: P = V x I). Channels
labelled ``NC``, disabled channels and the shunt-sum channel ``in7`` ("sum of shunt voltages")
are skipped. ``update_interval`` (ms) and ``samples`` (averaging) are recorded per device.

Sensor model: ``ina3221:CONFIG`` rebuilt from ``samples``, ``update_interval`` and the ``ink_enable``
files (:func:`~streamline_bridge.sensor_model.ina3221_from_hwmon`, source ``driver``); an
``update_interval`` that no conversion time explains is noted as a contradiction; without
``samples`` or ``update_interval`` the model is left to the data.
"""

from __future__ import annotations

import glob
import os
from typing import Any

from streamline_bridge.power.source import Rail, Roots
from streamline_bridge.power.sysfs import SysfsSource, checked_rails, i2c_devices, read_number, read_text
from streamline_bridge.sensor_model import SensorModel, ina3221_from_hwmon

DRIVER_DIR = "bus/i2c/drivers/ina3221"
CHANNELS = (1, 2, 3)
SUM_LABEL = "sum of shunt voltages"


class Ina3221Source(SysfsSource):
    """The rails of every ``ina3221`` hwmon device."""

    name = "ina3221"


def _device_rails(hw: str, device: str, config: dict[str, Any]) -> list[Rail]:
    rails = []
    for k in CHANNELS:
        volt, curr = os.path.join(hw, f"in{k}_input"), os.path.join(hw, f"curr{k}_input")
        if not (os.path.exists(volt) and os.path.exists(curr)):
            continue
        label = read_text(os.path.join(hw, f"in{k}_label")) or f"{device}_ch{k}"
        if label in ("NC", SUM_LABEL) or read_number(os.path.join(hw, f"in{k}_enable")) == 0:
            continue
        rails.append(
            Rail(label, "mV*mA", (volt, curr), 1e-3, {"driver": "ina3221", "device": device, "channel": k, **config})
        )
    return rails


def device_model(hw: str, config: dict[str, Any]) -> tuple[SensorModel | None, list[str]]:
    """The sensor model of one hwmon ``ina3221`` device from its driver's files, and notes."""
    samples, interval = config.get("samples"), config.get("update_interval_ms")
    enabled = tuple(k for k in CHANNELS if read_number(os.path.join(hw, f"in{k}_enable")) != 0)
    if samples is None or interval is None:
        return None, ["no samples / update_interval file: the sensor model is left to the data"]
    try:
        model = ina3221_from_hwmon(samples, interval, enabled)
    except ValueError as exc:
        return None, [f"{exc}: the sensor model is left to the data"]
    notes = []
    expected = model.memory_ns / 1e6  # update_interval = C x S x (BC + SC)
    if abs(expected - interval) > max(1.0, 0.1 * interval):
        notes.append(
            f"update_interval {interval} ms does not fit samples {samples} x {len(enabled)} channel(s) "
            f"at any conversion time (nearest: {expected:.3g} ms): the configuration contradicts itself, "
            f"{model.spec} assumed (the data will tell)"
        )
    return model, notes


def find(roots: Roots, options: dict[str, Any] | None = None) -> Ina3221Source:
    """Every rail of every ``ina3221`` hwmon device under ``roots.sys``."""
    rails: list[Rail] = []
    devices: dict[str, dict[str, Any]] = {}
    for device, device_dir in i2c_devices(roots, DRIVER_DIR, "no ina3221 hwmon driver (L4T >= 34, mainline)"):
        for hw in sorted(glob.glob(os.path.join(glob.escape(device_dir), "hwmon", "hwmon*"))):
            config = {
                "update_interval_ms": read_number(os.path.join(hw, "update_interval")),
                "samples": read_number(os.path.join(hw, "samples")),
            }
            found = _device_rails(hw, device, config)
            model, notes = device_model(hw, config)
            for rail in found:
                rail.sensor_model = model
            devices[device] = {**config, "notes": notes} if notes else config
            rails += found
    rails = checked_rails(rails, roots.sys_path(DRIVER_DIR), "no readable ina3221 channel")
    return Ina3221Source(rails, {"devices": devices})
