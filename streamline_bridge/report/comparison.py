"""``compare``'s result (:class:`streamline_bridge.energy.compare.Comparison`) in the terminal and as a plot.

The table: one line per row name and rail, A and B, the difference ``B - A`` ± its CI, the change in
percent, ``*`` where significant and ``?`` where it cannot be said. The plot: the difference of time
and of energy per row with its CI, significant bars dark.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamline_bridge.report import Renderer

if TYPE_CHECKING:
    from rich.console import Console

    from streamline_bridge.energy.compare import Comparison

PLOT_FORMATS = (".png", ".svg")


def _cell(value: float, ci: float, significant: Any, pct: float) -> str:
    import pandas as pd

    from streamline_bridge.report.table import _pm

    if pd.isna(value):
        return "-"
    mark = "?" if significant is pd.NA else ("*" if significant else "")
    return f"{'+' if value >= 0 else ''}{_pm(value, ci)}{mark}" + ("" if pd.isna(pct) else f" ({pct:+.1f}%)")


def render(comparison: Comparison, console: Console | None = None) -> None:
    """One table per rail (time only where the runs have no power), then the warnings."""
    from rich.table import Table

    from streamline_bridge.report import stdout_console
    from streamline_bridge.report.table import _pm

    con = console or stdout_console()
    tab, m = comparison.table, comparison.meta
    for rail in dict.fromkeys(tab["rail"]):
        rows = tab[tab["rail"] == rail]
        energy = bool(rows["energy_mj_a"].notna().any())
        t = Table(
            title=f"{rail + ': ' if rail else ''}B - A per {m['by']}, ± {m['confidence']:.0%} CI (Welch), "
            "* significant, ? cannot be said"
        )
        t.add_column(m["by"], no_wrap=True)
        t.add_column("n A/B", justify="right")
        for head in ("time ms A", "time ms B", "Δ time ms") + (
            ("energy mJ A", "energy mJ B", "Δ energy mJ") if energy else ()
        ):
            t.add_column(head, justify="right")
        for r in rows.itertuples(index=False):
            cells = [
                r.name,
                f"{r.n_a}/{r.n_b}",
                _pm(r.time_ms_a, float("nan")),
                _pm(r.time_ms_b, float("nan")),
                _cell(r.time_ms_diff, r.time_ms_diff_ci, r.time_ms_significant, r.time_ms_diff_pct),
            ]
            if energy:
                cells += [
                    _pm(r.energy_mj_a, float("nan")),
                    _pm(r.energy_mj_b, float("nan")),
                    _cell(r.energy_mj_diff, r.energy_mj_diff_ci, r.energy_mj_significant, r.energy_mj_diff_pct),
                ]
            t.add_row(*cells)
        con.print(t)
    for w in comparison.warnings:
        con.print(f"[yellow]warning:[/yellow] {w}", highlight=False, soft_wrap=True)


def write_text(comparison: Comparison, recording: Any, path: Path) -> list[Path]:
    """The tables as plain text in ``path`` (200 columns)."""
    from rich.console import Console

    with open(path, "w", encoding="utf-8") as out:
        render(comparison, Console(file=out, width=200))
    return [path]


def write_plot(comparison: Comparison, recording: Any, path: Path) -> list[Path]:
    """The differences with their CIs, time above and energy per rail below (PNG or SVG)."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tab, m = comparison.table, comparison.meta
    names = list(dict.fromkeys(tab["name"]))
    rails = [r for r in dict.fromkeys(tab["rail"]) if tab.loc[tab["rail"] == r, "energy_mj_a"].notna().any()]
    x = np.arange(len(names))
    panels = 2 if rails else 1
    fig, axes = plt.subplots(
        panels,
        1,
        figsize=(max(8.0, 0.32 * len(names) + 4.5), 3.5 + 3.5 * panels),
        sharex=True,
        constrained_layout=True,
        squeeze=False,
    )
    first = tab.drop_duplicates("name").set_index("name").loc[names]
    axes[0, 0].bar(
        x,
        first["time_ms_diff"],
        yerr=first["time_ms_diff_ci"].fillna(0),
        capsize=2,
        color=["0.3" if s is True else "0.7" for s in first["time_ms_significant"]],
    )
    axes[0, 0].set_ylabel("Δ time (ms), B - A")
    step = 0.8 / max(len(rails), 1)
    for i, rail in enumerate(rails):
        part = tab[tab["rail"] == rail].set_index("name").reindex(names)
        axes[-1, 0].bar(
            x - 0.4 + step * (i + 0.5),
            part["energy_mj_diff"],
            step,
            label=rail,
            yerr=part["energy_mj_diff_ci"].fillna(0),
            capsize=2,
        )
    if rails:
        axes[-1, 0].set_ylabel("Δ energy (mJ), B - A")
        axes[-1, 0].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes[0, 0].set_title(f"B - A per {m['by']}, error bars {m['confidence']:.0%} CI (Welch)", fontsize="medium")
    axes[-1, 0].set_xticks(x, names, rotation=70, ha="right", fontsize="small")
    for ax in axes[:, 0]:
        ax.axhline(0, color="black", linewidth=0.8)
        ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]


RENDERERS = [
    Renderer(
        "table",
        (".txt",),
        write_text,
        ("Comparison",),
        "the comparison as text (the terminal's default)",
        show=lambda comparison, recording: render(comparison),
    ),
    Renderer(
        "plot",
        PLOT_FORMATS,
        write_plot,
        ("Comparison",),
        "the differences with their CIs, PNG or SVG",
        option="plot",
        binary=True,
    ),
]
