"""Power from a cumulative energy counter (RAPL ``energy_uj``, NVML total energy).

Power is ΔE/Δt between successive *changes* of the counter, timed on CLOCK_MONOTONIC_RAW; while
the counter has not moved, the last power is repeated (the sensor has not updated), exactly as a
power register would read. A counter that goes backwards has wrapped at ``wrap`` (RAPL's
``max_energy_range_uj``). Before the first change there is no power: NaN.
"""

from __future__ import annotations

import time

from streamline_bridge.power.source import NAN

CLOCK = time.CLOCK_MONOTONIC_RAW


class CounterPower:
    """Turns counter readings into mW; ``mw_factor`` = mW per (counter unit / ns)."""

    __slots__ = ("mw_factor", "wrap", "last_value", "last_ns", "power")

    def __init__(self, mw_factor: float, wrap: int | None = None):
        self.mw_factor = mw_factor
        self.wrap = wrap
        self.last_value: int | None = None
        self.last_ns = 0
        self.power = NAN

    def update(self, value: int, t_ns: int | None = None) -> float:
        """Feed one counter reading taken at ``t_ns`` (now if None); returns the power in mW."""
        t = time.clock_gettime_ns(CLOCK) if t_ns is None else t_ns
        last = self.last_value
        if last is None:
            self.last_value, self.last_ns = value, t
        elif value != last and t > self.last_ns:
            delta = value - last
            if delta < 0 and self.wrap:
                delta += self.wrap
            self.power = delta * self.mw_factor / (t - self.last_ns)
            self.last_value, self.last_ns = value, t
        return self.power
