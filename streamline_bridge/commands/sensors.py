"""List the power sensors this machine has (or a copy of its /sys has): every source in discovery
order, each rail with its driver, files, unit, current value, and update interval (both as
configured and as measured by polling for a moment) and sensor model with where it came from
(docs/energy-table.md). Sources that cannot be used say why. Then
the board's state (L4T release, kernel, CPU, nvpmodel mode, jetson_clocks, CPU/GPU/EMC clocks
and governors, temperatures; ``--board`` alone, with ``--json`` as JSON). The files outside /sys
and /proc (``etc/nv_tegra_release`` ...) are read beside the sysfs root: ``--sysfs-root tree/sys``
reads ``tree/etc``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

HELP = "list power sources and rails, their values and update intervals"


def configure(parser: argparse.ArgumentParser) -> None:
    from streamline_bridge.power.discovery import add_source_arguments

    add_source_arguments(parser)
    parser.add_argument(
        "--measure",
        type=float,
        default=0.3,
        metavar="SECONDS",
        help="poll each source this long to measure its update interval (default 0.3; 0: skip)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--board", action="store_true", help="show only the board's state (no power sources)")


def _measure(source: Any, seconds: float, rate_hz: float = 2000.0) -> tuple[list[float], list[int | None]]:
    """Poll ``source`` for ``seconds``; the last values and each rail's measured update period (ns)."""
    from streamline_bridge.power.period import period_from_changes

    values = source.read()
    last = list(values)
    changes: list[list[int]] = [[] for _ in values]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(1.0 / rate_hz)
        values = source.read()
        now = time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW)
        for j, v in enumerate(values):
            if v == v and v != last[j]:
                changes[j].append(now)
                last[j] = v
    return values, [period_from_changes(c) for c in changes]


def _describe(candidate: Any, seconds: float) -> dict[str, Any]:
    from streamline_bridge.power.source import Unavailable

    src = candidate.source
    if src is None:
        return {"source": candidate.name, "available": False, "reason": candidate.reason}
    try:
        src.open()
    except Unavailable as exc:
        return {"source": candidate.name, "available": False, "reason": str(exc)}
    try:
        values, periods = _measure(src, seconds) if seconds > 0 else (src.read(), [None] * len(src.rails))
    finally:
        src.close()
    configured = src.configured_update_ns()
    return {
        "source": src.name,
        "available": True,
        "estimated": src.estimated,
        "config": src.config,
        "advice": src.advice(),
        "rails": [
            {
                "name": r.name,
                "unit": r.unit,
                "files": list(r.files),
                "extra": r.extra,
                "value_mw": None if v != v else v,
                "sensor_model": None if r.sensor_model is None else r.sensor_model.to_dict(),
                "configured_update_ms": None if configured is None else configured / 1e6,
                "measured_update_ms": None if p is None else p / 1e6,
            }
            for r, v, p in zip(src.rails, values, periods)
        ],
    }


def run(args: argparse.Namespace) -> int:
    from streamline_bridge import board
    from streamline_bridge.errors import InputError
    from streamline_bridge.power import discovery

    state = board.snapshot(args.sysfs_root, args.proc_root)
    if args.board and args.json:
        print(json.dumps(state, indent=2))
    if args.board:
        return 0 if args.json else _print_board(state)
    try:
        options = discovery.parse_options(args.option)
    except ValueError as exc:
        raise InputError(None, str(exc)) from None
    where = discovery.roots(args.sysfs_root, args.proc_root)
    if args.source and args.source not in discovery.SOURCES:
        raise InputError(None, f"unknown power source {args.source!r} (known: {', '.join(discovery.SOURCES)})")
    found = [
        _describe(c, args.measure) for c in discovery.survey(where, options, [args.source] if args.source else None)
    ]
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        _print_rich(found)
        _print_board(state)
    return 0 if any(s["available"] for s in found) else 1


def _print_board(state: dict[str, Any]) -> int:
    """The board's summary line, then its clocks and temperatures as tables; returns 0 (exit status)."""
    from rich.console import Console
    from rich.table import Table

    from streamline_bridge import board

    con = Console()
    con.print(f"[bold]board[/bold]: {board.summary(state)}", highlight=False, soft_wrap=True)
    t = Table(title="clocks", title_justify="left")
    for col in ("clock", "governor", "now MHz", "min MHz", "max MHz"):
        t.add_column(col, justify="left" if col in ("clock", "governor") else "right")
    mhz = [lambda v, k=k: "-" if v is None else f"{v / k:.0f}" for k in (1e3, 1e6)]  # kHz, Hz
    for c in state["cpus"]:
        if c["online"]:
            t.add_row(
                f"cpu{c['cpu']}", c["governor"] or "-", *(mhz[0](c[f]) for f in ("cur_khz", "min_khz", "max_khz"))
            )
        else:
            t.add_row(f"cpu{c['cpu']}", "offline", "-", "-", "-")
    for d in state["devfreq"]:
        t.add_row(
            f"{d['name']} ({d['kind']})", d["governor"] or "-", *(mhz[1](d[f]) for f in ("cur_hz", "min_hz", "max_hz"))
        )
    if state["emc_hz"] is not None:
        t.add_row("EMC", "-", mhz[1](state["emc_hz"]), "-", "-")
    if t.row_count:
        con.print(t)
    if state["thermal_c"]:
        con.print(
            "temperatures: " + ", ".join(f"{k} {v:.1f} °C" for k, v in state["thermal_c"].items()),
            highlight=False,
            soft_wrap=True,
        )
    return 0


def _print_rich(found: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    from streamline_bridge.sensor_model import shown

    con = Console()
    for s in found:
        if not s["available"]:
            continue
        title = f"[bold]{s['source']}[/bold]" + ("  [red]ESTIMATED, not measured[/red]" if s["estimated"] else "")
        t = Table(title=title, title_justify="left")
        for col in (
            "rail",
            "now mW",
            "unit",
            "update ms (configured)",
            "update ms (measured)",
            "sensor model",
            "files",
        ):
            t.add_column(col, justify="right" if "ms" in col or "mW" in col else "left")
        for r in s["rails"]:
            t.add_row(
                r["name"],
                "-" if r["value_mw"] is None else f"{r['value_mw']:.1f}",
                r["unit"],
                "-" if r["configured_update_ms"] is None else f"{r['configured_update_ms']:g}",
                "-" if r["measured_update_ms"] is None else f"{r['measured_update_ms']:.2f}",
                shown(r["sensor_model"]),
                "\n".join(r["files"]) or "-",
            )
        con.print(t)
        if s["config"]:
            con.print(f"  configuration: {json.dumps(s['config'])}", highlight=False)
        for hint in s["advice"]:
            con.print(f"  [yellow]note:[/yellow] {hint}", highlight=False)
    for s in found:
        if not s["available"]:
            con.print(f"[dim]{s['source']}: unavailable: {s['reason']}[/dim]", highlight=False)
    if not any(s["available"] for s in found):
        con.print("[red]no power source found[/red]")
