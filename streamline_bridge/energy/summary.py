"""The last step of the energy table: order, derived columns, totals, warnings and metadata."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from streamline_bridge.energy import rows, stats

TABLE_VERSION = 2


def _order(st: Any) -> pd.DataFrame:
    table, samples = st.table, st.samples
    first = samples.groupby("name", sort=False)["seq"].min()
    table["order"] = table["name"].map(first.rank(method="first").astype(np.int64) - 1)
    descr = samples.drop_duplicates("name").set_index("name")
    table["layer_type"] = table["name"].map(descr["layer_type"]).fillna("")
    table["group"] = table["name"].map(descr["group"]).fillna("")
    table["iteration"] = pd.array(
        table["name"].map(descr["iteration"]) if st.opt.by == "iteration" else [pd.NA] * len(table), dtype="Int64"
    )
    rank = table["rail"].map({n: i for i, n in enumerate(st.rails)})
    return table.iloc[np.lexsort((rank.to_numpy(), table["order"].to_numpy()))].reset_index(drop=True)


def _derived(st: Any) -> None:
    table, opt = st.table, st.opt
    with np.errstate(invalid="ignore", divide="ignore"):
        table["power_w"] = table["energy_mj"] / table["time_ms"]
        table["power_w_ci"] = table["energy_mj_ci"] / table["time_ms"]
        table["dynamic_w"] = table["dynamic_mj"] / table["time_ms"]
        total = table.groupby("rail", sort=False)["energy_mj"].transform("sum")
        table["share"] = table["energy_mj"] / total
    period = {n: r.resolution_ns / 1e6 for n, r in st.rails.items()}
    table["sensor_period_ms"] = table["rail"].map(period).astype("Float64")
    table["under_period"] = (table["time_ms"] < table["sensor_period_ms"]).fillna(False).astype(bool)
    needed = stats.iterations_needed(
        table["energy_mj"].to_numpy(),
        table["energy_mj_sd"].to_numpy(),
        table["n"].to_numpy(),
        opt.precision,
        opt.confidence,
    )
    # a fit also needs enough jackknife groups of iterations
    floor = table["rail"].map({n: r.iterations_for_groups() for n, r in st.rails.items()}).to_numpy()
    seq = (table["method"] == "sequence").to_numpy()
    table["n_needed"] = pd.array(
        np.where(seq & ~pd.isna(needed), np.maximum(needed.to_numpy(np.float64, na_value=0), floor), needed),
        dtype="Int64",
    )
    rails = st.rec.meta.rails
    table["estimated"] = table["rail"].map(lambda r: bool(r in rails and rails[r].estimated))
    table["resolved"] = table["resolved"].astype(bool)


def _totals(st: Any) -> pd.DataFrame:
    """Per rail: the per-iteration sum over the rows; its energy CI from the rows' methods."""
    samples = st.samples
    if st.opt.by == "iteration":
        per_iter = samples
    else:
        per_iter = samples.groupby(["rail", "iteration"], sort=False)[list(rows.STAT_COLUMNS)].sum(min_count=1)
        per_iter = per_iter.reset_index()
    totals = rows.summarise(per_iter, ["rail"], st.opt.confidence)
    for i, name in enumerate(totals["rail"]):
        rail = st.rails[name]
        tab = st.table[st.table["rail"] == name]
        coef = None
        if rail.coef_rows is not None:
            coef = rail.coef_rows.reindex(tab["name"]).fillna(0.0).to_numpy()
        mean, ci = rows.total_of(tab, coef, rail.fit, st.opt.confidence)
        if (tab["method"] == "sequence").any() and st.opt.by != "iteration":
            totals.loc[i, "energy_mj"] = mean
            totals.loc[i, "energy_mj_ci"] = ci
    return totals


def _warnings(st: Any) -> list[str]:
    out = []
    rails, table, opt = st.rec.meta.rails, st.table, st.opt
    estimated = {n: rails[n].source or "estimate" for n in st.rails if n in rails and rails[n].estimated}
    if estimated:
        out.append(
            f"ESTIMATED power: {', '.join(estimated)} "
            f"({', '.join(sorted(set(estimated.values())))}) modelled, not measured"
        )
    for name, rail in st.rails.items():
        if rail.integ.missing:
            out.append(f"rail {name}: {rail.integ.missing} missing sample(s) dropped and interpolated across")
        if rail.choice.note:
            out.append(f"rail {name}: {rail.choice.note}")
        mine = table[table["rail"] == name]
        bad = mine[~mine["resolved"]]
        if len(bad):
            need = bad["n_needed"].max()
            more = f"about {int(need)} iterations (column n_needed)" if not pd.isna(need) else "more iterations"
            out.append(
                f"{len(bad)} of {len(mine)} {opt.by}s on {name} are not resolved by its sensor "
                f"({rail.choice.model.spec}): their CI says how little is known; {more} would bring "
                f"them to ±{opt.precision:.0%}, or measure each layer alone (--method isolate)"
            )
    if opt.baseline == "idle":
        unknown = [n for n, r in st.rails.items() if r.idle_mw is None]
        if unknown:
            out.append(
                f"no idle power known for {', '.join(unknown)}: dynamic energy left empty "
                "(record measures it; or use --baseline none)"
            )
    return out


def _meta(st: Any) -> dict[str, Any]:
    rail_meta = {}
    for name, rail in st.rails.items():
        info = st.rec.meta.rails.get(name)
        c = rail.choice
        rail_meta[name] = {
            "sensor_model": c.model.spec,
            "sensor_model_source": c.model.source,
            "sensor_model_how": c.how or f"given ({c.model.source})",
            "refresh_ms": c.grid.period_ns / 1e6 if c.grid else None,
            "refresh_phase_known": bool(c.grid.phase_known) if c.grid else None,
            "sensor_period_ms": rail.resolution_ns / 1e6,
            "period_source": c.period_source or "sampling period",
            "samples_model": "instant" if c.model.kind == "instant" else "held",
            "fit_blocks": rail.fit.blocks if rail.fit else None,
            "estimated": bool(info and info.estimated),
            "source": info.source if info else "",
            "idle_mw": rail.idle_mw,
            "samples": int(np.count_nonzero(~np.isnan(rail.p))),
            "missing_samples": rail.integ.missing,
            "record_s": (rail.integ.last_ns - rail.integ.first_ns) / 1e9,
            "record_mj": rail.integ.total_mj,
        }
    opt, iv = st.opt, st.iv
    return {
        "version": TABLE_VERSION,
        "by": opt.by,
        "baseline": opt.baseline,
        "style": iv.style,
        "iteration_source": iv.iteration_source,
        "iterations": st.n_iter,
        "warmup": opt.warmup,
        "iterations_used": int(st.occ["iteration"].nunique()),
        "confidence": opt.confidence,
        "precision": opt.precision,
        "resolve_within": opt.resolve_within,
        "estimated": any(r["estimated"] for r in rail_meta.values()),
        "sources": list(st.rec.meta.sources),
        "clock_base_ns": st.rec.meta.clock_base_ns,
        "rails": rail_meta,
    }


def finish(st: Any) -> Any:
    """Order the rows, add the derived columns, the totals, the warnings and the metadata."""
    st.table = _order(st)
    _derived(st)
    st.totals = _totals(st)
    st.warnings += _warnings(st)
    st.meta = _meta(st)
    return st
