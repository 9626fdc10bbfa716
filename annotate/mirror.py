"""Marker log writer (format: ``docs/marker-log.md``, layout: :mod:`annotate.marker_log_layout`).

The file holds the same message bytes as the wire, grouped per stream (one stream per thread,
id = the thread's native id). Every record is one ``write()`` on an ``O_APPEND`` descriptor, so
several processes (a forked child, or another process given the same path) can share a file.
"""

import fcntl
import os
import socket
import sys
import time
from typing import Any, Dict, Union

from annotate.marker_log_layout import CLOSED, MAGIC, MESSAGES, OPENED, VERSION, header, record  # noqa: F401
from annotate.wire import RAW_CLOCK, clock_ns


def metadata(protocol: int, writer: str = "annotate") -> Dict[str, Any]:
    """The header's JSON object, with the clock pair taken now."""
    mono = clock_ns(RAW_CLOCK)
    real = clock_ns(time.CLOCK_REALTIME)
    return {
        "writer": writer,
        "clock": "CLOCK_MONOTONIC_RAW",
        "monotonic_raw_ns": mono,
        "realtime_ns": real,
        "pid": os.getpid(),
        "protocol": protocol,
        "host": socket.gethostname(),
        "argv": list(sys.argv),
    }


class MarkerLogError(OSError):
    """The path exists but is not a marker log (it is left untouched)."""


class MarkerLog:
    """An open marker log. A new or empty file gets a header; an existing marker log is appended to."""

    def __init__(self, path: Union[str, os.PathLike], protocol: int, writer: str = "annotate") -> None:
        self.path = os.fspath(path)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # against another process creating the same file
            try:
                if os.fstat(fd).st_size == 0:
                    self._write(fd, header(metadata(protocol, writer)))
                else:
                    with open(self.path, "rb") as f:
                        if f.read(len(MAGIC)) != MAGIC:
                            raise MarkerLogError(f"{self.path}: exists and is not a marker log; not writing to it")
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    @staticmethod
    def _write(fd: int, data: bytes) -> None:
        n = os.write(fd, data)
        if n < len(data):  # only on a full disk or a signal: write the rest
            view = memoryview(data)[n:]
            while view:
                view = view[os.write(fd, view) :]

    def write(self, data: bytes) -> None:
        """Append whole records (one ``write()`` unless the kernel takes less)."""
        self._write(self.fd, data)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
