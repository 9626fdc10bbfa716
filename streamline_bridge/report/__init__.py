"""Renderers of results, one interface, one registry: ``report``, ``profile`` and ``compare`` loop over it.

A renderer is a :class:`Renderer` in the ``RENDERERS`` list of a module of this package: what it is
called, which results it renders, which suffixes it writes and ``write(result, recording, path)``.
Adding one is adding one module: :func:`registry` finds it. Modules: ``table`` (rich, terminal or
text), ``files`` (CSV / JSON / Parquet), ``plot`` (PNG / SVG), ``trace`` (Perfetto JSON),
``comparison`` (the table and plot of ``compare``).

:func:`emit` writes a renderer's output to a file, or to stdout for ``-`` (and to any target that
is not a regular file, such as ``/dev/stdout``): the metadata companion (``.meta.json``) only goes
beside a regular file.
"""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

STDOUT = "-"


@dataclass(frozen=True)
class Renderer:
    """One output: ``write(result, recording, path)`` writes the files (returns them), first the main one.

    ``option``: ``None`` for a table format (``--format NAME`` / ``-o`` with one of ``suffixes``),
    else the command-line option of an extra output (``plot`` -> ``--plot FILE``). ``run_file``:
    its file in a run folder (written by ``profile``; None: not written there). ``accepts``: the
    result types it renders. ``meta``: a ``.meta.json`` companion goes beside a regular file.
    """

    name: str
    suffixes: tuple[str, ...]
    write: Callable[[Any, Any, Path], list[Path]]
    accepts: tuple[str, ...]  # class names of the results it renders (modules stay light to import)
    help: str
    option: str | None = None
    run_file: str | None = None
    meta: bool = False
    binary: bool = False
    show: Callable[[Any, Any], None] | None = None  # how it prints on stdout, where that differs from the file

    def renders(self, result: Any) -> bool:
        """True when this renderer draws ``result``'s type."""
        return type(result).__name__ in self.accepts


@lru_cache(maxsize=1)
def registry() -> tuple[Renderer, ...]:
    """Every renderer of every module of this package, in module order."""
    found: list[Renderer] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        found += getattr(importlib.import_module(f"{__name__}.{info.name}"), "RENDERERS", [])
    return tuple(found)


def renderers(result_type: str, option: str | None = None) -> list[Renderer]:
    """Renderers of results of class ``result_type``: the table formats (``option=None``) or the extra output ``option``."""
    return [r for r in registry() if result_type in r.accepts and r.option == option]


def extra_options(result_type: str) -> list[Renderer]:
    """The first renderer of each extra-output option (``plot``, ``trace`` ...) for results of class ``result_type``."""
    first: dict[str, Renderer] = {}
    for r in registry():
        if result_type in r.accepts and r.option:
            first.setdefault(r.option, r)
    return list(first.values())


def by_suffix(candidates: list[Renderer], path: str | Path) -> Renderer | None:
    """The renderer among ``candidates`` that writes ``path``'s suffix (``.pq`` = ``.parquet``)."""
    suffix = Path(path).suffix.lower()
    return next((r for r in candidates if suffix in r.suffixes), None)


def by_name(candidates: list[Renderer], name: str) -> Renderer | None:
    """The renderer among ``candidates`` called ``name``."""
    return next((r for r in candidates if r.name == name), None)


def stdout_console() -> Any:
    """A rich console on stdout; off a terminal (a file, a pipe) 160 columns at least, so tables do not wrap."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 160)
    return console


def is_stream(target: str | Path) -> bool:
    """``-`` (stdout) or something that exists and is not a regular file (``/dev/stdout``, a pipe)."""
    return str(target) == STDOUT or (Path(target).exists() and not Path(target).is_file())


def emit(
    renderer: Renderer, result: Any, recording: Any, target: str | Path, meta_file: str | Path | None = None
) -> list[Path]:
    """Write ``result`` with ``renderer`` to ``target`` (a file, ``-`` or a stream); returns the files written.

    A stream gets only the main output (written to a temporary file first, then copied). The
    metadata companion is written beside a regular file, or to ``meta_file`` when given.
    """
    from streamline_bridge.report import files

    written: list[Path] = []
    if str(target) == STDOUT and renderer.show is not None:
        renderer.show(result, recording)
    elif is_stream(target):
        with tempfile.TemporaryDirectory() as tmp:
            main = renderer.write(result, recording, Path(tmp) / f"out{renderer.suffixes[0]}")[0]
            if str(target) == STDOUT:
                sys.stdout.flush()
                out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else None
                if out is None or not renderer.binary:
                    sys.stdout.write(main.read_text(encoding="utf-8"))
                else:
                    out.write(main.read_bytes())
                sys.stdout.flush()
            else:
                with open(main, "rb") as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    else:
        written = renderer.write(result, recording, Path(target))
        if renderer.meta and meta_file is None:
            written.append(files.write_meta(result, files.meta_path(target)))
    if meta_file is not None:
        written.append(files.write_meta(result, Path(meta_file)))
    return written
