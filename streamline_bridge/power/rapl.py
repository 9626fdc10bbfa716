"""Intel/AMD RAPL through powercap: ``/sys/class/powercap/intel-rapl:*/energy_uj``.

Each zone (``intel-rapl:0`` = ``package-0``, sub-zones ``intel-rapl:0:0`` = ``package-0/core``
...) is one rail; power = Δenergy/Δt (:mod:`~streamline_bridge.power.counter`), with the counter
wrapping at ``max_energy_range_uj``. ``energy_uj`` is readable by root only on most kernels
since 2020 (CVE-2020-8694): then the source is unavailable and says so. Sensor model: ``instant``
(each value is the mean power since the previous read, as fine as the sampling itself).
"""

from __future__ import annotations

import glob
import os
import re
from typing import Any

from streamline_bridge.power.counter import CounterPower
from streamline_bridge.power.source import NAN, Rail, Roots, Source, Unavailable
from streamline_bridge.power.sysfs import ValueFile, read_number, read_text
from streamline_bridge.sensor_model import INSTANT_SOURCE

CLASS_DIR = "class/powercap"
_ZONE = re.compile(r"intel-rapl:(\d+(?::\d+)*)$")
UJ_TO_MW_PER_NS = 1e6  # (µJ / ns) x 1e6 = mW


class RaplSource(Source):
    """Power of every RAPL zone from its energy counter."""

    name = "rapl"

    def __init__(self, rails: list[Rail], config: dict[str, Any] | None = None):
        super().__init__(rails, config)
        self._files = [ValueFile(r.files[0]) for r in rails]
        self._counters = [CounterPower(UJ_TO_MW_PER_NS, r.extra.get("max_energy_range_uj")) for r in rails]

    def open(self) -> None:
        try:
            for f, c in zip(self._files, self._counters):
                f.open()
                value = f.read()
                if value is not None:
                    c.update(value)
        except Unavailable:
            self.close()
            raise

    def read(self) -> list[float]:
        out = []
        for i, (f, c) in enumerate(zip(self._files, self._counters)):
            value = f.read()
            if value is None:
                self.errors[i] = f.error
                out.append(NAN)
            else:
                out.append(c.update(value))
        return out

    def close(self) -> None:
        for f in self._files:
            f.close()


def find(roots: Roots, options: dict[str, Any] | None = None) -> RaplSource:
    """Every RAPL zone with an ``energy_uj`` counter under ``roots.sys``."""
    base = roots.sys_path(CLASS_DIR)
    zones = {}
    for path in glob.glob(os.path.join(glob.escape(base), "intel-rapl:*")):
        m = _ZONE.match(os.path.basename(path))
        if m and os.path.exists(os.path.join(path, "energy_uj")):
            zones[tuple(int(x) for x in m.group(1).split(":"))] = path
    if not zones:
        raise Unavailable(f"{base}: no RAPL zone (intel-rapl:*)")
    names = {key: read_text(os.path.join(path, "name")) or os.path.basename(path) for key, path in zones.items()}
    rails = []
    for key, path in sorted(zones.items()):
        name = names[key] if len(key) == 1 else f"{names.get(key[:1], key[0])}/{names[key]}"
        extra = {
            "driver": "intel-rapl",
            "device": os.path.basename(path),
            "max_energy_range_uj": read_number(os.path.join(path, "max_energy_range_uj")),
        }
        if len(key) > 1:
            extra["part_of"] = names.get(key[:1])
        rails.append(Rail(name, "uJ", (os.path.join(path, "energy_uj"),), 1.0, extra, INSTANT_SOURCE))
    return RaplSource(rails)
