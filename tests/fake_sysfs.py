"""A moving fake sensor: a fixture tree copied to a temporary folder whose value files change over time.

Values are a known function of the update index ``k = (now - t0) // period`` on
CLOCK_MONOTONIC_RAW, so tests check what the sampler read against the function instead of
hoping for timing: a value ``f(k)`` is written no earlier than ``t0 + k x period``, so a sample
whose read ended at ``t`` can only show a ``k`` with ``t0 + k x period <= t``. Files are
rewritten in place (same inode, fixed width, one ``pwrite``) exactly like a sysfs attribute
that a reader keeps open. :meth:`FakeSensor.vanish` empties and unlinks a file (a reader sees a
failed read, then ENOENT on reopen) until :meth:`FakeSensor.restore` brings it back.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

CLOCK = time.CLOCK_MONOTONIC_RAW
WIDTH = 12  # every value is written as "%12d\n"

TX1_IIO = "bus/i2c/drivers/ina3221x/1-0040/iio_device"  # in fixtures/sysfs/tx1-l4t28
TX1_BASES = {"VDD_IN": 10_000, "VDD_GPU": 20_000, "VDD_CPU": 30_000}  # mW at update 0


def tx1_ramps(slope: int = 1) -> dict[str, Callable[[int], int]]:
    """The TX1's power files as ``base + slope x k`` mW: every value says which sensor update it is."""
    return {f"{TX1_IIO}/in_power{i}_input": (lambda k, b=b: b + slope * k) for i, b in enumerate(TX1_BASES.values())}


class FakeSensor:
    """Copies ``fixture`` to ``dest`` and rewrites ``functions`` ({relative path: f(k) -> int}) every ``period_s``."""

    def __init__(
        self,
        fixture: str | os.PathLike[str],
        dest: str | os.PathLike[str],
        period_s: float,
        functions: dict[str, Callable[[int], int]],
    ):
        self.root = Path(dest)
        shutil.copytree(fixture, self.root, dirs_exist_ok=True)
        self.period_ns = int(period_s * 1e9)
        self.functions = functions
        self._gone: set[str] = set()
        self._lock = threading.Lock()
        self.t0 = 0
        self._fds: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def path(self, rel: str) -> Path:
        return self.root / rel

    def _write(self, rel: str, value: int) -> None:
        fd = self._fds.get(rel)
        if fd is None:
            fd = self._fds[rel] = os.open(self.path(rel), os.O_RDWR | os.O_CREAT, 0o644)
            os.ftruncate(fd, WIDTH + 1)
        os.pwrite(fd, b"%*d\n" % (WIDTH, value), 0)

    def vanish(self, rel: str) -> None:
        """Empty and unlink ``rel`` at the writer's next step, and keep it away until :meth:`restore`."""
        with self._lock:
            self._gone.add(rel)

    def restore(self, rel: str) -> None:
        """Recreate ``rel`` (a new file, as a driver re-registering it) at the writer's next step."""
        with self._lock:
            self._gone.discard(rel)

    def _remove(self, rel: str) -> None:
        fd = self._fds.pop(rel, None)
        if fd is not None:
            os.ftruncate(fd, 0)
            os.close(fd)
            os.unlink(self.path(rel))

    def start(self) -> FakeSensor:
        """Write f(0) everywhere (synchronously), then keep the files moving in a thread."""
        self.t0 = time.clock_gettime_ns(CLOCK)
        for rel, f in self.functions.items():
            self._write(rel, f(0))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        last = 0
        while not self._stop.is_set():
            now = time.clock_gettime_ns(CLOCK)
            k = (now - self.t0) // self.period_ns
            with self._lock:
                gone = set(self._gone)
            for rel, f in self.functions.items():
                if rel in gone:
                    self._remove(rel)
                elif k != last or rel not in self._fds:
                    self._write(rel, f(k))
            last = k
            time.sleep(max(0.0, (self.t0 + (k + 1) * self.period_ns - time.clock_gettime_ns(CLOCK)) / 1e9))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __enter__(self) -> FakeSensor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def earliest_ns(self, k: int) -> int:
        """The earliest CLOCK_MONOTONIC_RAW ns at which ``f(k)`` can have been seen."""
        return self.t0 + k * self.period_ns
