"""Process tuning for the power sampler: CPU pinning and reservation, timer slack, real-time
priority, and the sleep-then-spin wait on absolute deadlines (CLOCK_MONOTONIC_RAW)."""

from __future__ import annotations

import ctypes
import os
import time

CLOCK = time.CLOCK_MONOTONIC_RAW  # the marker clock: every sample and deadline is on it
PR_SET_TIMERSLACK = 29


def _set_timerslack_ns(ns: int) -> None:
    """Ask for precise sleeps (default slack is 50 µs); best effort, Linux only."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_TIMERSLACK, ctypes.c_ulong(ns), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _go_realtime() -> bool:
    """Switch this process to SCHED_FIFO at a low real-time priority; False when not permitted."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(min(10, os.sched_get_priority_max(os.SCHED_FIFO))))
        return True
    except (OSError, AttributeError):
        return False


def prepare_process(cpu: int | None, realtime: bool) -> bool:
    """Set this process up for sampling: pinned to ``cpu`` (if given), 1 ns timer slack and, if asked,
    SCHED_FIFO; returns whether it runs real-time."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    _set_timerslack_ns(1)
    return realtime and _go_realtime()


def reserve_cpu(cpu: int | None = None) -> int:
    """Keep the calling thread, and what it starts from then on (threads, child processes, thread
    pools sized from the affinity mask, such as OpenBLAS's), off one CPU for the sampler: ``cpu``, or
    the highest this process may use; returns it. ValueError when no other CPU would be left."""
    cpus = os.sched_getaffinity(0)
    cpu = max(cpus) if cpu is None else cpu
    rest = cpus - {cpu}
    if not rest:
        raise ValueError(
            f"cannot reserve CPU {cpu} for the sampler: this process may only run on CPU "
            f"{', '.join(map(str, sorted(cpus)))}"
        )
    os.sched_setaffinity(0, rest)
    return cpu


def sleep_until(target: int, spin_ns: int) -> int:
    """Wait until CLOCK reads ``target`` ns: sleep to ``spin_ns`` before it, then spin the rest (a
    wake-up is late by tens of µs, a spin is not); returns how late the call itself came, in ns."""
    now = time.clock_gettime_ns(CLOCK)
    if now >= target:
        return now - target
    if target - now > spin_ns:
        time.sleep((target - now - spin_ns) * 1e-9)
    while time.clock_gettime_ns(CLOCK) < target:
        pass
    return 0
