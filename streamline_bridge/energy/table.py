"""The per-layer (or per-group, per-iteration) energy table of a recording: the Python API.

>>> result = energy_table(recording, EnergyOptions(by="layer"))   # doctest: +SKIP
>>> result = energy_table(recording, by="group", sensor="instant")  # the same, fields as keywords
>>> result.table        # long DataFrame: one row per (layer, rail), columns in docs/energy-table.md
>>> result.warnings     # what the reader must know (estimated power, unresolved rows ...)

The computation is a pipeline of small steps, each a function from the state to the state
(:data:`STEPS`): intervals, rails, sensor models, fits, rows, summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from streamline_bridge.energy import align, attribute, integrate, models, rows
from streamline_bridge.energy.attribute import Fit, Layout
from streamline_bridge.energy.intervals import Intervals, find_intervals
from streamline_bridge.energy.options import EnergyOptions
from streamline_bridge.energy.summary import TABLE_VERSION, finish
from streamline_bridge.errors import InputError
from streamline_bridge.model import Recording, rail_arrays

INTEGRATE_FACTOR = 25  # a row at least this many sensor resolutions long is integrated
COLUMNS = (
    "order",
    "name",
    "layer_type",
    "group",
    "iteration",
    "rail",
    "n",
    "time_ms",
    "time_ms_sd",
    "time_ms_ci",
    "energy_mj",
    "energy_mj_sd",
    "energy_mj_ci",
    "dynamic_mj",
    "dynamic_mj_sd",
    "dynamic_mj_ci",
    "power_w",
    "power_w_ci",
    "dynamic_w",
    "share",
    "sensor_period_ms",
    "under_period",
    "n_needed",
    "estimated",
    "method",
    "resolved",
    "sensor_model",
)


@dataclass
class EnergyResult:
    """The table (``COLUMNS``, one row per name and rail, execution order), totals, samples and warnings."""

    table: pd.DataFrame
    totals: pd.DataFrame  # one row per rail: statistics of the per-iteration sum over the rows
    samples: pd.DataFrame  # per occurrence and rail (rail-major, same occurrence order for every rail)
    warnings: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def estimated(self) -> bool:
        """True when any rail's power is a model rather than a measurement."""
        return bool(self.meta.get("estimated"))


@dataclass
class RailState:
    """What the steps learn about one rail."""

    t: np.ndarray
    p: np.ndarray
    choice: models.Choice | None = None
    idle_mw: float | None = None
    spacing_ns: float = 0.0
    integ: integrate.Rail | None = None
    fit: Fit | None = None
    layout: Layout | None = None
    coef_rows: pd.DataFrame | None = None  # sequence rows: mean ms per unknown, by name

    def iterations_for_groups(self) -> int:
        """Iterations that give the fit its minimum number of jackknife groups."""
        if self.layout is None or self.choice is None:
            return 0
        memory = max(float(self.choice.model.memory_ns), self.choice.grid.period_ns if self.choice.grid else 0.0)
        return attribute.MIN_BLOCKS * attribute.iterations_per_block(self.layout, memory)

    @property
    def resolution_ns(self) -> float:
        """The shortest time the rail's readings resolve: sampling interval, refresh, memory."""
        c = self.choice
        grid = c.grid.period_ns if c and c.grid else 0.0
        return max(self.spacing_ns, grid, float(c.model.memory_ns) if c else 0.0)


@dataclass
class State:
    """The pipeline's state: inputs, then what each step adds."""

    rec: Recording
    opt: EnergyOptions
    where: str = ""
    iv: Intervals | None = None
    occ: pd.DataFrame | None = None
    n_iter: int = 0
    rails: dict[str, RailState] = field(default_factory=dict)
    samples: pd.DataFrame | None = None
    table: pd.DataFrame | None = None
    totals: pd.DataFrame | None = None
    warnings: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


def find_occurrences(st: State) -> State:
    """Layer intervals and iterations from the markers; the occurrences kept after warm-up."""
    rec, opt = st.rec, st.opt
    st.where = align.name_of(rec)
    if rec.markers.empty:
        raise InputError(st.where, "no markers: nothing says when the layers ran")
    if rec.power.empty:
        raise InputError(st.where, "no power samples: give a power log (--power) or a run folder")
    st.iv = find_intervals(align.placed_markers(rec, None), opt.style, opt.groups)
    if st.iv.layers.empty:
        raise InputError(st.where, f"no layer intervals in the markers (style {st.iv.style})")
    st.n_iter = int(st.iv.iterations["iteration"].max()) + 1
    if opt.warmup >= st.n_iter:
        raise InputError(st.where, f"--warmup {opt.warmup} drops all {st.n_iter} iteration(s)")
    st.occ = rows.occurrences(st.iv, opt.by, opt.warmup)
    if st.occ.empty:
        raise InputError(st.where, f"no complete {opt.by} intervals after warm-up")
    st.warnings += st.iv.warnings
    return st


