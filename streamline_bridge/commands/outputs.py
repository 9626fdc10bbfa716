"""What ``report`` and ``compare`` share: the table options, reading inputs into a table, and the outputs.

Outputs come from the renderer registry (:mod:`streamline_bridge.report`): ``--format`` is any table
renderer of the result, ``-o FILE`` (``-``: stdout), ``--meta FILE``, and one ``--NAME FILE`` option
per extra-output renderer (``--plot``, ``--trace``). Without ``-o`` the result goes to stdout.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("streamline_bridge")


def add_table_arguments(parser: argparse.ArgumentParser, by: tuple[str, ...]) -> None:
    """How the table is computed: ``--by``, ``--baseline``, ``--warmup``, marker style, groups, sensor, sensor
    models, method, statistics."""
    from streamline_bridge.commands.method import add_method_argument
    from streamline_bridge.power.discovery import add_sensor_model_argument

    parser.add_argument("--by", choices=by, default="layer")
    parser.add_argument(
        "--baseline",
        choices=("idle", "none"),
        default="idle",
        help="also give the energy above the idle power measured by record (default idle)",
    )
    parser.add_argument("--warmup", type=int, default=0, metavar="K", help="drop the first K iterations")
    parser.add_argument(
        "--style",
        choices=("auto", "channels", "markers"),
        default="auto",
        help="marker style: channel annotations or bookmarks (default: detect)",
    )
    parser.add_argument(
        "--groups",
        metavar="prefix|depth=N|tree|block|channel|FILE.json",
        default=None,
        help="groups for --by group: name before the first '/' or '.' (prefix), its first N parts (depth=N: "
        "features.3.squeeze -> features.3 with depth=2), its parent when that holds layers only (tree), the "
        "layer's channel (block), the channel's group name (channel), or a JSON object {layer: group} "
        "(default: the adapters' blocks, else prefix if names have '/', else the channel group, else tree)",
    )
    parser.add_argument(
        "--sensor",
        choices=("auto", "held", "instant"),
        default="auto",
        help="held: values are a sensor's held updates, each the mean since the previous one; "
        "instant: instantaneous samples; auto: held where values change at most every "
        "other sample (default)",
    )
    add_sensor_model_argument(parser)
    add_method_argument(parser)
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level (default 0.95)")
    parser.add_argument(
        "--precision", type=float, default=0.05, help="relative CI half-width that 'n needed' aims at (default 0.05)"
    )


def add_output_arguments(parser: argparse.ArgumentParser, result_type: str) -> None:
    """``--format``, ``-o``, ``--meta`` and the extra outputs of the renderers of ``result_type``."""
    from streamline_bridge.report import extra_options, renderers

    tables = renderers(result_type)
    parser.add_argument(
        "--format",
        choices=[r.name for r in tables],
        default=None,
        help="output format (default: from -o's suffix, else table); without -o: to stdout",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write the result to FILE ('-': stdout; default stdout); a CSV or JSON file gets its "
        "metadata beside it in NAME.meta.json",
    )
    parser.add_argument("--meta", metavar="FILE", help="also write the metadata (JSON) to FILE")
    for r in extra_options(result_type):
        parser.add_argument(f"--{r.option}", metavar="FILE", help=f"also write {r.help} ({', '.join(r.suffixes)})")


def check_table_arguments(args: argparse.Namespace) -> None:
    """The numeric options in range and ``--sensor-model`` parsed into ``args.sensor_models`` (an
    :class:`InputError` about the option, else nothing)."""
    from streamline_bridge.errors import InputError
    from streamline_bridge.power.discovery import sensor_models

    if args.warmup < 0:
        raise InputError(None, "--warmup must be 0 or more")
    if not 0 < args.confidence < 1 or not 0 < args.precision:
        raise InputError(None, "--confidence must be in (0, 1) and --precision above 0")
    try:
        args.sensor_models = sensor_models(args.sensor_model)
    except ValueError as exc:
        raise InputError(None, str(exc)) from None


def plan_outputs(args: argparse.Namespace, result_type: str) -> list[tuple[Any, str]]:
    """(renderer, target) of every output asked for: the result, then each extra output; checked first."""
    from streamline_bridge.errors import InputError
    from streamline_bridge.report import (
        STDOUT,
        by_name,
        by_suffix,
        extra_options,
        renderers,
    )

    tables = renderers(result_type)
    target = args.output or STDOUT
    if args.format:
        main = by_name(tables, args.format)
    elif target == STDOUT:
        main = by_name(tables, "table")
    else:
        main = by_suffix(tables, target)
        if main is None:
            suffixes = ", ".join(s for r in tables for s in r.suffixes)
            raise InputError(
                None,
                f"-o {target}: cannot tell the format from the suffix ({suffixes}): "
                f"use --format {'|'.join(r.name for r in tables)}",
            )
    plan = [(main, target)]
    for option in extra_options(result_type):
        name = str(option.option)
        path = getattr(args, name)
        if path:
            chosen = by_suffix(renderers(result_type, name), path)
            if chosen is None:
                raise InputError(None, f"--{name} {path}: the file must end in {' or '.join(option.suffixes)}")
            plan.append((chosen, path))
    return plan


def write_outputs(plan: list[tuple[Any, str]], result: Any, recording: Any, meta_file: str | None) -> list[Path]:
    """Write every planned output (the metadata file with the first); logs what was written."""
    from streamline_bridge.report import STDOUT, emit

    written: list[Path] = []
    for i, (renderer, target) in enumerate(plan):
        written += emit(renderer, result, recording, target, meta_file if i == 0 else None)
    if written:
        log.info(f"wrote {', '.join(map(str, written))}")
    main, target = plan[0]
    if not (main.show and target == STDOUT):  # else the table on stdout has said them
        for w in result.warnings:
            log.warning(f"warning: {w}")
    return written


def groups_option(spec: str | None) -> str | dict[str, str] | None:
    """``--groups``: a keyword, or the mapping in a JSON file."""
    import json

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


def read_inputs(paths: list[str], offset_s: float | None = None) -> tuple[Any, list[str]]:
    """The inputs read and combined into one recording, and the notes about which power was used."""
    from streamline_bridge import ingest
    from streamline_bridge.energy import combine
    from streamline_bridge.ingest.annotation_power import prefer_measured

    recordings, notes = prefer_measured([ingest.read(p) for p in paths])
    offset_ns = None if offset_s is None else round(offset_s * 1e9)
    return combine(recordings, offset_ns), notes


def table_of(rec: Any, args: argparse.Namespace) -> tuple[Any, Any]:
    """The energy table of ``rec`` by the table options and ``--method``, or the time table when no power
    overlaps its markers; and the ``--method both`` comparison (else None).

    ``--sensor-model`` is applied to the recording's rails first (a rail it names that is not there
    is an error about the option). ``meta["board"]`` is the board's state at the run's start, when
    the recording has it.
    """
    from streamline_bridge import board
    from streamline_bridge.commands.method import apply_method
    from streamline_bridge.energy import energy_table
    from streamline_bridge.energy.isolate import without_isolation
    from streamline_bridge.energy.timetable import power_gap, time_table
    from streamline_bridge.errors import InputError

    rails = rec.power["rail"].astype(str).unique()
    unknown = rec.meta.assign_sensor_models(getattr(args, "sensor_models", {}), rails)
    if unknown:
        raise InputError(None, f"--sensor-model names no rail {', '.join(unknown)} (rails: {', '.join(rails)})")
    groups = groups_option(args.groups)
    sequence = without_isolation(rec)
    gap = power_gap(sequence)
    side = None
    if gap is None:
        result = energy_table(
            sequence,
            by=args.by,
            baseline=args.baseline,
            style=args.style,
            groups=groups,
            warmup=args.warmup,
            confidence=args.confidence,
            precision=args.precision,
            sensor=args.sensor,
        )
        side = apply_method(result, rec, args.method if args.by == "layer" else "sequence")
    else:
        result = time_table(
            sequence,
            by=args.by,
            style=args.style,
            groups=groups,
            warmup=args.warmup,
            confidence=args.confidence,
            reason=gap,
        )
    result.meta["board"] = board.of_recording(rec)
    return result, side


def log_input_notes(rec: Any, notes: list[str]) -> None:
    """Which power was used, the notes, and what the readers skipped or repaired (stderr)."""
    from streamline_bridge.ingest.annotation_power import describe

    in_power = set(rec.power["rail"].astype(str))
    if in_power:
        log.info(f"power: {describe({n: i for n, i in rec.meta.rails.items() if n in in_power})}")
    for note in [*notes, *rec.meta.extra.get("sensor_model_notes", [])]:
        log.info(f"note: {note}")
    for issue in rec.meta.issues:
        log.warning(f"warning: {issue}")
