"""``--method`` of ``profile`` and ``report``: per-layer energy in sequence, by isolation, or both.

* ``sequence``: the layers as they ran, one after another (the energy table);
* ``isolate``: each layer alone in a loop until its power has settled (:mod:`streamline_bridge.energy.isolate`),
  energy per invocation = settled power x the layer's time in sequence;
* ``both``: the sequence table, then both side by side, layers whose CIs do not overlap flagged;
* ``auto`` (default): the sequence where the rails' sensor models resolve the layers (the table's
  ``resolved`` column), isolation where they do not; ``profile`` runs the loops only for those,
  the longest layers first, for at most ``AUTO_BUDGET_S`` (the rest stay unresolved, and say so).

Not a command: the helpers ``profile`` and ``report`` call.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

METHOD_HELP = (
    "sequence: the layers as they ran; isolate: each layer alone in a loop until its power has settled; "
    "both: the two side by side; auto: isolation only for the layers the sequence does not resolve "
    "(default)"
)
SIDE_BY_SIDE = "methods.csv"
AUTO_BUDGET_S = 30.0  # auto: at most this long in loops, the longest unresolved layers first


def add_method_argument(parser: argparse.ArgumentParser) -> None:
    """``--method`` (choices :data:`streamline_bridge.energy.isolate.METHODS`, default ``auto``)."""
    from streamline_bridge.energy.isolate import METHODS

    parser.add_argument("--method", choices=METHODS, default="auto", help=METHOD_HELP)


def layers_to_isolate(run_dir: Path, method: str, style: str) -> tuple[Collection[str] | None, float]:
    """Which layers the isolation phase runs (None: all; empty: none) and for how long each, from
    what the run folder holds so far (markers flushed, power log being written)."""
    import annotate
    from streamline_bridge.commands.record import MARKERS_FILE, POWER_FILE
    from streamline_bridge.energy import combine, energy_table
    from streamline_bridge.energy.isolate import loop_seconds, to_isolate, without_isolation
    from streamline_bridge.errors import InputError
    from streamline_bridge.ingest import marker_log, power_log

    if method == "sequence":
        return (), 0.0
    annotate.flush()
    time.sleep(0.3)  # the sampler writes a record every 100 ms
    rec = combine([marker_log.read(run_dir / MARKERS_FILE), power_log.read(run_dir / POWER_FILE)])
    seconds = loop_seconds((info.sensor_model, info.update_period_ns) for info in rec.meta.rails.values())
    if method != "auto":
        return None, seconds
    try:
        table = energy_table(without_isolation(rec), style=style).table
    except InputError:
        return None, seconds
    return to_isolate(table, seconds, AUTO_BUDGET_S), seconds


def isolation_phase(
    isolate: Callable[[float, Collection[str] | None], dict[str, int]],
    run_dir: Path,
    method: str,
    style: str,
    say: Callable[[str], None],
) -> dict[str, int]:
    """Run the isolation phase of ``method`` (``isolate(seconds, names)``: the adapter's loop, e.g.
    ``CaffeRunner.isolate``); returns the runs per layer."""
    names, seconds = layers_to_isolate(run_dir, method, style)
    if names is not None and not names:
        return {}
    say(f"isolation: {'every layer' if names is None else f'{len(names)} layer(s)'} alone, {seconds:.2g} s each")
    return isolate(seconds, names)


def apply_method(result: Any, rec: Any, method: str) -> Any:
    """Make ``result`` (the sequence's :class:`EnergyResult`, changed in place) what ``method`` gives;
    returns the ``both`` comparison (:func:`~streamline_bridge.energy.isolate.side_by_side`), else None.
    With ``both`` the table stays the sequence's."""
    from streamline_bridge.energy.isolate import choose, isolate_table, side_by_side

    result.meta["method"] = method
    if method == "sequence" or not len(result.table):
        result.table, _ = choose(result.table, result.table.iloc[:0], "sequence")
        return None
    iso = isolate_table(rec, result.table, result.meta.get("confidence", 0.95))
    if method == "both":
        result.table, _ = choose(result.table, iso, "sequence")
        side = side_by_side(result.table, iso)
        flagged = side[side["disagree"]]
        if len(flagged):
            result.warnings.append(
                f"{len(flagged)} row(s) where sequence and isolation disagree beyond their CIs: "
                + ", ".join(f"{n} ({r})" for n, r in zip(flagged["name"][:8], flagged["rail"][:8]))
            )
        return side
    result.table, notes = choose(result.table, iso, method)
    result.warnings += notes
    _retotal(result)
    return None


def _retotal(result: Any) -> None:
    """Per-rail totals of the chosen rows (sum of energies, CIs added in quadrature)."""
    import numpy as np

    g = result.table.groupby("rail", sort=False)
    for col in ("energy_mj", "dynamic_mj"):
        if col in result.totals.columns:
            total = g[col].sum(min_count=1)
            ci = np.sqrt(g[f"{col}_ci"].apply(lambda c: float((c.astype(float) ** 2).sum(min_count=1))))
            result.totals[col] = result.totals["rail"].map(total)
            result.totals[f"{col}_ci"] = result.totals["rail"].map(ci)


def write_side_by_side(side: Any, folder: Path) -> Path:
    """The ``both`` comparison as ``folder/methods.csv``."""
    path = folder / SIDE_BY_SIDE
    side.to_csv(path, index=False)
    return path


def print_side_by_side(side: Any, console: Any = None) -> None:
    """The ``both`` comparison as a rich table on ``console`` (default: stdout)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    t = Table(title="energy mJ per invocation: sequence vs isolation (! = CIs do not overlap)")
    for col in ("layer", "rail", "sequence", "isolation", ""):
        t.add_column(col, justify="left" if col in ("layer", "rail") else "right")

    def pm(mean: float, ci: float) -> str:
        return "-" if math.isnan(mean) else f"{mean:.4g}" if math.isnan(ci) else f"{mean:.4g} ±{ci:.2g}"

    for r in side.itertuples(index=False):
        t.add_row(
            str(r.name),
            str(r.rail),
            pm(r.energy_mj_sequence, r.energy_mj_ci_sequence),
            pm(r.energy_mj_isolate, r.energy_mj_ci_isolate),
            "!" if r.disagree else "",
        )
    console.print(t)
