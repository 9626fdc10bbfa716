"""Live sensor simulation for end-to-end tests: a fake sysfs tree whose value files follow a sensor model.

A true-power schedule (``streamline_bridge.simulate``) is laid out relative to the moment the fake
sensor starts; every file's register values are computed once from it, through the same forward
model the energy core inverts (``energy.sensors``), and :class:`fake_sysfs.FakeSensor` writes update
``k`` no earlier than ``t0 + k x period``. The workload script sleeps until each scheduled layer start
(absolute CLOCK_MONOTONIC_RAW) and marks it, so the markers follow the schedule within the wake-up
latency.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from streamline_bridge import simulate as sim
from streamline_bridge.energy import sensors
from streamline_bridge.sensor_model import SensorModel


def register_functions(
    truth: sim.Truth, files: dict[str, str], model: SensorModel, period_ns: int, updates: int
) -> dict[str, Callable[[int], int]]:
    """``{file: f(k)}``: the integer mW the sensor shows after its update ``k`` (times relative to 0)."""
    grid = sensors.Grid(float(period_ns), 0.0)
    t_k = grid.at(np.arange(updates)) + 1.0  # a read just after update k
    out = {}
    for rel, rail in files.items():
        if model.kind == "instant":
            values = sensors.value_at(truth.edges, truth.power[rail], t_k)
        else:
            values = sensors.forward(model, grid, truth.edges, truth.power[rail], t_k)
        regs = np.round(values).astype(np.int64)
        out[rel] = lambda k, regs=regs: int(regs[min(k, len(regs) - 1)])
    return out


def workload_script(truth: sim.Truth, t0_ns: int) -> str:
    """A Python script that marks every occurrence of ``truth`` at ``t0_ns`` + its scheduled time."""
    occ = truth.occurrences
    items = [
        (int(it), str(name), int(a) + t0_ns, int(b) + t0_ns)
        for it, name, a, b in zip(occ["iteration"], occ["name"], occ["start_ns"], occ["end_ns"])
    ]
    return f"""
import time, annotate
CLOCK = time.CLOCK_MONOTONIC_RAW
def until(t):
    while True:
        left = t - time.clock_gettime_ns(CLOCK)
        if left <= 0:
            return
        time.sleep(min(left / 1e9, 0.05) if left > 2_000_000 else 0)
annotate.name_channel(3, 1, "layers")
last = None
for it, name, a, b in {items!r}:
    until(a)
    if it != last:
        annotate.marker(f"iteration {{it}}")
        last = it
    annotate.text(name, channel=3)
    until(b)
    annotate.end(channel=3)
"""
