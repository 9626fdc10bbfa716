"""Say what a recording holds: a marker log, a power log, a capture (.apc), an export or a run folder.

Prints counts by message kind, threads, rails, duration, clock base, protocol, the annotation
counters' definitions, the board's state (run folders) and everything that was skipped or repaired.
``--markers`` lists every annotation message instead (Streamline's Log view): its time, thread,
channel and group names, kind, text, colour and counter values, as a table, ``--csv`` or ``--json``,
filtered with ``--kind``, ``--channel`` and ``--tid``. What could be read is shown also when the
input was cut short or damaged (exit status 3).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

HELP = "summarise (or list the markers of) a marker log, power log, capture, export or run folder"
MARKER_COLUMNS = (
    "time_s",
    "pid",
    "tid",
    "stream",
    "kind",
    "channel",
    "channel_name",
    "group",
    "group_name",
    "text",
    "color",
    "key",
    "counter",
    "value",
    "core",
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="file or folder to inspect")
    parser.add_argument("--format", help="skip detection and read as this format")
    parser.add_argument("--markers", action="store_true", help="list every annotation message (one line each)")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON instead of a table")
    out.add_argument("--csv", action="store_true", help="print CSV instead of a table (--markers)")
    parser.add_argument(
        "--kind",
        action="append",
        default=[],
        metavar="KIND",
        help="--markers: only messages of this kind (text, end, marker, counter_value ...); repeatable",
    )
    parser.add_argument(
        "--channel",
        action="append",
        default=[],
        metavar="N|NAME",
        help="--markers: only this channel (number or name); repeatable",
    )
    parser.add_argument(
        "--tid", action="append", type=int, default=[], metavar="TID", help="--markers: only this thread; repeatable"
    )


def marker_list(rec: Any, kinds: Sequence[str] = (), channels: Sequence[str] = (), tids: Sequence[int] = ()) -> Any:
    """The recording's markers as the listing's columns (``MARKER_COLUMNS``), filtered; ``time_s``
    is seconds from the recording's clock base (absolute CLOCK_MONOTONIC_RAW seconds without one)."""
    import pandas as pd

    from streamline_bridge.errors import InputError
    from streamline_bridge.model import MARKER_KINDS

    unknown = sorted(set(kinds) - set(MARKER_KINDS))
    if unknown:
        raise InputError(None, f"--kind {', '.join(unknown)}: unknown (known: {', '.join(MARKER_KINDS)})")
    m = rec.markers
    keep = pd.Series(True, index=m.index)
    if kinds:
        keep &= m["kind"].isin(kinds)
    if channels:
        numbers = [int(c) for c in channels if c.lstrip("-").isdigit()]
        keep &= m["channel"].isin(numbers).fillna(False) | m["channel_name"].isin(channels).fillna(False)
    if tids:
        keep &= m["tid"].isin(tids)
    m = m[keep]
    rel = m["time_rel_ns"].where(m["time_rel_ns"].notna(), m["time_ns"])
    names = {**rec.meta.counter_keys, **{k: d.get("title") or d.get("name") for k, d in rec.meta.counters.items()}}
    from streamline_bridge.ingest.annotation_stream import color_json

    out = m.assign(
        time_s=rel.astype("Float64") / 1e9,
        color=m["color"].map(lambda c: color_json(int(c))["rgb"], na_action="ignore"),
        counter=m["key"].map(names, na_action="ignore"),
    )
    return out[list(MARKER_COLUMNS)].reset_index(drop=True)


def run(args: argparse.Namespace) -> int:
    from streamline_bridge import ingest
    from streamline_bridge.errors import EXIT_DAMAGED, EXIT_OK, InputError
    from streamline_bridge.ingest.summary import summarize

    if not args.markers and (args.kind or args.channel or args.tid or args.csv):
        raise InputError(None, "--kind, --channel, --tid and --csv go with --markers")
    rec = ingest.read(args.path, args.format)
    if args.markers:
        _print_markers(marker_list(rec, args.kind, args.channel, args.tid), args)
    else:
        info = summarize(rec)
        info["counters"] = {str(k): v for k, v in rec.meta.counters.items()}
        if args.json:
            print(json.dumps(info, indent=2, default=str))
        else:
            _print_rich(info)
    return EXIT_DAMAGED if rec.meta.partial else EXIT_OK