def load_rails(st: State) -> State:
    """Each rail's readings (rails without a valid one are left out) and the overlap with the markers."""
    idle = st.rec.meta.extra.get("idle_mw", {})
    for name, (t, p) in rail_arrays(st.rec.power).items():
        ok = ~np.isnan(p)
        if not ok.any():
            st.warnings.append(f"rail {name} has no valid power sample and is left out")
            continue
        st.rails[name] = RailState(
            t, p, idle_mw=None if idle.get(name) is None else float(idle[name]), spacing_ns=models.spacing_ns(t[ok])
        )
    if not st.rails:
        raise InputError(st.where, "no valid power samples on any rail")
    spans = {n: (int(r.t[~np.isnan(r.p)][0]), int(r.t[~np.isnan(r.p)][-1])) for n, r in st.rails.items()}
    st.warnings += align.check_overlap(
        st.rec, st.occ["start_ns"].to_numpy(np.int64), st.occ["end_ns"].to_numpy(np.int64), spans
    )
    return st


def _layer_occurrences(st: State, rail: RailState) -> pd.DataFrame:
    """The layer occurrences of the iterations that lie wholly inside the rail's record."""
    layers = st.iv.layers[st.iv.layers["iteration"] >= st.opt.warmup].rename(columns={"name": "layer", "key": "name"})
    t = rail.t[~np.isnan(rail.p)]
    span = layers.groupby("iteration").agg(a=("start_ns", "min"), b=("end_ns", "max"))
    inside = span.index[(span["a"] >= t[0]) & (span["b"] <= t[-1])]
    return layers[layers["iteration"].isin(inside)]


def _fit(st: State, rail: RailState, choice: models.Choice, jackknife: bool) -> tuple[Fit | None, Layout | None]:
    occ = _layer_occurrences(st, rail)
    if occ.empty:
        return None, None
    lay = attribute.layout(occ)
    d = attribute.design(choice.model, choice.grid, lay, rail.t, rail.p)
    if d is None or len(d.y) < 2:
        return None, lay
    memory = max(float(choice.model.memory_ns), choice.grid.period_ns if choice.grid else 0.0)
    return attribute.solve(d, lay, memory, jackknife), lay


def choose_models(st: State) -> State:
    """Each rail's sensor model and grid: the user's, the recording's, else the best fit to the data."""
    meta_rails = st.rec.meta.rails
    chips: dict[str, list[str]] = {}
    for name in st.rails:
        chips.setdefault(models.chip_of(name, meta_rails.get(name)), []).append(name)
    configured = st.rec.meta.extra.get("configured_update_ns")
    for names in chips.values():
        given = {n: models.given(n, meta_rails.get(n), st.opt.model_for(n), st.opt.sensor) for n in names}
        hint = next((m.update_ns for m in given.values() if m is not None and m.update_ns), None) or configured
        fit = models.chip_grid([(st.rails[n].t, st.rails[n].p) for n in names], hint)
        for i, n in enumerate(names):
            rail = st.rails[n]
            model = given[n]
            if model is None and st.opt.sensor == "held":
                period = fit.period_ns if fit else (configured or rail.spacing_ns)
                model = models.SensorModel("window", period_ns=max(int(period), 1), source="user")
            given_choice = None
            if model is not None:
                given_choice = models.with_grid(model, fit, i, configured, rail.t, rail.p)
                if not given_choice.contradicted:
                    rail.choice = given_choice
                    continue
            single = fit and models.GridFit(fit.period_ns, (fit.phases_ns[i],), fit.on_grid, fit.changes)
            options = models.candidates(single, rail.t[~np.isnan(rail.p)])

            def score(m: models.SensorModel, g: models.Grid | None, rail: RailState = rail) -> float | None:
                f, _ = _fit(st, rail, models.Choice(m, g, ""), False)
                return None if f is None else f.bic()

            m, g, how = models.select(options, score)
            rail.choice = models.Choice(
                m, g, "fitted to the data" if g and g.phase_known else ("configured" if g else ""), how=how
            )
            if given_choice is not None:
                rail.choice.note = f"{given_choice.note}: model {m.spec} chosen from the data instead"
    return st


