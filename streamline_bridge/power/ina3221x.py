"""INA3221 through NVIDIA's L4T staging IIO driver ``ina3221x`` (L4T <= 32: TX1, TX2, Nano, Xavier).

Layout: ``/sys/bus/i2c/drivers/ina3221x/<bus>-<addr>/iio:deviceN/`` (``iio_device/`` on older
L4T), channels k = 0..2: ``rail_name_k`` (also seen as ``rail_nameK``), ``in_powerk_input`` in mW,
else ``in_voltagek_input`` mV x ``in_currentk_input`` mA. ``running_mode`` (0 triggered,
1 continuous) is recorded per device.

Sensor model (docs/energy-table.md): the chip's configuration register comes from the device tree
node of the device (``ti,continuous-config``, or ``ti,trigger-config`` when ``running_mode`` is 0);
a node without it runs the driver's built-in configuration (:data:`CONTINUOUS_DEFAULT`,
:data:`TRIGGERED_DEFAULT`: source ``driver default``). Continuous: ``ina3221:CONFIG``. Triggered:
each read starts one averaged conversion sequence and returns its result, a block average over
the sequence before the value is returned: ``window:`` its length. An unreadable tree leaves the
model to the data, with a note.
"""

from __future__ import annotations

import glob
import os
import re
from typing import Any

from streamline_bridge.power.devicetree import TreeUnreadable, i2c_node, read_u32
from streamline_bridge.power.source import Rail, Roots
from streamline_bridge.power.sysfs import SysfsSource, checked_rails, i2c_devices, read_number, read_text
from streamline_bridge.sensor_model import SensorModel

DRIVER_DIR = "bus/i2c/drivers/ina3221x"
COMPATIBLE = "ti,ina3221x"
CONTINUOUS_DEFAULT = 0x7727  # INA3221_CONT_CONFIG_DATA: 3 channels, AVG 64, 1.1 ms + 1.1 ms (anchors §1.1)
TRIGGERED_DEFAULT = 0x7723  # the same, shunt and bus triggered
_RAIL_NAME = re.compile(r"rail_name_?(\d+)$")


class Ina3221xSource(SysfsSource):
    """The rails of every ``ina3221x`` IIO device."""

    name = "ina3221x"

    def advice(self) -> list[str]:
        return super().advice() + [
            f"{device}: running_mode is 0 (triggered): every read waits for a fresh conversion; "
            f"`echo 1 > running_mode` (root) samples continuously"
            for device, cfg in self.config.get("devices", {}).items()
            if cfg.get("running_mode") == 0
        ]


def config_model(config: int, continuous: bool, source: str) -> SensorModel:
    """The model of configuration register ``config`` in continuous or triggered mode (ValueError if invalid)."""
    if continuous:
        return SensorModel("ina3221", config, source=source)
    sequence = SensorModel("ina3221", (config & ~0b111) | 0b111).memory_ns  # AVG rounds over the channels
    return SensorModel("window", period_ns=sequence, source=source)


def device_model(
    roots: Roots, device_dir: str, device: str, running_mode: int | None, channels: list[int]
) -> tuple[SensorModel | None, list[str]]:
    """The sensor model of one ``ina3221x`` device from its device tree node, and notes on how it was found."""
    notes = []
    if running_mode not in (0, 1):
        notes.append(f"running_mode unreadable ({running_mode}): continuous assumed")
    continuous = running_mode != 0
    prop = "ti,continuous-config" if continuous else "ti,trigger-config"
    try:
        config = read_u32(i2c_node(roots, device_dir, device, COMPATIBLE), prop)
    except TreeUnreadable as exc:
        return None, notes + [f"device tree not readable ({exc}): the sensor model is left to the data"]
    source = "device tree"
    if config is None:
        config, source = (CONTINUOUS_DEFAULT if continuous else TRIGGERED_DEFAULT), "driver default"
        notes.append(f"no {prop} in the device tree: the driver's built-in {config:#06x}")
    try:
        model = config_model(config, continuous, source)
    except ValueError as exc:
        return None, notes + [f"{prop} {config:#x}: {exc}: the sensor model is left to the data"]
    enabled = SensorModel("ina3221", (config & ~0b111) | 0b111).channels
    off = [k for k in channels if k + 1 not in enabled]
    if off:
        notes.append(
            f"{prop} {config:#06x} disables channel(s) {', '.join(map(str, off))} that have rails: "
            "the configuration contradicts the files (the data will tell)"
        )
    if not continuous:
        notes.append(
            f"triggered: each read waits for a {model.memory_ns / 1e6:.3g} ms conversion sequence "
            f"({prop} {config:#06x})"
        )
    return model, notes


def _iio_dirs(device_dir: str) -> list[str]:
    found = glob.glob(os.path.join(glob.escape(device_dir), "iio:device*"))
    found += glob.glob(os.path.join(glob.escape(device_dir), "iio_device"))
    return sorted(d for d in found if os.path.isdir(d))


def _channel_rail(iio: str, device: str, k: int, label: str, config: dict[str, Any]) -> Rail | None:
    power = os.path.join(iio, f"in_power{k}_input")
    volt, curr = os.path.join(iio, f"in_voltage{k}_input"), os.path.join(iio, f"in_current{k}_input")
    extra: dict[str, Any] = {"driver": "ina3221x", "device": device, "channel": k, **config}
    if os.path.exists(power):
        return Rail(label, "mW", (power,), 1.0, extra)
    if os.path.exists(volt) and os.path.exists(curr):
        return Rail(label, "mV*mA", (volt, curr), 1e-3, extra)
    return None


def find(roots: Roots, options: dict[str, Any] | None = None) -> Ina3221xSource:
    """Every rail of every ``ina3221x`` device under ``roots.sys``."""
    rails: list[Rail] = []
    devices: dict[str, dict[str, Any]] = {}
    for device, device_dir in i2c_devices(roots, DRIVER_DIR, "no ina3221x driver (L4T <= 32 IIO)"):
        for iio in _iio_dirs(device_dir):
            devices[device] = {"running_mode": read_number(os.path.join(iio, "running_mode"))}
            channels = sorted((int(m.group(1)), e) for e in os.listdir(iio) if (m := _RAIL_NAME.match(e)))
            found = []
            for k, entry in channels:
                label = read_text(os.path.join(iio, entry)) or f"{device}_ch{k}"
                if label == "NC":
                    continue
                rail = _channel_rail(iio, device, k, label, devices[device])
                if rail is not None:
                    found.append(rail)
            model, notes = device_model(
                roots, device_dir, device, devices[device]["running_mode"], [r.extra["channel"] for r in found]
            )
            if notes:
                devices[device]["notes"] = notes
            for rail in found:
                rail.sensor_model = model
            rails += found
    rails = checked_rails(rails, roots.sys_path(DRIVER_DIR), "no readable ina3221x channel")
    return Ina3221xSource(rails, {"devices": devices})
