"""Compare two runs row by row: time and energy of B against A, the difference, its 95 % CI (Welch)
and whether it is significant.

    streamline-bridge compare runs/fp32 runs/fp16
    streamline-bridge compare runs/maxn runs/10w --by group -o diff.csv --plot diff.png

RUN_A and RUN_B are anything ``report`` reads (run folders, captures, marker logs); each gives its
table with the same options, then the rows found in both are compared (``Δ = B - A``). A difference
is significant when its confidence interval excludes 0; with fewer than 2 iterations in a run that
cannot be said (shown as ``?``). The runs' board states (power mode, clocks, governors ...) are
compared too: a warning names what differs. Python: ``streamline_bridge.energy.compare.compare``.
"""

from __future__ import annotations

import argparse

from streamline_bridge.commands.outputs import add_output_arguments, add_table_arguments

HELP = "compare the time and energy per layer or group of two runs (difference, 95%% CI, significance)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_a", metavar="RUN_A", help="the reference run (run folder, capture or marker log)")
    parser.add_argument("run_b", metavar="RUN_B", help="the run compared with it")
    add_table_arguments(parser, ("layer", "group"))
    add_output_arguments(parser, "Comparison")


def run(args: argparse.Namespace) -> int:
    from streamline_bridge.commands.outputs import (
        check_table_arguments,
        log_input_notes,
        plan_outputs,
        read_inputs,
        table_of,
        write_outputs,
    )
    from streamline_bridge.energy.compare import compare
    from streamline_bridge.errors import EXIT_DAMAGED, EXIT_OK

    check_table_arguments(args)
    plan = plan_outputs(args, "Comparison")
    partial = False
    results = []
    for path in (args.run_a, args.run_b):
        rec, notes = read_inputs([path])
        log_input_notes(rec, notes)
        results.append(table_of(rec, args))
        partial |= rec.meta.partial
    comparison = compare(results[0], results[1], confidence=args.confidence)
    write_outputs(plan, comparison, None, args.meta)
    return EXIT_DAMAGED if partial else EXIT_OK
