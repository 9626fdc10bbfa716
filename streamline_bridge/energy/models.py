"""Which sensor model each rail's readings follow, and the refresh grid they follow it on.

Evidence, in this order: the user (``EnergyOptions.sensor_models`` / ``sensor``), the recording
(``RailInfo.sensor_model``: the driver's configuration, a source's known behaviour), then the data.
The grid (period and phase) always comes from the data when the data show one
(:func:`~streamline_bridge.power.period.fit_grid`, jointly over the rails of one chip); a
configured period it contradicts is a warning, and the data win. From the data alone, the
candidates are ``instant``, ``window`` of the grid's period, and INA3221 configurations whose round
is that period (or, when the refresh is finer than the sampling, the known configurations that
fast); each is fitted and the one with the lowest BIC is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from streamline_bridge.energy.sensors import Grid
from streamline_bridge.model import RailInfo
from streamline_bridge.power.period import ON_GRID, GridFit, fit_grid
from streamline_bridge.sensor_model import (
    AVERAGES,
    CONV_TIMES_US,
    KNOWN_CONFIGS,
    SensorModel,
    ina3221_config,
)

PERIOD_TOLERANCE = 0.05  # configured vs fitted refresh period: more apart than this is a warning
PERIOD_ACCURACY = 0.02  # a chip's own refresh period vs its nominal one (the INA3221's oscillator)
MEMORY_SHARE = 0.5  # data candidates remember at most this share of the record
ROUND_TOLERANCE = 0.03  # an INA3221 round within this of the fitted period is a candidate (oscillator)
AT_READS = 0.9  # read at least this slowly against the refresh period, each read shows its own update


@dataclass
class Choice:
    """A rail's model, its grid (None for instant) and how it was decided."""

    model: SensorModel
    grid: Grid | None
    period_source: str  # "fitted to the data", "configured", "sampling period", ""
    note: str = ""  # a warning: the data contradict the configuration, or the model had to change
    how: str = ""  # how the model was decided (metadata)
    contradicted: bool = False  # the data contradict the given model: the model is chosen from the data


def chip_of(name: str, info: RailInfo | None) -> str:
    """Rails that share a chip (same ``device`` in ``RailInfo.extra``) share a refresh period."""
    device = (info.extra.get("device") if info else None) or ""
    return f"{info.source}:{device}" if device and info else f"rail:{name}"


def chip_grid(series: list[tuple[np.ndarray, np.ndarray]], hint_ns: float | None) -> GridFit | None:
    """The chip's grid when the data show one regular enough to stand."""
    g = fit_grid(series, hint_ns)
    return g if g is not None and g.on_grid >= ON_GRID else None


def spacing_ns(t: np.ndarray) -> float:
    return float(np.median(np.diff(t))) if len(t) > 1 else 0.0


def given(name: str, info: RailInfo | None, user: SensorModel | None, sensor: str) -> SensorModel | None:
    """The model the user or the recording gives (None: decide from the data)."""
    if user is not None:
        return user
    if sensor == "instant":
        return SensorModel("instant", source="user")
    if sensor == "held":
        return None  # a window of the data's period: decided with the grid
    return info.sensor_model if info else None


