"""Per-layer (group, iteration) time and energy from markers and power, with confidence intervals.

INPUT is a run folder from ``record``, a capture (.apc), a Streamline export or a marker log; several
inputs (and ``--power LOG``) are combined: markers from those that have markers, power from those
that have power. An export's times are relative to its capture: give the capture too, or
``--offset SECONDS`` (the capture's start, in seconds after the power record's start).
Power from annotation counters (``record --streamline``, docs/streamline.md) is used when no input
has the same rails from a power log. Markers without power, or whose power does not overlap them,
give the time table (and a note). Columns: docs/energy-table.md.

The result goes to stdout (a table; ``--format csv|json|...``), or to ``-o FILE`` (``-``: stdout);
diagnostics go to stderr.
"""

from __future__ import annotations

import argparse

from streamline_bridge.commands.outputs import add_output_arguments, add_table_arguments

HELP = "per-layer energy table, files, plot and Perfetto trace from markers and power"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="run folder, capture (.apc), Streamline export or marker log"
    )
    parser.add_argument(
        "--power",
        action="append",
        default=[],
        metavar="LOG",
        help="power log (or anything with power samples); repeatable",
    )
    add_table_arguments(parser, ("layer", "group", "iteration"))
    add_output_arguments(parser, "EnergyResult")
    parser.add_argument(
        "--offset",
        type=float,
        metavar="SECONDS",
        help="place an export: its capture started SECONDS after the power record started",
    )


def run(args: argparse.Namespace) -> int:
    from streamline_bridge.commands import outputs
    from streamline_bridge.errors import EXIT_DAMAGED, EXIT_OK

    outputs.check_table_arguments(args)
    plan = outputs.plan_outputs(args, "EnergyResult")
    rec, notes = outputs.read_inputs([*args.inputs, *args.power], args.offset)
    result, side = outputs.table_of(rec, args)
    outputs.write_outputs(plan, result, rec, args.meta)
    if side is not None:
        from streamline_bridge.commands.method import print_side_by_side

        print_side_by_side(side)
    outputs.log_input_notes(rec, notes)
    return EXIT_DAMAGED if rec.meta.partial else EXIT_OK
