"""Say what a recording holds: a marker log, a power log, a capture (.apc), an export or a run folder.

Prints counts by message kind, threads, rails, duration, clock base, protocol and everything
that was skipped or repaired. Exit status 2 when the input was cut short or damaged (what could
be read is still shown).
"""

from __future__ import annotations

import argparse
import json

HELP = "summarise a marker log, power log, capture, export or run folder"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="file or folder to inspect")
    parser.add_argument("--format", help="skip detection and read as this format")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from streamline_bridge import ingest
    from streamline_bridge.ingest.summary import summarize

    rec = ingest.read(args.path, args.format)
    info = summarize(rec)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        _print_rich(info)
    return 2 if rec.meta.partial else 0


def _print_rich(info: dict) -> None:
    from rich.console import Console
    from rich.markup import escape  # the input's own text (names, lines, paths) is never markup
    from rich.table import Table

    con = Console()
    con.print(f"[bold]{escape(', '.join(info['sources']))}[/bold]  format [cyan]{info['format']}[/cyan]"
              + (f"  protocol {info['protocol']}" if info["protocol"] is not None else "")
              + (f"  clock base {info['clock_base_ns']} ns" if info["clock_base_ns"] is not None else ""))
    m = info["markers"]
    if m["count"]:
        t = Table(title=f"{m['count']} markers, {len(m['threads'])} thread(s)"
                  + (f", {m['duration_s']:.6f} s" if m["duration_s"] is not None else ""))
        t.add_column("kind")
        t.add_column("count", justify="right")
        for kind, n in m["by_kind"].items():
            t.add_row(kind, str(n))
        con.print(t)
    p = info["power"]
    if p["samples"]:
        t = Table(title=f"{p['samples']} power samples"
                  + (f", {p['duration_s']:.3f} s" if p["duration_s"] is not None else ""))
        for col in ("rail", "samples", "missing", "mean mW", "update period ms", "source unit"):
            t.add_column(col, justify="left" if col == "rail" else "right")
        for rail, r in p["rails"].items():
            t.add_row(escape(rail) + (" [red](estimated)[/red]" if r["estimated"] else ""), str(r["samples"]),
                      str(r["missing"]), "-" if r["mean_mw"] is None else f"{r['mean_mw']:.1f}",
                      "-" if r["update_period_ms"] is None else f"{r['update_period_ms']:.2f}", escape(r["unit"]))
        con.print(t)
    for key, value in info["extra"].items():
        con.print(escape(f"{key}: {value}"))
    for issue in info["issues"]:
        con.print(f"[yellow]warning:[/yellow] {escape(str(issue))}", highlight=False)
    if info["partial"]:
        con.print("[red]input ended early or was damaged: shown is what could be read[/red]")