def with_grid(
    model: SensorModel, fit: GridFit | None, index: int, configured_ns: float | None, t: np.ndarray, v: np.ndarray
) -> Choice:
    """``model`` on the grid the data show, else on its configured period with an unknown phase;
    ``contradicted`` when the data refresh on another period, or far more often off any grid."""
    if model.kind == "instant":
        return Choice(model, None, "")
    nominal = float(model.update_ns or configured_ns or 0)
    if fit is not None:
        note = ""
        if nominal and abs(fit.period_ns - nominal) > PERIOD_TOLERANCE * nominal:
            note = (
                f"configured refresh period {nominal / 1e6:.4g} ms but the readings change every "
                f"{fit.period_ns / 1e6:.4g} ms: the data win"
            )
        # a window is the data's period whatever it was said to be; an INA3221 configuration whose round
        # the data contradict is wrong in its conversion times and averaging too
        return Choice(
            model,
            Grid(fit.period_ns, fit.phases_ns[index]),
            "fitted to the data",
            note,
            contradicted=bool(note) and model.kind == "ina3221",
        )
    if not nominal:
        return Choice(
            SensorModel("instant", source="data"),
            None,
            "",
            f"no refresh period known or seen for the {model.spec} model: read as instant",
        )
    ok = ~np.isnan(v)
    changes = np.diff(t[ok][1:][v[ok][1:] != v[ok][:-1]])
    if len(changes) >= 8 and np.median(changes) < nominal / 2:
        return Choice(
            model,
            None,
            "",
            f"the {model.spec} model refreshes every {nominal / 1e6:.4g} ms but the "
            f"readings change every {np.median(changes) / 1e6:.4g} ms off any grid: "
            "the data win",
            contradicted=True,
        )
    if spacing_ns(t) >= AT_READS * nominal and not (model.kind == "ina3221" and model.averages > 1):
        return Choice(model, Grid(nominal, 0.0, at_reads=True), "configured")  # one read per update
    return Choice(model, Grid(nominal, 0.0, phase_known=False), "configured")


def candidates(fit: GridFit | None, t: np.ndarray) -> list[tuple[SensorModel, Grid | None]]:
    """Models the data allow, with their grids (the first is ``instant``)."""
    out: list[tuple[SensorModel, Grid | None]] = [(SensorModel("instant", source="data"), None)]
    span = float(t[-1] - t[0]) if len(t) > 1 else 0.0
    if fit is not None:
        grid = Grid(fit.period_ns, fit.phases_ns[0])
        out.append((SensorModel("window", period_ns=int(fit.period_ns), source="data"), grid))
        for channels, bus, shunt in ina3221_rounds(fit.period_ns):
            for avg in AVERAGES:
                if avg * fit.period_ns <= MEMORY_SHARE * span:
                    out.append(
                        (SensorModel("ina3221", config=ina3221_config(channels, avg, bus, shunt), source="data"), grid)
                    )
        return out
    fast = spacing_ns(t)
    for config in KNOWN_CONFIGS:
        m = SensorModel("ina3221", config=config, source="data")
        if (m.update_ns or 0) < fast and m.memory_ns <= MEMORY_SHARE * span:
            out.append((m, Grid(float(m.update_ns or 0), 0.0, phase_known=False)))
    return out


def ina3221_rounds(period_ns: float) -> list[tuple[tuple[int, ...], int, int]]:
    """(channels, bus us, shunt us) of the INA3221 geometries whose round is ``period_ns``, one per shunt
    conversion time (the aperture, all the kernel sees of them); none within ``ROUND_TOLERANCE``:
    the closest round, 3 channels and equal times (the chip's usual set-up)."""
    found: dict[int, tuple[tuple[int, ...], int, int]] = {}
    for n in (3, 2, 1):
        for shunt in CONV_TIMES_US:
            for bus in CONV_TIMES_US:
                if abs(n * (bus + shunt) * 1000 - period_ns) <= ROUND_TOLERANCE * period_ns:
                    found.setdefault(shunt, ((1, 2, 3)[:n], bus, shunt))
    if found:
        return list(found.values())
    ct = min(CONV_TIMES_US, key=lambda c: abs(6 * c * 1000 - period_ns))
    return [((1, 2, 3), ct, ct)]


def select(
    options: list[tuple[SensorModel, Grid | None]], score: Callable[[SensorModel, Grid | None], float | None]
) -> tuple[SensorModel, Grid | None, str]:
    if len(options) == 1:
        return options[0][0], options[0][1], "the data show no refresh grid: instant"
    """The candidate with the lowest score (BIC of its fit); ties and failures keep the earlier one."""
    best, best_score = options[0], score(*options[0])
    for cand in options[1:]:
        s = score(*cand)
        if s is not None and (best_score is None or s < best_score - 10.0):
            best, best_score = cand, s
    tried = ", ".join(m.spec for m, _ in options)
    return best[0], best[1], f"chosen from the data among {tried} (lowest BIC)"
