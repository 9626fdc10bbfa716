"""Power sampler: achieved rate, sampling-period error and CPU share at 1 kHz and 10 kHz.

On a copy of the TX1 fixture tree (3 rails, in /dev/shm when there is one), next to the floor
measured in the same run: a bare loop of ``os.pread`` over the same three files (samples/s);
and the sampler asked for 1 MHz, i.e. its loop with no sleeping, against the same floor.
Period error = |interval between successive read starts - period|, from the power log.
Goals: 1 kHz with p99 period error < 100 µs and < 10% of one core; 10 kHz sustained. Each rate
runs twice: at normal priority, and with ``realtime=True`` (SCHED_FIFO) where that is permitted.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.run import Result
from streamline_bridge.power import Sampler
from streamline_bridge.power.log import read_log
from streamline_bridge.power.sampler import Config

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures/sysfs/tx1-l4t28"
FILES = [f"bus/i2c/drivers/ina3221x/1-0040/iio_device/in_power{k}_input" for k in range(3)]


def _floor(root: Path, seconds: float) -> float:
    """Samples/s of a bare loop reading the three files with pread (descriptors kept open)."""
    fds = [os.open(root / f, os.O_RDONLY) for f in FILES]
    n = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(100):
            for fd in fds:
                int(os.pread(fd, 64, 0))
        n += 100
    for fd in fds:
        os.close(fd)
    return n / seconds


def _sample(root: Path, out: Path, rate_hz: float, seconds: float, realtime: bool, spin_us: float = Config.spin_us) -> dict:
    with Sampler(out, sysfs_root=root, rate_hz=rate_hz, realtime=realtime, spin_us=spin_us) as s:
        time.sleep(seconds)
    log = read_log(out)
    gaps = np.diff(log.t_start)
    err_us = np.abs(gaps - 1e9 / rate_hz) / 1e3
    return {"achieved": s.stats["achieved_hz"], "p50": float(np.percentile(err_us, 50)),
            "p99": float(np.percentile(err_us, 99)), "cpu": 100 * s.stats["cpu_share"],
            "missed": s.stats["missed_ticks"], "realtime": s.info["realtime"]}


def run(quick: bool) -> list[Result]:
    seconds = 1.0 if quick else 4.0
    base = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else None
    tmp = Path(tempfile.mkdtemp(prefix="bench-sampler-", dir=base))
    try:
        root = tmp / "sys"
        shutil.copytree(FIXTURE, root)
        floor = _floor(root, min(seconds, 1.0))
        flat_out = _sample(root, tmp / "max.sbp", 1e6, min(seconds, 1.0), False, spin_us=0)
        results = [Result("sampler", "as fast as it can (no deadline met)", flat_out["achieved"], "samples/s", floor,
                          "bare pread loop", ">= 10,000", flat_out["achieved"] >= 10_000)]
        for rate, goal_cpu, realtime in ((1000.0, 10.0, False), (10000.0, None, False),
                                         (1000.0, 10.0, True), (10000.0, None, True)):
            r = _sample(root, tmp / f"p{int(rate)}.sbp", rate, seconds, realtime)
            if realtime and not r["realtime"]:
                continue  # SCHED_FIFO not permitted here
            tag = f"{rate / 1000:g} kHz" + (" SCHED_FIFO" if realtime else "")
            results += [
                Result("sampler", f"{tag}: achieved rate", r["achieved"], "samples/s", floor, "bare pread loop",
                       f">= {0.95 * rate:,.0f}", r["achieved"] >= 0.95 * rate),
                Result("sampler", f"{tag}: period error p50", r["p50"], "µs"),
                Result("sampler", f"{tag}: period error p99", r["p99"], "µs", goal="< 100 µs" if rate == 1000 else "",
                       ok=r["p99"] < 100 if rate == 1000 else None),
                Result("sampler", f"{tag}: CPU share", r["cpu"], "% of a core",
                       goal=f"< {goal_cpu:g} %" if goal_cpu else "", ok=r["cpu"] < goal_cpu if goal_cpu else None),
                Result("sampler", f"{tag}: missed ticks", r["missed"], "ticks"),
            ]
        return results
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
