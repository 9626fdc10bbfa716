"""INA3221 through NVIDIA's L4T staging IIO driver ``ina3221x`` (L4T <= 32: TX1, TX2, Nano, Xavier).

Layout: ``/sys/bus/i2c/drivers/ina3221x/<bus>-<addr>/iio:deviceN/`` (``iio_device/`` on older
L4T), channels k = 0..2: ``rail_name_k`` (also seen as ``rail_nameK``), ``in_powerk_input`` in mW,
else ``in_voltagek_input`` mV x ``in_currentk_input`` mA. ``running_mode`` (0 triggered,
1 continuous) is recorded per device.
"""

from __future__ import annotations

import glob
import os
import re
from typing import Any

from streamline_bridge.power.source import Rail, Roots
from streamline_bridge.power.sysfs import SysfsSource, checked_rails, i2c_devices, read_number, read_text

DRIVER_DIR = "bus/i2c/drivers/ina3221x"
_RAIL_NAME = re.compile(r"rail_name_?(\d+)$")


class Ina3221xSource(SysfsSource):
    """The rails of every ``ina3221x`` IIO device."""

    name = "ina3221x"

    def advice(self) -> list[str]:
        return [f"{device}: running_mode is 0 (triggered): every read waits for a fresh conversion; "
                f"`echo 1 > running_mode` (root) samples continuously"
                for device, cfg in self.config.get("devices", {}).items() if cfg.get("running_mode") == 0]


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
            for k, entry in channels:
                label = read_text(os.path.join(iio, entry)) or f"{device}_ch{k}"
                if label == "NC":
                    continue
                rail = _channel_rail(iio, device, k, label, devices[device])
                if rail is not None:
                    rails.append(rail)
    rails = checked_rails(rails, roots.sys_path(DRIVER_DIR), "no readable ina3221x channel")
    return Ina3221xSource(rails, {"devices": devices})

