"""Per-layer time and energy per rail with confidence intervals, like Fig. 2 of the reference study.

matplotlib with the Agg backend; PNG or SVG by the file's suffix. Rows shorter than the sensor
period are hatched (statistical values); estimated power is said in the title and across the plot.
A time-only result (no power) gets the time panel alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamline_bridge.report import Renderer

if TYPE_CHECKING:
    from streamline_bridge.energy import EnergyResult

FORMATS = (".png", ".svg")


def write(result: EnergyResult, recording: Any, path: str | Path) -> list[Path]:
    """Draw the figure to ``path`` (``.png`` or ``.svg``)."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"plot file must end in {' or '.join(FORMATS)}: {path}")
    tab, meta = result.table, result.meta
    names = list(dict.fromkeys(tab["name"]))
    rails = list(meta["rails"])
    first = tab.drop_duplicates("name").set_index("name").loc[names]
    x = np.arange(len(names))
    width = max(8.0, 0.32 * len(names) + 4.5)  # room for the legend on the right
    panels = 2 if rails else 1
    fig, axes = plt.subplots(
        panels, 1, figsize=(width, 4 + 3.5 * (panels - 1)), sharex=True, constrained_layout=True, squeeze=False
    )
    ax_t, ax_e = axes[0, 0], axes[-1, 0]
    under_any = tab.groupby("name", sort=False)["under_period"].any().loc[names].to_numpy()
    hatch = ["//" if u else "" for u in under_any]
    bars = ax_t.bar(
        x, first["time_ms"], yerr=first["time_ms_ci"].fillna(0), color="0.55", capsize=2, error_kw={"elinewidth": 0.8}
    )
    for b, h in zip(bars, hatch):
        b.set_hatch(h)
    ax_t.set_ylabel("time (ms)")
    ax_t.set_title(f"Time per {meta['by']}")
    step = 0.8 / max(len(rails), 1)
    for i, rail in enumerate(rails):
        part = tab[tab["rail"] == rail].set_index("name").reindex(names)
        label = rail + (" (ESTIMATED)" if meta["rails"][rail]["estimated"] else "")
        bars = ax_e.bar(
            x - 0.4 + step * (i + 0.5),
            part["energy_mj"],
            step,
            label=label,
            yerr=part["energy_mj_ci"].fillna(0),
            capsize=2,
            error_kw={"elinewidth": 0.8},
        )
        for b, u in zip(bars, part["under_period"].fillna(False)):
            b.set_hatch("//" if u else "")
    note = f"error bars: {meta['confidence']:.0%} CI over {meta['iterations_used']} iteration(s)"
    if under_any.any():
        note += "\nhatched: shorter than the sensor period (statistical value)"
    if rails:
        ax_e.set_ylabel("energy (mJ)")
        ax_e.set_title(f"Energy per {meta['by']} and rail\n{note}", fontsize="medium")
        ax_e.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    else:
        ax_t.set_title(f"Time per {meta['by']} (no power: time only)\n{note}", fontsize="medium")
    ax_e.set_xticks(x, names, rotation=70, ha="right", fontsize="small")
    for ax in {ax_t, ax_e}:
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    if result.estimated:
        fig.suptitle("ESTIMATED POWER: modelled, not measured", color="red", fontweight="bold")
        fig.text(
            0.5,
            0.5,
            "ESTIMATED",
            color="red",
            alpha=0.15,
            fontsize=60,
            ha="center",
            va="center",
            rotation=20,
            transform=fig.transFigure,
        )
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]


RENDERERS = [
    Renderer(
        "plot",
        FORMATS,
        write,
        ("EnergyResult",),
        "time and energy per row, PNG or SVG",
        option="plot",
        run_file="plot.png",
        binary=True,
    )
]
