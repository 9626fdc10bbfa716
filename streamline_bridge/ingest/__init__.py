"""Ingestion: one reader module per on-disk format, all returning one :class:`~streamline_bridge.model.Recording`.

Each reader module defines ``FORMAT`` (a short name), ``sniff(path) -> bool`` (cheap: looks at a
name or the first bytes) and ``read(path) -> Recording``. :func:`read` picks the reader.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from pathlib import Path
from types import ModuleType

from streamline_bridge.errors import InputError
from streamline_bridge.ingest.files import check_input
from streamline_bridge.model import Recording

log = logging.getLogger("streamline_bridge")

# Tried in this order; binary formats with magic bytes first, loose text formats last.
READER_MODULES = (
    "run_dir",
    "apc",
    "marker_log",
    "power_log",
    "tegrastats",
    "streamline_export",
)


def _reader(name: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{name}")


def available_readers() -> dict[str, ModuleType]:
    """``{FORMAT: module}`` for every reader that is installed."""
    out = {}
    for name in READER_MODULES:
        try:
            mod = _reader(name)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            continue
        out[mod.FORMAT] = mod
    return out


def detect(path: str | os.PathLike[str]) -> str:
    """The format name of ``path``, or :class:`InputError` naming what was tried."""
    p = Path(path)
    check_input(p)
    readers = available_readers()
    for fmt, mod in readers.items():
        if mod.sniff(p):
            return fmt
    raise InputError(p, f"not a recognised recording (tried: {', '.join(readers)})")


def read(path: str | os.PathLike[str], format: str | None = None) -> Recording:
    """Read any supported recording; ``format`` skips detection."""
    check_input(path)
    fmt = format or detect(path)
    readers = available_readers()
    if fmt not in readers:
        raise InputError(path, f"unknown format {fmt!r} (known: {', '.join(readers)})")
    start = time.perf_counter()
    rec = readers[fmt].read(Path(path))
    log.debug(
        f"read {os.fspath(path)} as {fmt} in {time.perf_counter() - start:.3f} s: {len(rec.markers)} markers, "
        f"{len(rec.power)} power samples, {len(rec.meta.issues)} issue(s)"
    )
    return rec
