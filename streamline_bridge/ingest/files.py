"""Opening inputs: only regular files are read (a named pipe would block, a device would never end)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from streamline_bridge.errors import InputError

_KINDS = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a folder"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def check_input(path: str | os.PathLike[str]) -> None:
    """:class:`InputError` unless ``path`` is a regular file or a folder (symbolic links followed)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise InputError(
            path, "no such file or directory" if not os.path.lexists(path) else exc.strerror or str(exc)
        ) from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise InputError(path, f"{_kind(mode)}, not a file: only regular files are read")


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """``path`` opened for reading in binary; :class:`InputError` when it cannot be, or is not a regular file.

    Opened without blocking first, so that a named pipe with no writer is refused, not waited on.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise InputError(path, f"{_kind(mode)}, not a file: only regular files are read")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_regular(path: str | os.PathLike[str]) -> bytes:
    """The whole content of a regular file (see :func:`open_regular`)."""
    with open_regular(path) as f:
        try:
            return f.read()
        except OSError as exc:
            raise InputError(Path(path), exc.strerror or str(exc)) from None
