"""NVIDIA GPUs through NVML (the ``nvidia-ml-py`` package, imported only when this source is tried).

One rail per GPU, ``GPU<i>``. Where the driver has the total-energy counter
(``nvmlDeviceGetTotalEnergyConsumption``, mJ, Volta and later) power is Δenergy/Δt between its
updates, which integrates everything the GPU drew; otherwise ``nvmlDeviceGetPowerUsage`` (mW).
Option ``nvml_method`` = ``energy`` or ``power`` forces one. No library, no driver or no GPU
makes the source unavailable, never an error. Sensor model: ``instant`` (what the kind of source
says; NVML does not tell how the driver averages).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from streamline_bridge.power.counter import CounterPower
from streamline_bridge.power.source import NAN, Rail, Roots, Source, Unavailable
from streamline_bridge.sensor_model import INSTANT_SOURCE

MJ_TO_MW_PER_NS = 1e9  # (mJ / ns) x 1e9 = mW


def _nvml() -> ModuleType:
    try:
        nv = importlib.import_module("pynvml")
    except ImportError:
        raise Unavailable("nvml: the nvidia-ml-py package is not installed") from None
    try:
        nv.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...
        raise Unavailable(f"nvml: {exc}") from None
    return nv


class NvmlSource(Source):
    """Power of every NVIDIA GPU NVML sees."""

    name = "nvml"

    def __init__(self, rails: list[Rail], config: dict[str, Any] | None = None):
        super().__init__(rails, config)
        self._nv: ModuleType | None = None
        self._handles: list[Any] = []
        self._counters = [CounterPower(MJ_TO_MW_PER_NS) if r.unit == "mJ" else None for r in rails]

    def open(self) -> None:
        nv = self._nv = _nvml()
        self._handles = [nv.nvmlDeviceGetHandleByIndex(r.extra["index"]) for r in self.rails]
        for h, c in zip(self._handles, self._counters):
            if c is not None:
                c.update(nv.nvmlDeviceGetTotalEnergyConsumption(h))

    def read(self) -> list[float]:
        nv = self._nv
        assert nv is not None, "read() before open()"
        out = []
        for i, (h, c) in enumerate(zip(self._handles, self._counters)):
            try:
                if c is None:
                    out.append(float(nv.nvmlDeviceGetPowerUsage(h)))
                else:
                    out.append(c.update(nv.nvmlDeviceGetTotalEnergyConsumption(h)))
            except nv.NVMLError as exc:
                self.errors[i] = f"nvml GPU{self.rails[i].extra['index']}: {exc}"
                out.append(NAN)
        return out

    def close(self) -> None:
        if self._nv is not None:
            try:
                self._nv.nvmlShutdown()
            except Exception:
                pass
            self._nv = None


def find(roots: Roots, options: dict[str, Any] | None = None) -> NvmlSource:
    """One rail per GPU; ``options["nvml_method"]`` forces "energy" or "power"."""
    method = (options or {}).get("nvml_method")
    nv = _nvml()
    try:
        rails = []
        for i in range(nv.nvmlDeviceGetCount()):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            name = nv.nvmlDeviceGetName(h)
            name = name.decode() if isinstance(name, bytes) else str(name)
            unit = "mW"
            if method != "power":
                try:
                    nv.nvmlDeviceGetTotalEnergyConsumption(h)
                    unit = "mJ"
                except nv.NVMLError:
                    if method == "energy":
                        raise Unavailable(f"nvml: GPU{i} ({name}) has no total-energy counter") from None
            rails.append(
                Rail(
                    f"GPU{i}",
                    unit,
                    (),
                    1.0,
                    {
                        "driver": "nvml",
                        "index": i,
                        "device": name,
                        "method": "energy counter" if unit == "mJ" else "power usage",
                    },
                    sensor_model=INSTANT_SOURCE,
                )
            )
        if not rails:
            raise Unavailable("nvml: no NVIDIA GPU")
        return NvmlSource(rails)
    finally:
        nv.nvmlShutdown()
