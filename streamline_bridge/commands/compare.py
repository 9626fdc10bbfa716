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
    from streamline_bridge.commands import outputs
    from streamline_bridge.energy.compare import compare
    from streamline_bridge.errors import EXIT_DAMAGED, EXIT_OK

    outputs.check_table_arguments(args)
    plan = outputs.plan_outputs(args, "Comparison")
    recordings = [outputs.read_inputs([path]) for path in (args.run_a, args.run_b)]
    for rec, notes in recordings:
        outputs.log_input_notes(rec, notes)
    result_a, result_b = (outputs.table_of(rec, args)[0] for rec, _ in recordings)
    outputs.write_outputs(plan, compare(result_a, result_b, confidence=args.confidence), None, args.meta)
    partial = any(rec.meta.partial for rec, _ in recordings)
    return EXIT_DAMAGED if partial else EXIT_OK
