"""Power sampler: achieved rate, sampling-period error and CPU share at 1 kHz and 10 kHz.

On a copy of the TX1 fixture tree (3 rails, in /dev/shm when there is one), next to the floor
measured in the same run: a bare loop of ``os.pread`` over the same three files (samples/s);
and the sampler asked for 1 MHz, i.e. its loop with no sleeping, against the same floor.
Period error = |interval between successive read starts - period|, from the power log. Its floor,
and the CPU share's, is a process that only wakes on the same deadlines (:mod:`bench.wakeups`):
what this machine's timers give any sampler; the two alternate, and each figure is the median of
the rounds. Goals: 1 kHz with p99 period error < 100 µs and < 10% of one core; 10 kHz sustained.
Each rate runs at normal priority, and with ``realtime=True`` (SCHED_FIFO) where that is permitted.
The CPU time the hypervisor stole meanwhile (/proc/stat) is reported: on a virtual machine it
bounds what any timer can do.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.run import Result, scratch_dir
from bench.wakeups import Wakeups
from streamline_bridge.power import Sampler
from streamline_bridge.power.log import read_log
from streamline_bridge.power.sampling import Config

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


def _period_error_us(times: np.ndarray, rate_hz: float) -> np.ndarray:
    """|interval between successive wake-ups (read starts) - period|, in µs."""
    return np.abs(np.diff(times) - 1e9 / rate_hz) / 1e3


def _steal() -> tuple[int, int]:
    """(steal, total) CPU time in ticks from /proc/stat: how much the hypervisor took."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0, 0
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def _case(rate_hz: float, run: Callable[[], tuple[np.ndarray, float, dict]]) -> dict:
    """Runs ``run`` (-> wake-up times, CPU share, extra figures) and measures it."""
    steal0 = _steal()
    times, cpu, extra = run()
    steal1 = _steal()
    err = _period_error_us(times, rate_hz)
    total = steal1[1] - steal0[1]
    return {
        "achieved": (len(times) - 1) / ((times[-1] - times[0]) / 1e9),
        "p50": float(np.percentile(err, 50)),
        "p99": float(np.percentile(err, 99)),
        "cpu": 100 * cpu,
        "steal": 100 * (steal1[0] - steal0[0]) / total if total else 0.0,
        **extra,
    }


def _sample(
    root: Path, out: Path, rate_hz: float, seconds: float, realtime: bool, spin_us: float = Config.spin_us
) -> dict:
    def run() -> tuple[np.ndarray, float, dict]:
        out.unlink(missing_ok=True)  # the sampler creates its log new (never writes through an old file)
        with Sampler(out, sysfs_root=root, rate_hz=rate_hz, realtime=realtime, spin_us=spin_us) as s:
            time.sleep(seconds)
        return (
            read_log(out).t_start,
            s.stats["cpu_share"],
            {"missed": s.stats["missed_ticks"], "realtime": s.info["realtime"]},
        )

    return _case(rate_hz, run)


def _floor_case(rate_hz: float, seconds: float, realtime: bool) -> dict:
    def run() -> tuple[np.ndarray, float, dict]:
        with Wakeups(rate_hz, Config.spin_us, realtime) as w:
            time.sleep(seconds)
        return w.times, w.cpu_share, {"realtime": w.realtime}

    return _case(rate_hz, run)


def _median(runs: list[dict]) -> dict:
    return {k: float(np.median([r[k] for r in runs])) for k in runs[0] if k != "realtime"} | {
        "realtime": all(r["realtime"] for r in runs)
    }


def run(quick: bool) -> list[Result]:
    seconds, rounds = (1.0, 1) if quick else (2.0, 3)
    tmp = scratch_dir("bench-sampler-")
    try:
        root = tmp / "sys"
        shutil.copytree(FIXTURE, root)
        floor = _floor(root, min(seconds, 1.0))
        flat_out = _sample(root, tmp / "max.sbp", 1e6, min(seconds, 1.0), False, spin_us=0)
        results = [
            Result(
                "sampler",
                "as fast as it can (no deadline met)",
                flat_out["achieved"],
                "samples/s",
                floor,
                "bare pread loop",
                ">= 10,000",
                flat_out["achieved"] >= 10_000,
            )
        ]
        for rate, realtime in ((1000.0, False), (10000.0, False), (1000.0, True), (10000.0, True)):
            pairs = [
                (_floor_case(rate, seconds, realtime), _sample(root, tmp / "p.sbp", rate, seconds, realtime))
                for _ in range(rounds)
            ]  # alternated: the machine's state changes between rounds
            wake, r = _median([p[0] for p in pairs]), _median([p[1] for p in pairs])
            if realtime and not r["realtime"]:
                continue  # SCHED_FIFO not permitted here
            tag = f"{rate / 1000:g} kHz" + (" SCHED_FIFO" if realtime else "")
            one_k = rate == 1000
            results += [
                Result(
                    "sampler",
                    f"{tag}: achieved rate",
                    r["achieved"],
                    "samples/s",
                    floor,
                    "bare pread loop",
                    f">= {0.95 * rate:,.0f}",
                    r["achieved"] >= 0.95 * rate,
                ),
                Result("sampler", f"{tag}: period error p50", r["p50"], "µs", wake["p50"], "wake-ups only"),
                Result(
                    "sampler",
                    f"{tag}: period error p99",
                    r["p99"],
                    "µs",
                    wake["p99"],
                    "wake-ups only",
                    goal="< 100 µs" if one_k else "",
                    ok=r["p99"] < 100 if one_k else None,
                ),
                Result(
                    "sampler",
                    f"{tag}: CPU share",
                    r["cpu"],
                    "% of a core",
                    wake["cpu"],
                    "wake-ups only",
                    goal="< 10 %" if one_k else "",
                    ok=r["cpu"] < 10 if one_k else None,
                ),
                Result("sampler", f"{tag}: missed ticks", r["missed"], "ticks"),
                Result("sampler", f"{tag}: CPU time stolen by the host", r["steal"], "% (during the sampler runs)"),
            ]
        return results
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
