"""A running ``tegrastats --interval MS``, for boards whose power sysfs is closed (the last resort).

The power fields of every release are understood (``NAME cur/avg`` on L4T <= 32, ``NAME
curmW/avgmW`` on L4T 35/36, ``NAME amW/bmW/cmW`` on L4T 39; parsed by the tegrastats log reader's
line parser); the current (first) value is the rail's power, repeated until the next line. Rails labelled ``NC`` are skipped.
Options: ``tegrastats`` (the executable), ``tegrastats_interval_ms`` (default 100).
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import threading
import time
from typing import IO, Any

from streamline_bridge.power.source import NAN, Rail, Roots, Source, Unavailable
from streamline_bridge.power.tegrastats_format import NOT_CONNECTED, parse_line
from streamline_bridge.sensor_model import SensorModel

DEFAULT_INTERVAL_MS = 100
FIRST_LINE_TIMEOUT_S = 3.0


def parse_power(line: str) -> dict[str, float]:
    """``{rail: current mW}`` from one tegrastats line; ``NC`` (not connected) rails left out."""
    parsed = parse_line(line)
    if parsed is None:
        return {}
    return {name: mw for name, mw in parsed.rails.items() if name.split("#")[0] != NOT_CONNECTED}


def _command(options: dict[str, Any]) -> tuple[list[str], int]:
    exe = options.get("tegrastats") or shutil.which("tegrastats")
    if not exe:
        raise Unavailable("tegrastats: not found on PATH")
    interval = int(options.get("tegrastats_interval_ms", DEFAULT_INTERVAL_MS))
    return [str(exe), "--interval", str(interval)], interval


def _first_power_line(proc: subprocess.Popen[bytes], timeout_s: float) -> dict[str, float]:
    """The power fields of the first line that has any, read without blocking past ``timeout_s``."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout_s
    buf = b""
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            fields = parse_power(line.decode("utf-8", "replace"))
            if fields:
                return fields
    return {}


class TegrastatsSource(Source):
    """Rails parsed from the lines of a ``tegrastats`` child process."""

    name = "tegrastats"

    def __init__(self, rails: list[Rail], config: dict[str, Any]):
        super().__init__(rails, config)
        self._index = {r.name: i for i, r in enumerate(rails)}
        self._latest = [NAN] * len(rails)
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        try:
            self._proc = subprocess.Popen(
                self.config["command"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
            )
        except OSError as exc:
            raise Unavailable(f"tegrastats: {exc}") from None
        self._thread = threading.Thread(target=self._follow, args=(self._proc.stdout,), daemon=True)
        self._thread.start()

    def _follow(self, stream: IO[bytes]) -> None:
        for raw in stream:
            for name, mw in parse_power(raw.decode("utf-8", "replace")).items():
                i = self._index.get(name)
                if i is not None:
                    self._latest[i] = mw
        command = " ".join(self.config["command"])
        self.errors = [f"{command}: tegrastats exited"] * len(self.rails)
        self._latest = [NAN] * len(self.rails)

    def read(self) -> list[float]:
        return list(self._latest)

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
            self._proc.wait()
            self._proc = None
        if self._thread is not None:
            self._thread.join(timeout=1)
            self._thread = None

    def configured_update_ns(self) -> int | None:
        return int(self.config["interval_ms"]) * 1_000_000


def find(roots: Roots, options: dict[str, Any] | None = None) -> TegrastatsSource:
    """Start tegrastats once to learn its rails (its first line with power fields)."""
    command, interval = _command(options or {})
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise Unavailable(f"tegrastats: {exc}") from None
    try:
        fields = _first_power_line(proc, FIRST_LINE_TIMEOUT_S + 2 * interval / 1000)
    finally:
        proc.kill()
        proc.wait()
    if not fields:
        raise Unavailable(f"{command[0]}: printed no power rails (TX1 on L4T 28 has none: use sysfs)")
    model = SensorModel("window", period_ns=interval * 1_000_000, source="source")  # a value per interval
    rails = [Rail(name, "mW", (), 1.0, {"driver": "tegrastats"}, model) for name in fields]
    return TegrastatsSource(rails, {"command": command, "interval_ms": interval})
