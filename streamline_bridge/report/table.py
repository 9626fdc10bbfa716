"""The energy table in the terminal (rich): execution order, ± confidence intervals, totals, warnings.

Written to a file it is plain text (``.txt``, 200 columns). A time-only result (markers without
power, :mod:`streamline_bridge.energy.timetable`) is one table of times.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamline_bridge.report import Renderer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from streamline_bridge.energy import EnergyResult


def _missing(value: Any) -> bool:
    """None, NaN or <NA>."""
    import pandas as pd

    return value is None or bool(pd.isna(value))


def _decimals(value: float) -> int:
    """Decimals that show ~4 significant digits of ``value`` (at least 1, at most 6)."""
    if not value or _missing(value):
        return 3
    return int(min(6, max(1, 3 - math.floor(math.log10(abs(value))))))


def _num(value: float) -> str:
    return "-" if value is None or _missing(value) else f"{value:.{_decimals(value)}f}"


def _pm(mean: float, ci: float) -> str:
    """``mean ±ci`` with the mean's decimals (just the mean where there is no interval)."""
    if _missing(mean):
        return "-"
    d = _decimals(mean)
    return f"{mean:.{d}f}" if _missing(ci) else f"{mean:.{d}f} ±{ci:.{d}f}"


def _resolved(row: object) -> bool:
    """Whether a table row is resolved (rows of tables without the column are)."""
    value = getattr(row, "resolved", True)
    return True if _missing(value) else bool(value)


def build(result: EnergyResult, rail: str) -> Table:
    """The table of one rail: one line per row name, time, energy ± CI, dynamic energy, mean W, share, the
    method where rows differ in it, and the iterations an unresolved row (marked ``?``) needs."""
    from rich.table import Table

    tab, m = result.table, result.meta
    info = m["rails"][rail]
    rows = tab[tab["rail"] == rail]
    dynamic = m["baseline"] == "idle" and info["idle_mw"] is not None
    prefix = rows["name"].str.split("/", n=1).str[0]
    layers = m["by"] == "layer" and bool((rows["group"] != prefix).any())  # else the name says it
    tot = result.totals.set_index("rail").loc[rail]
    title = f"{rail}: {_title(result)}"
    t = Table(title=title, show_footer=True)
    t.add_column(m["by"], footer="mean" if m["by"] == "iteration" else "total", no_wrap=True)
    if layers:
        t.add_column("group", style="dim", no_wrap=True)
    t.add_column("n", justify="right")
    t.add_column("time ms", justify="right", footer=_pm(tot["time_ms"], tot["time_ms_ci"]))
    t.add_column("energy mJ", justify="right", footer=_pm(tot["energy_mj"], tot["energy_mj_ci"]))
    if dynamic:
        t.add_column("above idle mJ", justify="right", footer=_pm(tot["dynamic_mj"], tot["dynamic_mj_ci"]))
    t.add_column("W", justify="right")
    t.add_column("share", justify="right", footer="100%")
    methods = "method" in rows.columns and rows["method"].nunique() > 1
    if methods:
        t.add_column("method", style="dim")
    t.add_column("n needed?", justify="right")
    for r in rows.itertuples(index=False):
        unresolved = not _resolved(r)
        cells = [r.name + (" ?" if unresolved else "")] + ([str(r.group)] if layers else [])
        cells += [str(r.n), _pm(r.time_ms, r.time_ms_ci), _pm(r.energy_mj, r.energy_mj_ci)]
        if dynamic:
            cells.append(_pm(r.dynamic_mj, r.dynamic_mj_ci))
        cells += [_num(r.power_w), "-" if _missing(r.share) else f"{r.share:.1%}"]
        if methods:
            cells.append(str(r.method))
        cells.append(str(r.n_needed) if unresolved and not _missing(r.n_needed) else "")
        t.add_row(*cells, style="yellow" if unresolved else None)
    return t


def build_times(result: EnergyResult) -> Table:
    """The table of a time-only result: one line per row name, time ± CI, share of the time."""
    from rich.table import Table

    tab, m = result.table, result.meta
    tot = result.totals.iloc[0]
    t = Table(title=_title(result, "time"), show_footer=True)
    t.add_column(m["by"], footer="mean" if m["by"] == "iteration" else "total", no_wrap=True)
    t.add_column("n", justify="right")
    t.add_column("time ms", justify="right", footer=_pm(tot["time_ms"], tot["time_ms_ci"]))
    t.add_column("share", justify="right", footer="100%")
    for r in tab.itertuples(index=False):
        t.add_row(r.name, str(r.n), _pm(r.time_ms, r.time_ms_ci), "-" if _missing(r.share) else f"{r.share:.1%}")
    return t


def _title(result: EnergyResult, what: str = "energy") -> str:
    m = result.meta
    warmup = f" after {m['warmup']} warm-up" if m["warmup"] else ""
    return f"{what} per {m['by']}, {m['iterations_used']} iteration(s){warmup}, ± {m['confidence']:.0%} CI"


def render(result: EnergyResult, console: Console | None = None) -> None:
    """Print one table per rail, then every warning, to ``console`` (default: stdout)."""
    from streamline_bridge import board
    from streamline_bridge.report import stdout_console

    con = console or stdout_console()
    if result.meta.get("board"):
        con.print(f"board: {board.summary(result.meta['board'])}", highlight=False, soft_wrap=True)
    estimated = [w for w in result.warnings if w.startswith("ESTIMATED")]
    for w in estimated:  # said once, first
        con.print(f"[bold red]{w}[/bold red]", highlight=False, soft_wrap=True)
    for rail in result.meta["rails"]:
        con.print(build(result, rail))
    if not result.meta["rails"]:
        con.print(build_times(result))
    periods = ", ".join(
        f"{r} {v['sensor_period_ms']:.3g} ms ({v['period_source']})"
        for r, v in result.meta["rails"].items()
        if v["sensor_period_ms"] is not None and not math.isnan(v["sensor_period_ms"])
    )
    if periods:
        con.print(f"sensor periods: {periods}", highlight=False)
    if "resolved" in result.table.columns and not result.table["resolved"].astype(bool).all():
        con.print(
            f"? not resolved by the rail's sensor: the CI says how little is known; 'n needed' = iterations "
            f"for ±{result.meta['precision']:.0%} at {result.meta['confidence']:.0%} (or --method isolate)",
            highlight=False,
        )
    for w in result.warnings:
        if w not in estimated:
            con.print(f"[yellow]warning:[/yellow] {w}", highlight=False, soft_wrap=True)


def write(result: EnergyResult, recording: Any, path: Path) -> list[Path]:
    """The tables as plain text in ``path`` (200 columns)."""
    from rich.console import Console

    with open(path, "w", encoding="utf-8") as out:
        render(result, Console(file=out, width=200, soft_wrap=False))
    return [path]


RENDERERS = [
    Renderer(
        "table",
        (".txt",),
        write,
        ("EnergyResult",),
        "the tables as text (the terminal's default)",
        show=lambda result, recording: render(result),
    )
]
