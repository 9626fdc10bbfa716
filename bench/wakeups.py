"""The platform's floor for a sampler: a process that only wakes on the sampler's deadlines.

The child sets itself up as the sampler does (``prepare_process``: 1 ns timer slack, optionally
pinned to a CPU or SCHED_FIFO), then waits for each deadline ``start + i x period`` as the sampler does
(``sleep_until``: sleep, then spin the last ``spin_us``) and stamps the clock, skipping the ticks it was too late for, with no read and no log. What
it achieves is what this machine's timers allow any sampler at that rate (its period error), and
what it costs a workload running beside it is what waking that often costs (bench_profile).

``with Wakeups(1000, 60) as w: ...`` then ``w.times`` (ns, CLOCK_MONOTONIC_RAW) and ``w.cpu_share``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from array import array
from pathlib import Path

import numpy as np

from streamline_bridge.power.tuning import CLOCK, prepare_process, sleep_until

ROOT = Path(__file__).resolve().parents[1]


class Wakeups:
    """Runs the wake-up-only child while inside the ``with`` block."""

    def __init__(self, rate_hz: float, spin_us: float, realtime: bool = False, cpu: int | None = None) -> None:
        self.command = [
            sys.executable,
            "-m",
            "bench.wakeups",
            str(rate_hz),
            str(spin_us),
            str(int(realtime)),
            "" if cpu is None else str(cpu),
        ]
        self.times = np.zeros(0, dtype=np.int64)
        self.cpu_share = float("nan")
        self.realtime = False
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Wakeups:
        self._proc = subprocess.Popen(self.command, cwd=ROOT, stdout=subprocess.PIPE)
        assert self._proc.stdout is not None
        self.realtime = json.loads(self._proc.stdout.readline())["realtime"]  # after its first wake-up
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        self._proc.terminate()
        out = self._proc.stdout.read()
        self._proc.wait()
        summary_line, _, raw = out.partition(b"\n")
        summary = json.loads(summary_line)
        self.cpu_share = summary["cpu_s"] / summary["wall_s"]
        self.times = np.frombuffer(raw, dtype=np.int64)


def _main(rate_hz: float, spin_us: float, realtime: bool, cpu: int | None) -> None:
    realtime = prepare_process(cpu, realtime)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    clock = time.clock_gettime_ns
    period, spin = round(1e9 / rate_hz), int(spin_us * 1000)
    times = array("q")
    cpu0, wall0 = time.process_time(), time.monotonic()
    begin, tick = clock(CLOCK), 0
    while not stopping:
        tick += sleep_until(begin + tick * period, spin) // period  # skip the ticks it was too late for
        times.append(clock(CLOCK))
        tick += 1
        if len(times) == 1:
            print(json.dumps({"realtime": realtime}), flush=True)
    summary = {"cpu_s": time.process_time() - cpu0, "wall_s": time.monotonic() - wall0}
    sys.stdout.buffer.write(json.dumps(summary).encode() + b"\n" + times.tobytes())
    sys.stdout.flush()


if __name__ == "__main__":
    _main(float(sys.argv[1]), float(sys.argv[2]), bool(int(sys.argv[3])), int(sys.argv[4]) if sys.argv[4] else None)