def _print_markers(listing: Any, args: argparse.Namespace) -> None:
    import sys

    if args.csv:
        listing.to_csv(sys.stdout, index=False)
        return
    if args.json:
        from streamline_bridge.report.files import dumps, records

        print(dumps(records(listing), 1))
        return
    from rich.measure import Measurement
    from rich.table import Table

    from streamline_bridge.report import stdout_console

    con = stdout_console()
    con.print(f"{len(listing)} message(s)")
    shown = [c for c in MARKER_COLUMNS if listing[c].notna().any()]  # the columns these messages use
    if not shown:
        return
    t = Table()
    for col in shown:
        t.add_column(
            col,
            justify="right"
            if col in ("time_s", "pid", "tid", "stream", "channel", "group", "key", "value", "core")
            else "left",
            overflow="fold",
        )  # never cut a value short
    for row in listing[shown].itertuples(index=False):
        t.add_row(*("" if _na(v) else f"{v:.9f}" if col == "time_s" else str(v) for col, v in zip(shown, row)))
    if not con.is_terminal:  # a file or a pipe: as wide as the listing needs
        con.width = max(con.width, Measurement.get(con, con.options.update_width(100_000), t).maximum)
    con.print(t)


def _na(value: Any) -> bool:
    import pandas as pd

    return value is None or bool(pd.isna(value))


def _cell(value: Any) -> str:
    """A value as rich text (the input's own text is never markup)."""
    from rich.markup import escape

    if isinstance(value, (dict, list)):
        return escape(json.dumps(value, default=str, separators=(", ", ": ")))
    return "-" if value is None else escape(str(value))


def _print_value(con: Any, key: str, value: Any) -> None:
    """One ``extra`` entry: a line for a plain value, a table for a mapping or a list of mappings."""
    from rich.table import Table

    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        rows = [{"": k, **v} for k, v in value.items()]
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        rows = value
    elif isinstance(value, dict) and value:
        rows = [{"": k, "value": v} for k, v in value.items()]
    else:
        con.print(f"{_cell(key)}: {_cell(value)}", highlight=False, soft_wrap=True)
        return
    con.print(_cell(key), highlight=False)
    t = Table()
    columns = list(dict.fromkeys(c for r in rows for c in r))
    for c in columns:
        t.add_column(_cell(c), overflow="fold")
    for r in rows:
        t.add_row(*(_cell(r.get(c)) for c in columns))
    con.print(t)


def _print_rich(info: dict) -> None:
    from rich.markup import escape  # the input's own text (names, lines, paths) is never markup
    from rich.table import Table

    from streamline_bridge import board
    from streamline_bridge.report import stdout_console
    from streamline_bridge.sensor_model import shown

    con = stdout_console()
    con.print(
        f"[bold]{escape(', '.join(info['sources']))}[/bold]  format [cyan]{info['format']}[/cyan]"
        + (f"  protocol {info['protocol']}" if info["protocol"] is not None else "")
        + (f"  clock base {info['clock_base_ns']} ns" if info["clock_base_ns"] is not None else ""),
        soft_wrap=True,
    )
    m = info["markers"]
    if m["count"]:
        con.print(
            f"{m['count']} markers, {len(m['threads'])} thread(s)"
            + (f", {m['duration_s']:.6f} s" if m["duration_s"] is not None else ""),
            highlight=False,
        )
        t = Table()
        t.add_column("kind")
        t.add_column("count", justify="right")
        for kind, n in m["by_kind"].items():
            t.add_row(kind, str(n))
        con.print(t)
    p = info["power"]
    if p["samples"]:
        con.print(
            f"{p['samples']} power samples" + (f", {p['duration_s']:.3f} s" if p["duration_s"] is not None else ""),
            highlight=False,
        )
        t = Table()
        for col in ("rail", "samples", "missing", "mean mW", "update period ms", "source unit", "sensor model"):
            t.add_column(col, justify="left" if col == "rail" else "right")
        for rail, r in p["rails"].items():
            t.add_row(
                escape(rail) + (" [red](estimated)[/red]" if r["estimated"] else ""),
                str(r["samples"]),
                str(r["missing"]),
                "-" if r["mean_mw"] is None else f"{r['mean_mw']:.1f}",
                "-" if r["update_period_ms"] is None else f"{r['update_period_ms']:.2f}",
                escape(r["unit"]),
                shown(r["sensor_model"]),
            )
        con.print(t)
    if info["counters"]:
        _print_value(
            con,
            "annotation counters",
            {
                k: {
                    c: d.get(c)
                    for c in (
                        "name",
                        "title",
                        "units",
                        "class",
                        "display",
                        "modifier",
                        "per_cpu",
                        "cores",
                        "description",
                        "activities",
                    )
                }
                for k, d in info["counters"].items()
            },
        )
    for key, value in info["extra"].items():
        if key == "board" and isinstance(value, dict):
            for when in ("start", "end"):
                if value.get(when):
                    con.print(
                        f"board at the {when}: {_cell(board.summary(value[when]))}", highlight=False, soft_wrap=True
                    )
            if value.get("samples"):
                con.print(f"board samples: {len(value['samples'])} (clocks and temperatures, {board.LOG_FILE})")
        else:
            _print_value(con, key, value)
    for issue in info["issues"]:
        con.print(f"[yellow]warning:[/yellow] {escape(str(issue))}", highlight=False, soft_wrap=True)
    if info["partial"]:
        con.print("[red]input ended early or was damaged: shown is what could be read[/red]")
