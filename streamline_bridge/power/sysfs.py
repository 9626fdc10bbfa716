"""Reading sysfs attribute files fast and robustly, and the source built on them.

Every value file is opened once and re-read with ``os.pread(fd, 64, 0)``. A failed read (EIO or
EAGAIN from the i2c bus, an empty or garbled value, a file that vanished) gives no value for that
sample, closes the descriptor and reopens the path on the next read, so a file that comes back
is picked up again.
"""

from __future__ import annotations

import errno
import glob
import os
from typing import Any

from streamline_bridge.power.source import NAN, Rail, Roots, Source, Unavailable


def read_text(path: str) -> str | None:
    """The stripped content of a small attribute file, or None when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read(4096).decode("utf-8", "replace").strip()
    except OSError:
        return None


def read_number(path: str) -> int | None:
    """The leading integer of an attribute file ("7", "32760 ma"), or None."""
    text = read_text(path)
    if not text:
        return None
    head = text.split()[0]
    try:
        return int(head)
    except ValueError:
        return None


def i2c_devices(roots: Roots, driver_dir: str, absent: str) -> list[tuple[str, str]]:
    """``(device, folder)`` (device such as ``1-0040``) for every device bound to an i2c driver.

    :class:`Unavailable` (``absent`` says what is missing) when the driver folder does not exist.
    """
    base = roots.sys_path(driver_dir)
    if not os.path.isdir(base):
        raise Unavailable(f"{base}: {absent}")
    return [(os.path.basename(d), d) for d in sorted(glob.glob(os.path.join(glob.escape(base), "*-*")))]


def checked_rails(rails: list[Rail], where: str, none_found: str) -> list[Rail]:
    """``rails`` with a name that occurs twice prefixed by its device (``1-0040:VDD_IN``);
    :class:`Unavailable` when there is none."""
    if not rails:
        raise Unavailable(f"{where}: {none_found}")
    names = [r.name for r in rails]
    for r in rails:
        if names.count(r.name) > 1:
            r.name = f"{r.extra['device']}:{r.name}"
    return rails


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return f"{errno.errorcode.get(exc.errno or 0, 'error')} ({exc.strerror})"
    if isinstance(exc, ValueError):
        return "no number in the file"
    return str(exc)


class ValueFile:
    """One integer attribute file, read with ``pread`` on a descriptor kept open."""

    __slots__ = ("path", "fd", "error")

    def __init__(self, path: str):
        self.path = path
        self.fd = -1
        self.error: str | None = None

    def open(self) -> None:
        """Open the file; :class:`Unavailable` when it cannot be opened or read now."""
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            int(os.pread(self.fd, 64, 0))
        except (OSError, ValueError) as exc:
            self.close()
            raise Unavailable(f"{self.path}: {_describe(exc)}") from None

    def read(self) -> int | None:
        """The integer value now, or None (``error`` says why) after a failed read."""
        fd = self.fd
        try:
            if fd < 0:
                fd = self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            return int(os.pread(fd, 64, 0))
        except (OSError, ValueError) as exc:
            self.error = f"{self.path}: {_describe(exc)}"
            self.close()
            return None

    def close(self) -> None:
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1


class SysfsSource(Source):
    """Rails whose value is the product of integer files times a scale (P, or V x I)."""

    def __init__(self, rails: list[Rail], config: dict[str, Any] | None = None):
        super().__init__(rails, config)
        self._plan = [([ValueFile(p) for p in r.files], r.scale) for r in rails]

    def open(self) -> None:
        try:
            for files, _ in self._plan:
                for f in files:
                    f.open()
        except Unavailable:
            self.close()
            raise

    def read(self) -> list[float]:
        out = []
        errors = self.errors
        for i, (files, scale) in enumerate(self._plan):
            value = scale
            for f in files:
                x = f.read()
                if x is None:
                    errors[i] = f.error
                    value = NAN
                    break
                value *= x
            out.append(value)
        return out

    def close(self) -> None:
        for files, _ in self._plan:
            for f in files:
                f.close()

    def configured_update_ns(self) -> int | None:
        """The slowest ``update_interval`` (ms) among ``config["devices"]``, in ns."""
        intervals = [
            d["update_interval_ms"]
            for d in self.config.get("devices", {}).values()
            if d.get("update_interval_ms") is not None
        ]
        return max(intervals) * 1_000_000 if intervals else None
