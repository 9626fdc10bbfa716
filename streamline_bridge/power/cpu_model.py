"""An ESTIMATE of CPU power from utilisation, for machines with no power sensor at all.

P = idle W + per-core W x number of cores x utilisation (CodeCarbon's convention for CPUs it has
no sensor for), utilisation from ``/proc/stat`` deltas over a window (default 100 ms; the kernel
counts in 10 ms ticks). The rail is ``CPU (estimated)`` and every log made from it is marked
estimated. Options: ``cpu_idle_w`` (default 2.0), ``cpu_core_w`` (1.5), ``cpu_window_ms`` (100).
"""

from __future__ import annotations

import os
import time
from typing import Any

from streamline_bridge.power.source import NAN, Rail, Roots, Source, Unavailable
from streamline_bridge.sensor_model import SensorModel

CLOCK = time.CLOCK_MONOTONIC_RAW
RAIL = "CPU (estimated)"
DEFAULTS = {"cpu_idle_w": 2.0, "cpu_core_w": 1.5, "cpu_window_ms": 100}


def _busy_total(text: bytes) -> tuple[int, int]:
    """(busy, total) jiffies from the aggregate ``cpu`` line of /proc/stat."""
    fields = [int(x) for x in text.split(b"\n", 1)[0].split()[1:9]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields)
    return total - idle, total


class CpuModelSource(Source):
    """One estimated rail from /proc/stat."""

    name = "cpu-model"
    estimated = True

    def __init__(self, rails: list[Rail], config: dict[str, Any]):
        super().__init__(rails, config)
        self._path = rails[0].files[0]
        self._fd = -1
        self._window_ns = int(config["cpu_window_ms"] * 1e6)
        self._idle_mw = config["cpu_idle_w"] * 1000.0
        self._full_mw = config["cpu_core_w"] * 1000.0 * config["cores"]
        self._last = (0, 0)
        self._last_ns = 0
        self._power = NAN

    def open(self) -> None:
        try:
            self._fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
            self._last = _busy_total(os.pread(self._fd, 512, 0))
        except (OSError, ValueError, IndexError) as exc:
            self.close()
            raise Unavailable(f"{self._path}: {exc}") from None
        self._last_ns = time.clock_gettime_ns(CLOCK)

    def read(self) -> list[float]:
        now = time.clock_gettime_ns(CLOCK)
        if self._power != self._power:  # no estimate yet: wait out the window begun at open (not NaN)
            time.sleep(max(0, self._last_ns + self._window_ns - now) / 1e9)
            now = time.clock_gettime_ns(CLOCK)
        if now - self._last_ns >= self._window_ns:
            try:
                busy, total = _busy_total(os.pread(self._fd, 512, 0))
            except (OSError, ValueError, IndexError) as exc:
                self.errors[0] = f"{self._path}: {exc}"
                return [NAN]
            d_total = total - self._last[1]
            if d_total > 0:
                util = min(max((busy - self._last[0]) / d_total, 0.0), 1.0)
                self._power = self._idle_mw + self._full_mw * util
                self._last, self._last_ns = (busy, total), now
        return [self._power]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def configured_update_ns(self) -> int | None:
        return self._window_ns


def find(roots: Roots, options: dict[str, Any] | None = None) -> CpuModelSource:
    """The model on ``roots.proc``/stat with the options' (or default) coefficients."""
    path = roots.proc_path("stat")
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as exc:
        raise Unavailable(f"{path}: {exc.strerror}") from None
    cores = sum(1 for line in text.splitlines() if line[:3] == b"cpu" and line[3:4].isdigit())
    if not cores:
        raise Unavailable(f"{path}: no per-CPU lines")
    opts = options or {}
    config: dict[str, Any] = {k: float(opts.get(k, v)) for k, v in DEFAULTS.items()}
    config["cores"] = cores
    config["model"] = "idle_w + core_w x cores x utilisation (estimated, not measured)"
    window_ns = int(config["cpu_window_ms"] * 1e6)  # each estimate is the utilisation over the window before it
    window = SensorModel("window", period_ns=window_ns, source="source") if window_ns > 0 else None
    rail = Rail(RAIL, "W (model)", (path,), 1.0, {"driver": "cpu-model", "estimated": True}, window)
    return CpuModelSource([rail], config)
