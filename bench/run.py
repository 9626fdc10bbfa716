"""Run every benchmark of the project and print one table: ``python -m bench [NAME ...] [--quick]``.

Each ``bench/bench_<name>.py`` defines ``run(quick: bool) -> list[Result]``. A result puts a
measured figure next to a floor or baseline measured in the same run, and the goal it is held to.
Figures are never asserted by tests: this script is where performance is judged.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import shutil
import sys
import tempfile
import timeit
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Result:
    """One measured figure, its baseline from the same run, and the goal."""

    bench: str
    metric: str
    value: float
    unit: str
    baseline: float | None = None  # the floor / baseline figure, same unit, same run
    baseline_name: str = ""
    goal: str = ""
    ok: bool | None = None  # whether the goal is met (None: no goal)

    def __post_init__(self) -> None:  # plain Python numbers (numpy's do not go into JSON)
        self.value = float(self.value)
        self.baseline = None if self.baseline is None else float(self.baseline)
        self.ok = None if self.ok is None else bool(self.ok)

    @property
    def ratio(self) -> float | None:
        """value / baseline (how many times the floor)."""
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """The shortest wall time of ``repeat`` calls of ``fn``, in seconds (the least disturbed run)."""
    return min(timeit.repeat(fn, number=1, repeat=repeat))


def scratch_dir(prefix: str, need_bytes: int = 0) -> Path:
    """A new temporary folder, in ``/dev/shm`` (memory: no disk in the figures) when it is writable
    and has room for twice ``need_bytes``, else in the system's temp folder. The caller removes it."""
    for root in ("/dev/shm", tempfile.gettempdir()):
        if os.access(root, os.W_OK) and shutil.disk_usage(root).free > 2 * need_bytes:
            return Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    raise RuntimeError(f"no temp folder with {2 * need_bytes >> 20} MiB free")


def discover() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name[len("bench_") :] for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help=f"benchmarks to run (default all: {', '.join(discover())})")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args(argv)
    names = args.names or discover()
    results: list[Result] = []
    for name in names:
        mod = importlib.import_module(f"bench.bench_{name}")
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results.extend(mod.run(args.quick))
    _print(results)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) | {"ratio": r.ratio} for r in results], indent=2))
    return 0 if all(r.ok is not False for r in results) else 1


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def _print(results: list[Result]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="streamline-bridge benchmarks")
    for col in ("bench", "metric", "value", "unit", "baseline (same run)", "ratio", "goal", "met"):
        t.add_column(col, justify="right" if col in ("value", "ratio") else "left")
    for r in results:
        base = "-" if r.baseline is None else f"{_fmt(r.baseline)} ({r.baseline_name})"
        met = {True: "[green]yes[/green]", False: "[red]no[/red]", None: ""}[r.ok]
        t.add_row(r.bench, r.metric, _fmt(r.value), r.unit, base, _fmt(r.ratio), r.goal, met)
    Console(width=160).print(t)
