"""The energy table in the terminal (rich): execution order, ± confidence intervals, totals, warnings."""

from __future__ import annotations

import math

import pandas as pd
from rich.console import Console
from rich.table import Table

from streamline_bridge.energy import EnergyResult


def _num(value: float, digits: int = 3) -> str:
    return "-" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def _pm(mean: float, ci: float, digits: int = 3) -> str:
    """``mean ± ci`` (just the mean where there is no interval)."""
    if pd.isna(mean):
        return "-"
    return _num(mean, digits) if pd.isna(ci) else f"{mean:.{digits}f}±{ci:.{digits}f}"


def _title(result: EnergyResult) -> str:
    m = result.meta
    warmup = f" after {m['warmup']} warm-up" if m["warmup"] else ""
    title = f"Energy per {m['by']}: {m['iterations_used']} iteration(s){warmup}, ± {m['confidence']:.0%} CI"
    return title + ("  [bold red]ESTIMATED POWER[/bold red]" if result.estimated else "")


def build(result: EnergyResult) -> Table:
    """The rich table: one line per row name, per rail energy ± CI, mean W and share; totals last."""
    tab, m = result.table, result.meta
    rails = list(m["rails"])
    dynamic = {r: m["baseline"] == "idle" and m["rails"][r]["idle_mw"] is not None for r in rails}
    layers = m["by"] == "layer"
    t = Table(title=_title(result), show_footer=True)
    t.add_column(m["by"], footer="mean" if m["by"] == "iteration" else "total", no_wrap=True)
    if layers:
        t.add_column("group", style="dim", no_wrap=True)
    t.add_column("n", justify="right")
    t.add_column("time ms", justify="right")
    totals = result.totals.set_index("rail")
    for rail in rails:
        tag = " (estimated)" if m["rails"][rail]["estimated"] else ""
        tot = totals.loc[rail] if rail in totals.index else None
        t.add_column(f"{rail}{tag} mJ", justify="right",
                     footer="" if tot is None else _pm(tot["energy_mj"], tot["energy_mj_ci"]))
        if dynamic[rail]:
            t.add_column(f"{rail} dyn mJ", justify="right",
                         footer="" if tot is None else _pm(tot["dynamic_mj"], tot["dynamic_mj_ci"]))
        t.add_column("W", justify="right")
        t.add_column("share", justify="right", footer="100%")
    t.add_column("n needed*", justify="right")
    first_total = totals.iloc[0] if len(totals) else None
    t.columns[3 if layers else 2].footer = "" if first_total is None else _pm(first_total["time_ms"], first_total["time_ms_ci"])
    for name, rows in tab.groupby("name", sort=False):
        rows = rows.set_index("rail")
        head = rows.iloc[0]
        under = rows["under_period"].any()
        cells = [name + (" *" if under else "")] + ([str(head["group"])] if layers else []) + \
            [str(head["n"]), _pm(head["time_ms"], head["time_ms_ci"])]
        for rail in rails:
            if rail not in rows.index:
                cells += ["-"] * (4 if dynamic[rail] else 3)
                continue
            r = rows.loc[rail]
            cells.append(_pm(r["energy_mj"], r["energy_mj_ci"]))
            if dynamic[rail]:
                cells.append(_pm(r["dynamic_mj"], r["dynamic_mj_ci"]))
            cells += [_num(r["power_w"]), "-" if pd.isna(r["share"]) else f"{r['share']:.1%}"]
        needed = rows.loc[rows["under_period"], "n_needed"].dropna()
        cells.append(str(int(needed.max())) if len(needed) else "")
        t.add_row(*cells, style="yellow" if under else None)
    return t


def render(result: EnergyResult, console: Console | None = None) -> None:
    """Print the table, then every warning, to ``console`` (default: stdout)."""
    con = console or Console()
    con.print(build(result))
    periods = ", ".join(f"{r} {v['sensor_period_ms']:.3g} ms ({v['period_source']})"
                        for r, v in result.meta["rails"].items() if v["sensor_period_ms"] is not None
                        and not math.isnan(v["sensor_period_ms"]))
    if periods:
        con.print(f"sensor periods: {periods}", highlight=False)
    if result.table["under_period"].any():
        con.print(f"* shorter than the sensor period: statistical value; 'n needed' = iterations for "
                  f"±{result.meta['precision']:.0%} at {result.meta['confidence']:.0%}", highlight=False)
    for w in result.warnings:
        style = "bold red" if w.startswith("ESTIMATED") else "yellow"
        con.print(f"[{style}]warning:[/{style}] {w}", highlight=False, soft_wrap=True)