def fit_rails(st: State) -> State:
    """The least-squares fit of every rail through its model; the integrable form of its readings."""
    for rail in st.rails.values():
        c = rail.choice
        held = c.grid.period_ns if c.model.kind != "instant" and c.grid else None
        rail.integ = integrate.prepare(rail.t, rail.p, int(held) if held else None)
        rail.fit, rail.layout = _fit(st, rail, c, True)
        if (
            rail.fit is not None
            and c.grid is not None
            and not c.grid.phase_known
            and not c.grid.at_reads
            and c.model.memory_ns
        ):
            # the period of a grid finer than the sampling is only the chip's nominal one
            ends = [
                _fit(st, rail, models.Choice(c.model, models.Grid(c.grid.period_ns * (1 + s), 0.0, False), ""), False)[
                    0
                ]
                for s in (-models.PERIOD_ACCURACY, models.PERIOD_ACCURACY)
            ]
            if all(e is not None for e in ends):
                rail.fit.timing = (ends[1].beta - ends[0].beta) / 2
    return st


def make_rows(st: State) -> State:
    """Samples per occurrence and rail, then one row per name and rail, each by one method."""
    opt, occ = st.opt, st.occ
    start = occ["start_ns"].to_numpy(np.int64)
    end = occ["end_ns"].to_numpy(np.int64)
    parts, tables = [], []
    for name, rail in st.rails.items():
        energy = integrate.energy_between(rail.integ, start, end)
        inside = np.zeros(len(occ), bool)
        if rail.layout is not None:
            kept = _layer_occurrences(st, rail)["iteration"].unique()
            inside = occ["iteration"].isin(kept).to_numpy()
        coef = rows.fit_coefficients(rail.layout, occ) if rail.fit is not None else None
        fitted = None if coef is None else np.where(inside, coef @ rail.fit.beta[: coef.shape[1]] * 1e-3, np.nan)
        integ_s, _ = rows.rail_samples(occ, name, energy, rail.idle_mw, opt.baseline, opt.by)
        tab = rows.summarise(integ_s, ["name", "rail"], opt.confidence).assign(method="integrate")
        seq_rows = tab["time_ms"].to_numpy() * 1e6 < INTEGRATE_FACTOR * rail.resolution_ns
        samples = integ_s
        if fitted is not None and seq_rows.any():
            fit_s, fcoef = rows.rail_samples(occ, name, fitted, rail.idle_mw, opt.baseline, opt.by, coef)
            seq = tab.loc[seq_rows, ["name", "rail"]].reset_index(drop=True)
            fstats = rows.summarise(fit_s, ["name", "rail"], opt.confidence).set_index("name").loc[seq["name"]]
            known = fit_s["energy_mj"].notna().to_numpy()
            mean_coef = pd.DataFrame(fcoef[known]).groupby(fit_s["name"].to_numpy()[known], sort=False).mean()
            seq = fstats.reset_index()
            c = mean_coef.reindex(seq["name"]).to_numpy()
            rows.sequence_rows(seq, np.nan_to_num(c), rail.fit, rail.idle_mw, opt.baseline, opt.confidence)
            tab = (
                pd.concat([tab[~seq_rows], seq.assign(method="sequence")])
                .set_index("name")
                .loc[tab["name"]]
                .reset_index()
            )
            use_fit = fit_s["name"].isin(seq["name"]).to_numpy()
            samples = integ_s.copy()
            for col in rows.STAT_COLUMNS:
                samples.loc[use_fit, col] = fit_s.loc[use_fit, col].to_numpy()
            rail.coef_rows = mean_coef
        tab["resolved"] = rows.resolved(tab, None, opt.resolve_within)
        if rail.fit is not None:
            seqm = (tab["method"] == "sequence").to_numpy()
            tab.loc[seqm, "resolved"] = rows.resolved(tab[seqm], rail.fit.blocks, opt.resolve_within)
        tab["sensor_model"] = rail.choice.model.spec
        parts.append(samples)
        tables.append(tab)
    st.samples = pd.concat(parts, ignore_index=True)
    st.table = pd.concat(tables, ignore_index=True)
    return st


STEPS = (find_occurrences, load_rails, choose_models, fit_rails, make_rows, finish)


def energy_table(recording: Recording, options: EnergyOptions | None = None, **overrides: Any) -> EnergyResult:
    """Time and energy per layer (``by="layer"``), group or iteration and rail, with how sure each row is.

    ``options`` (:class:`EnergyOptions`), with any of its fields given as keywords on top.
    Each rail's readings are read through its sensor model; rows long against the sensor are
    integrated, shorter ones come from a least-squares fit through the model (column ``method``);
    rows the data cannot resolve are marked (``resolved`` false) with a CI that says so.
    """
    opt = (options or EnergyOptions()).with_overrides(**overrides) if overrides else (options or EnergyOptions())
    st = State(recording, opt)
    for step in STEPS:
        st = step(st)
    return EnergyResult(st.table[list(COLUMNS)], st.totals, st.samples, st.warnings, st.meta)


__all__ = ["COLUMNS", "TABLE_VERSION", "EnergyOptions", "EnergyResult", "energy_table"]
