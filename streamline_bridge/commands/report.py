"""Per-layer (group, iteration) time and energy from markers and power, with confidence intervals.

INPUT is a run folder from ``record``, a capture (.apc), a Streamline export or a marker log; several
inputs (and ``--power LOG``) are combined: markers from those that have markers, power from those
that have power. An export's times are relative to its capture: give the capture too, or
``--offset SECONDS`` (the capture's start, in seconds after the power record's start).
Power from annotation counters (``record --streamline``, docs/streamline.md) is used when no input
has the same rails from a power log. Columns: docs/energy-table.md. Exit status 2 when an input was cut short or damaged.
"""

from __future__ import annotations

import argparse

HELP = "per-layer energy table, files, plot and Perfetto trace from markers and power"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="run folder, capture (.apc), Streamline export or marker log")
    parser.add_argument("--power", action="append", default=[], metavar="LOG",
                        help="power log (or anything with power samples); repeatable")
    parser.add_argument("--by", choices=("layer", "group", "iteration"), default="layer")
    parser.add_argument("--baseline", choices=("idle", "none"), default="idle",
                        help="also give the energy above the idle power measured by record (default idle)")
    parser.add_argument("--format", choices=("table", "csv", "json", "parquet"), default=None,
                        help="output format (default: from -o's suffix, else table)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the table to FILE instead of the terminal")
    parser.add_argument("--plot", metavar="FILE", help="also draw time and energy per row (.png or .svg)")
    parser.add_argument("--trace", metavar="FILE", help="also write a Perfetto / Chrome trace (.json)")
    parser.add_argument("--offset", type=float, metavar="SECONDS",
                        help="place an export: its capture started SECONDS after the power record started")
    parser.add_argument("--warmup", type=int, default=0, metavar="K", help="drop the first K iterations")
    parser.add_argument("--style", choices=("auto", "channels", "markers"), default="auto",
                        help="marker style: channel annotations or bookmarks (default: detect)")
    parser.add_argument("--groups", metavar="prefix|depth=N|tree|block|channel|FILE.json", default=None,
                        help="groups for --by group: name before the first '/' or '.' (prefix), its first N "
                             "parts (depth=N: features.3.squeeze -> features.3 with depth=2), its parent when "
                             "that holds layers only (tree), the layer's channel (block), the channel's group "
                             "name (channel), or a JSON object {layer: group} (default: the adapters' blocks, "
                             "else prefix if names have '/', else the channel group, else tree)")
    parser.add_argument("--sensor", choices=("auto", "held", "instant"), default="auto",
                        help="held: values are a sensor's held updates, each the mean since the previous one; "
                             "instant: instantaneous samples; auto: held where values change at most every "
                             "other sample (default)")
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level (default 0.95)")
    parser.add_argument("--precision", type=float, default=0.05,
                        help="relative CI half-width that 'n needed' aims at (default 0.05)")


def _check(args: argparse.Namespace) -> None:
    from streamline_bridge.errors import InputError
    from streamline_bridge.report import files, plot

    if args.warmup < 0:
        raise InputError(None, "--warmup must be 0 or more")
    if not 0 < args.confidence < 1 or not 0 < args.precision:
        raise InputError(None, "--confidence must be in (0, 1) and --precision above 0")
    fmt = args.format or (files.format_of(args.output) if args.output else "table")
    if fmt not in ("table",) + files.FORMATS:
        raise InputError(args.output, f"cannot tell the format from the suffix: use --format {'|'.join(files.FORMATS)}")
    if fmt != "table" and not args.output:
        raise InputError(None, f"--format {fmt} needs -o FILE")
    args.format = fmt
    if args.plot and not args.plot.lower().endswith(plot.FORMATS):
        raise InputError(args.plot, f"plot file must end in {' or '.join(plot.FORMATS)}")


def _groups(spec: str | None) -> str | dict[str, str] | None:
    """``--groups``: a keyword, or the mapping in a JSON file."""
    import json
    from pathlib import Path

    from streamline_bridge.energy.intervals import GROUP_KEYWORDS, group_depth
    from streamline_bridge.errors import InputError

    if spec is None or spec in GROUP_KEYWORDS:
        return spec
    if spec.startswith("depth="):
        try:
            group_depth(spec)
        except ValueError as exc:
            raise InputError(None, f"--groups {spec}: {exc}") from None
        return spec
    try:
        mapping = json.loads(Path(spec).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(spec, exc.strerror or str(exc)) from None
    except ValueError as exc:
        raise InputError(spec, f"not JSON: {exc}") from None
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise InputError(spec, 'must be a JSON object {"layer": "group", ...}')
    return mapping


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from streamline_bridge import ingest
    from streamline_bridge.energy import combine, energy_table
    from streamline_bridge.ingest.annotation_power import describe, prefer_measured
    from streamline_bridge.report import files, plot, table, trace

    _check(args)
    groups = _groups(args.groups)
    recordings, notes = prefer_measured([ingest.read(p) for p in [*args.inputs, *args.power]])
    offset_ns = None if args.offset is None else round(args.offset * 1e9)
    rec = combine(recordings, offset_ns)
    result = energy_table(rec, by=args.by, baseline=args.baseline, style=args.style, groups=groups,
                          warmup=args.warmup, confidence=args.confidence, precision=args.precision,
                          sensor=args.sensor)
    err = Console(stderr=True, soft_wrap=True)
    if args.format == "table" and args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            table.render(result, Console(file=out, width=200))
    elif args.format == "table":
        table.render(result)
    else:
        written = files.write(result, args.output, args.format)
        err.print(f"wrote {', '.join(map(str, written))}", highlight=False)
        for w in result.warnings:
            err.print(f"[yellow]warning:[/yellow] {w}", highlight=False)
    if args.plot:
        err.print(f"wrote {plot.write(result, args.plot)}", highlight=False)
    if args.trace:
        err.print(f"wrote {trace.write(result, rec, args.trace)}", highlight=False)
    in_power = set(rec.power["rail"].astype(str))
    err.print(f"power: {describe({n: i for n, i in rec.meta.rails.items() if n in in_power})}", highlight=False)
    for note in notes:
        err.print(f"note: {note}", highlight=False)
    for issue in rec.meta.issues:
        err.print(f"[yellow]warning:[/yellow] {issue}", highlight=False)
    return 2 if rec.meta.partial else 0
