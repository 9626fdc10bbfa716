"""Per-layer energy on synthetic recordings whose answer is known analytically."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from streamline_bridge.energy import combine, energy_table, integrate, stats
from streamline_bridge.energy.intervals import find_intervals
from streamline_bridge.errors import InputError
from streamline_bridge.model import Meta, RailInfo, Recording, empty_markers, markers_frame, power_frame
from streamline_bridge.sensor_model import parse as parse_model

MS = 1_000_000


def channel_markers(layers, iterations=(), channel=1, iteration_channel=2, group_names=None):
    """Markers table: each (name, start, end) as a text + end on ``channel``; iterations on their channel."""
    rows = []
    for name, start, end in layers:
        rows.append((start, "text", channel, name, (group_names or {}).get(name)))
        rows.append((end, "end", channel, "", None))
    for label, start, end in iterations:
        rows.append((start, "text", iteration_channel, label, None))
        rows.append((end, "end", iteration_channel, "", None))
    rows.sort(key=lambda r: (r[0], r[1] == "text"))  # an end before a text at the same instant
    t, kind, ch, text, group = zip(*rows)
    return markers_frame({"time_ns": t, "kind": kind, "channel": ch, "text": text, "group_name": group}, 0)


def bookmarks(items):
    """Markers table of bookmarks (time, text)."""
    t, text = zip(*items)
    return markers_frame({"time_ns": t, "kind": ["marker"] * len(t), "text": text}, 0)


def recording(markers, t, rails, infos=None, idle=None, sources=("synthetic",)):
    meta = Meta(
        format="synthetic",
        sources=list(sources),
        clock_base_ns=0,
        rails={r: RailInfo(r, **(infos or {}).get(r, {})) for r in rails},
        extra={"idle_mw": idle} if idle else {},
    )
    return Recording(markers, power_frame(np.asarray(t), rails, 0), meta)


def sequence(names, durations_ms, start_ns=10 * MS, gap_ms=0.0, repeats=1, pause_ms=0.0):
    """Layer (name, start, end) triples run back to back, ``repeats`` times, ``pause_ms`` between repeats."""
    out, t = [], start_ns
    for _ in range(repeats):
        for name, d in zip(names, durations_ms):
            out.append((name, t, t + int(d * MS)))
            t += int((d + gap_ms) * MS)
        t += int(pause_ms * MS)
    return out


# ---------------------------------------------------------------- integration: exact cases


def test_piecewise_linear_power_is_integrated_exactly_between_and_across_samples():
    rng = np.random.default_rng(1)
    t = np.cumsum(rng.integers(200_000, 3_000_000, 400)).astype(np.int64)
    p = rng.uniform(500, 5000, len(t))
    rail = integrate.prepare(t, p)
    starts = rng.integers(t[0], t[-1], 300)
    ends = np.minimum(starts + rng.integers(1, 20 * MS, 300), t[-1])

    def exact(a, b):  # integral of the linear interpolation, by the antiderivative segment by segment
        xs = np.concatenate([[a], t[(t > a) & (t < b)], [b]])
        ps = np.interp(xs, t, p)
        return float(np.sum((ps[1:] + ps[:-1]) * np.diff(xs) / 2)) * 1e-9

    got = integrate.energy_between(rail, starts, ends)
    want = np.array([exact(a, b) for a, b in zip(starts, ends)])
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_linear_power_with_sparse_samples_is_exact_inside_one_sample_gap():
    t = np.array([0, 100 * MS, 200 * MS], dtype=np.int64)
    p = 1000.0 + 5.0 * t / MS  # 1000 mW rising 5 mW per ms
    rail = integrate.prepare(t, p)
    a, b = 12_345_678, 12_345_678 + 250_000  # a 0.25 ms layer between two samples 100 ms apart
    want = (1000 * (b - a) + 5 / MS * (b * b - a * a) / 2) * 1e-9
    assert integrate.energy_between(rail, [a], [b])[0] == pytest.approx(want, rel=1e-12)


def test_step_power_sampled_at_its_steps_is_exact():
    # a step is two samples at the same instant: before and after
    t = np.array([0, 10, 10, 25, 25, 40], dtype=np.int64) * MS
    p = np.array([100.0, 100.0, 900.0, 900.0, 300.0, 300.0])
    rail = integrate.prepare(t, p)
    e = integrate.energy_between(rail, np.array([5, 10, 20, 0]) * MS, np.array([12, 25, 30, 40]) * MS)
    np.testing.assert_allclose(
        e,
        [100 * 5e-3 + 900 * 2e-3, 900 * 15e-3, 900 * 5e-3 + 300 * 5e-3, 100 * 10e-3 + 900 * 15e-3 + 300 * 15e-3],
        rtol=1e-12,
    )


def test_intervals_and_gaps_add_up_to_the_whole_record():
    rng = np.random.default_rng(7)
    t = np.cumsum(rng.integers(900_000, 1_100_000, 5000)).astype(np.int64)
    rail = integrate.prepare(t, rng.uniform(100, 8000, len(t)))
    cuts = np.sort(rng.integers(t[0] + 1, t[-1], 2001))
    edges = np.concatenate([[t[0]], cuts, [t[-1]]])
    pieces = integrate.energy_between(rail, edges[:-1], edges[1:])  # layers and the gaps between them
    assert math.fsum(pieces) == pytest.approx(rail.total_mj, rel=1e-12)
    assert rail.total_mj == pytest.approx(
        np.trapezoid(rail.p_mw, rail.t_ns) * 1e-9
        if hasattr(np, "trapezoid")
        else np.trapz(rail.p_mw, rail.t_ns) * 1e-9,
        rel=1e-12,
    )


def test_missing_samples_are_dropped_counted_and_interpolated_across():
    t = np.arange(0, 11, dtype=np.int64) * MS
    p = 100.0 * np.arange(11)
    p_holes = p.copy()
    p_holes[[3, 4, 7]] = np.nan
    rail = integrate.prepare(t, p_holes)
    assert rail.missing == 3
    # linear power: interpolation across the holes loses nothing
    assert integrate.energy_between(rail, [1 * MS], [9 * MS])[0] == pytest.approx(0.5 * (100 + 900) * 8e-3)


def test_intervals_outside_the_record_are_nan():
    rail = integrate.prepare(np.array([10, 20], dtype=np.int64) * MS, np.array([1.0, 1.0]))
    e = integrate.energy_between(rail, np.array([5, 12, 12]) * MS, np.array([11, 25, 15]) * MS)
    assert np.isnan(e[0]) and np.isnan(e[1]) and e[2] == pytest.approx(3e-3)


# ---------------------------------------------------------------- statistics


@pytest.mark.parametrize(
    "df,q",
    [
        (1, 12.7062047362),
        (2, 4.30265272975),
        (3, 3.18244630528),
        (5, 2.57058183661),
        (10, 2.22813885196),
        (30, 2.04227245630),
        (120, 1.97993040505),
        (1000, 1.96233908082),
        (10**7, 1.95996422),
    ],
)
def test_t_quantile_matches_published_values(df, q):
    assert stats.t_quantile(df, 0.95) == pytest.approx(q, rel=2e-8)


def test_t_quantile_series_and_expansion_agree_at_the_switch():
    lo, hi = stats.SERIES_MAX_DF, stats.SERIES_MAX_DF + 1
    assert stats.t_quantile(lo, 0.99) == pytest.approx(2.60063443, rel=1e-7)
    assert stats.t_quantile(hi, 0.99) < stats.t_quantile(lo, 0.99)
    assert stats.t_quantile(hi, 0.99) == pytest.approx(2.60050992, rel=1e-6)


def test_iterations_needed_follows_the_formula_at_its_own_degrees_of_freedom():
    n = stats.iterations_needed(np.array([10.0, 10.0, 0.0]), np.array([2.0, 0.0, 1.0]), np.array([5, 5, 5]))
    # sd/mean = 0.2 at +-5%: (t * 4)^2 with t at ~65 degrees of freedom
    t = stats.t_quantile(int(n[0]) - 1)
    assert n[0] == math.ceil((t * 0.2 / 0.05) ** 2)
    assert n[1] == 1 and pd.isna(n[2])


# ---------------------------------------------------------------- intervals


def test_channel_texts_are_closed_by_the_next_text_or_end_on_the_same_thread_and_channel():
    m = markers_frame(
        {
            "time_ns": [0, 5, 5, 9, 12, 14, 20],
            "kind": ["text", "text", "text", "end", "text", "end", "text"],
            "tid": [1, 1, 2, 2, 1, 1, 1],
            "channel": [1, 1, 1, 1, 1, 1, 3],
            "text": ["a", "b", "x", "", "c", "", "open"],
        },
        0,
    )
    iv = find_intervals(m)
    got = sorted(zip(iv.layers["name"], iv.layers["start_ns"], iv.layers["end_ns"]))
    assert got == [("a", 0, 5), ("b", 5, 12), ("c", 12, 14), ("x", 5, 9)]
    assert iv.style == "channels" and any("never closed" in w and "open" in w for w in iv.warnings)


def test_synergy_bookmarks_run_to_the_next_and_start_end_only_delimit():
    m = bookmarks(
        [
            (0, "start"),
            (10, "conv1___Conv"),
            (15, "relu1___Relu"),
            (16, "pool1___MaxPool"),
            (30, "end"),
            (40, "start"),
            (50, "conv1___Conv"),
            (52, "relu1___Relu"),
            (55, "pool1___MaxPool"),
            (70, "end"),
        ]
    )
    iv = find_intervals(m)
    assert iv.style == "markers" and iv.iteration_source == "repetition"
    lay = iv.layers
    assert lay["name"].tolist() == ["conv1", "relu1", "pool1"] * 2
    assert lay["layer_type"].tolist() == ["Conv", "Relu", "MaxPool"] * 2
    assert lay["iteration"].tolist() == [0, 0, 0, 1, 1, 1]
    assert (lay["end_ns"] - lay["start_ns"]).tolist() == [5, 1, 14, 2, 3, 15]


def test_style_can_be_forced():
    m = pd.concat([bookmarks([(0, "a"), (10, "b"), (20, "end")]), channel_markers([("x", 0, 20)])], ignore_index=True)
    assert find_intervals(m).style == "channels"
    assert find_intervals(m, style="markers").layers["name"].tolist() == ["a", "b"]


def test_groups_by_prefix_channel_group_and_mapping():
    layers = [("conv1", 0, 5), ("fire2/squeeze1x1", 5, 7), ("fire2/expand1x1", 7, 9), ("fire3/squeeze1x1", 9, 12)]
    assert find_intervals(channel_markers(layers)).layers["group"].tolist() == ["conv1", "fire2", "fire2", "fire3"]
    flat = [("a", 0, 5), ("b", 5, 7), ("c", 7, 9)]
    m = channel_markers(flat, group_names={"a": "front", "b": "front", "c": "back"})
    assert find_intervals(m).layers["group"].tolist() == ["front", "front", "back"]
    assert find_intervals(m, groups={"a": "x"}).layers["group"].tolist() == ["x", "b", "c"]
    assert find_intervals(channel_markers(layers), groups="channel").layers["group"].tolist()[1] == "fire2"


def test_explicit_iteration_markers_on_a_channel_and_repeated_names():
    layers = sequence(["conv", "relu", "relu"], [2, 1, 1], repeats=3, pause_ms=4)
    iters = [(f"iteration {i}", layers[3 * i][1], layers[3 * i + 2][2]) for i in range(3)]
    iv = find_intervals(channel_markers(layers, iters))
    assert iv.iteration_source == "markers"
    assert iv.layers["iteration"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert iv.layers["key"].tolist()[:3] == ["conv", "relu", "relu#2"]
    assert iv.iterations["label"].tolist() == ["iteration 0", "iteration 1", "iteration 2"]
    assert iv.iterations["end_ns"].tolist() == [it[2] for it in iters]


def test_iteration_bookmarks_delimit_iterations_in_markers_style():
    m = bookmarks(
        [(0, "iteration 1"), (1, "a"), (4, "b"), (6, "end"), (10, "iteration 2"), (11, "a"), (13, "b"), (17, "end")]
    )
    iv = find_intervals(m)
    assert iv.iteration_source == "markers"
    assert list(zip(iv.layers["iteration"], iv.layers["start_ns"], iv.layers["end_ns"])) == [
        (0, 1, 4),
        (0, 4, 6),
        (1, 11, 13),
        (1, 13, 17),
    ]
    assert iv.iterations["end_ns"].tolist() == [6, 17]


# ---------------------------------------------------------------- the table


def ramp_recording(by_layers, iterations=(), infos=None, idle=None, sample_ms=0.01, span_ms=400.0, hold_ms=None):
    # sampled finely against the layers: integration is the method for a sensor this fast;
    # ``hold_ms``: VDD_IN's value is refreshed only every hold_ms (a slow sensor's register)
    t = np.arange(0, int(span_ms * MS), int(sample_ms * MS), dtype=np.int64)
    t_in = t if hold_ms is None else np.floor(t / (hold_ms * MS)) * hold_ms * MS
    rails = {"VDD_IN": 2000.0 + 3.0 * t_in / MS, "VDD_GPU": 500.0 + 0.5 * t / MS}
    return recording(channel_markers(by_layers, iterations), t, rails, infos, idle), rails


def exact_ramp(a, b, p0, slope):  # mJ of p0 + slope * t(ms), t in ns
    return (p0 * (b - a) + slope / MS * (b * b - a * a) / 2) * 1e-9


def test_table_per_layer_is_exact_for_linear_power_with_idle_and_share():
    layers = sequence(
        ["conv1", "fire2/squeeze1x1", "fire2/expand1x1", "pool"], [3.0, 0.5, 1.5, 2.0], repeats=4, pause_ms=5
    )
    rec, _ = ramp_recording(layers, idle={"VDD_IN": 1500.0, "VDD_GPU": 400.0})
    res = energy_table(rec, warmup=1)
    tab = res.table
    assert tab["name"].unique().tolist() == ["conv1", "fire2/squeeze1x1", "fire2/expand1x1", "pool"]
    row = tab[(tab["name"] == "fire2/squeeze1x1") & (tab["rail"] == "VDD_IN")].iloc[0]
    occ = [(a, b) for n, a, b in layers if n == "fire2/squeeze1x1"][1:]
    energies = [exact_ramp(a, b, 2000, 3) for a, b in occ]
    assert row["n"] == 3 and row["time_ms"] == pytest.approx(0.5)
    assert row["energy_mj"] == pytest.approx(np.mean(energies), rel=1e-9)
    assert row["energy_mj_sd"] == pytest.approx(np.std(energies, ddof=1), rel=1e-6)
    assert row["energy_mj_ci"] == pytest.approx(stats.t_quantile(2) * np.std(energies, ddof=1) / math.sqrt(3), rel=1e-6)
    assert row["dynamic_mj"] == pytest.approx(np.mean(energies) - 1500 * 0.5e-3, rel=1e-9)
    assert row["power_w"] == pytest.approx(np.mean(energies) / 0.5, rel=1e-9)
    for rail in ("VDD_IN", "VDD_GPU"):
        assert tab.loc[tab["rail"] == rail, "share"].sum() == pytest.approx(1.0)
    tot = res.totals.set_index("rail").loc["VDD_IN"]
    assert tot["energy_mj"] == pytest.approx(tab.loc[tab["rail"] == "VDD_IN", "energy_mj"].sum(), rel=1e-12)
    assert res.meta["iterations"] == 4 and res.meta["iterations_used"] == 3


def test_table_by_group_sums_the_layers_of_each_group_per_iteration():
    layers = sequence(["conv1", "fire2/squeeze1x1", "fire2/expand1x1", "pool"], [3.0, 0.5, 1.5, 2.0], repeats=3)
    rec, _ = ramp_recording(layers)
    res = energy_table(rec, by="group", baseline="none")
    fire = res.table[(res.table["name"] == "fire2") & (res.table["rail"] == "VDD_GPU")].iloc[0]
    occ = [(a, b) for n, a, b in layers if n.startswith("fire2/")]
    per_iter = [exact_ramp(*occ[2 * i], 500, 0.5) + exact_ramp(*occ[2 * i + 1], 500, 0.5) for i in range(3)]
    assert res.table["name"].unique().tolist() == ["conv1", "fire2", "pool"]
    assert fire["energy_mj"] == pytest.approx(np.mean(per_iter), rel=1e-9) and fire["time_ms"] == pytest.approx(2.0)
    assert res.table["dynamic_mj"].isna().all() and not any("idle" in w for w in res.warnings)


def test_table_by_iteration_uses_the_iteration_spans():
    layers = sequence(["a", "b"], [2.0, 3.0], repeats=3, pause_ms=10)
    iters = [(f"iteration {i + 1}", layers[2 * i][1] - MS, layers[2 * i + 1][2] + MS) for i in range(3)]
    rec, _ = ramp_recording(layers, iters)
    res = energy_table(rec, by="iteration", warmup=1)
    t = res.table[res.table["rail"] == "VDD_IN"]
    assert t["name"].tolist() == ["iteration 2", "iteration 3"]
    assert t["energy_mj"].tolist() == pytest.approx([exact_ramp(a, b, 2000, 3) for _, a, b in iters[1:]], rel=1e-9)
    assert (t["n"] == 1).all() and t["energy_mj_ci"].isna().all()


def test_layers_under_the_sensor_period_are_flagged_with_iterations_needed():
    # the rail's model comes from the recording (a 7 ms window sensor), the other rail's from the data
    layers = sequence(["long", "short"], [20.0, 2.0], repeats=5, pause_ms=3)
    rec, _ = ramp_recording(
        layers, infos={"VDD_IN": {"sensor_model": parse_model("window:7ms", "source")}}, sample_ms=1.0, hold_ms=7.0
    )
    res = energy_table(rec, baseline="none")
    flags = res.table.set_index(["name", "rail"])["under_period"]
    assert flags[("short", "VDD_IN")] and not flags[("long", "VDD_IN")]
    assert not flags[("short", "VDD_GPU")]  # changes at every 1 ms sample: the data say instant
    assert res.meta["rails"]["VDD_IN"]["sensor_model"] == "window:7ms"
    assert res.meta["rails"]["VDD_IN"]["sensor_model_source"] == "source"
    assert res.meta["rails"]["VDD_GPU"]["sensor_model"] == "instant"
    short = res.table[(res.table["name"] == "short") & (res.table["rail"] == "VDD_IN")].iloc[0]
    assert short["method"] == "sequence" and short["n_needed"] >= 2


def test_estimated_power_is_flagged_in_rows_meta_and_warnings():
    layers = sequence(["a", "b"], [2.0, 3.0], repeats=2)
    rec, _ = ramp_recording(layers, infos={"VDD_GPU": {"estimated": True, "source": "cpu-model"}})
    res = energy_table(rec, baseline="none")
    assert res.estimated and res.meta["rails"]["VDD_GPU"]["estimated"]
    assert res.table.loc[res.table["rail"] == "VDD_GPU", "estimated"].all()
    assert not res.table.loc[res.table["rail"] == "VDD_IN", "estimated"].any()
    assert any(w.startswith("ESTIMATED power: VDD_GPU (cpu-model)") for w in res.warnings)


def test_missing_samples_are_reported():
    layers = sequence(["a", "b"], [2.0, 3.0], repeats=2)
    rec, rails = ramp_recording(layers)
    rec.power.loc[rec.power.index[[5, 6, 9]], "power_mw"] = np.nan
    res = energy_table(rec, baseline="none")
    assert res.meta["rails"]["VDD_IN"]["missing_samples"] == 3
    assert any("3 missing sample(s)" in w for w in res.warnings)
    a = res.table[(res.table["name"] == "a") & (res.table["rail"] == "VDD_IN")].iloc[0]
    assert a["energy_mj"] == pytest.approx(np.mean([exact_ramp(s, e, 2000, 3) for n, s, e in layers if n == "a"]))


def test_markers_outside_the_power_record_warn_and_none_inside_is_an_error():
    layers = sequence(["a", "b"], [2.0, 3.0], repeats=3, start_ns=390 * MS)
    rec, _ = ramp_recording(layers)
    res = energy_table(rec, baseline="none")
    assert any("outside the VDD_IN power record" in w for w in res.warnings)
    assert res.table["n"].min() < 3
    far = sequence(["a", "b"], [2.0, 3.0], repeats=3, start_ns=10_000 * MS)
    rec, _ = ramp_recording(far)
    with pytest.raises(InputError, match="do not overlap the power record"):
        energy_table(rec)


def test_no_markers_or_no_power_is_one_clear_error_naming_the_input():
    layers = sequence(["a", "b"], [2.0, 3.0])
    rec, _ = ramp_recording(layers)
    no_markers = Recording(empty_markers(), rec.power, rec.meta)
    with pytest.raises(InputError, match="synthetic: no markers"):
        energy_table(no_markers)
    with pytest.raises(InputError, match="synthetic: no power samples"):
        energy_table(Recording(rec.markers, rec.power.iloc[:0], rec.meta))
    with pytest.raises(InputError, match="drops all"):
        energy_table(rec, warmup=1)


# ---------------------------------------------------------------- combining inputs, exports, offsets


def split(rec, marker_meta=None):
    """The recording as a marker-only and a power-only input."""
    markers = Recording(rec.markers, rec.power.iloc[:0], marker_meta or Meta(format="marker-log", sources=["m.sbm"]))
    power = Recording(
        empty_markers(),
        rec.power,
        Meta(format="power-log", sources=["p.sbp"], clock_base_ns=0, rails=rec.meta.rails, extra=rec.meta.extra),
    )
    return markers, power


def test_combining_a_marker_log_and_a_power_log_gives_the_same_table():
    layers = sequence(["a", "b"], [2.0, 3.0], repeats=3)
    rec, _ = ramp_recording(layers, idle={"VDD_IN": 1000.0})
    m, p = split(rec)
    both = combine([m, p])
    assert both.meta.sources == ["m.sbm", "p.sbp"] and both.meta.extra["idle_mw"] == {"VDD_IN": 1000.0}
    pd.testing.assert_frame_equal(energy_table(both).table, energy_table(rec).table)


def export_of(markers, capture_start_ns):
    """The markers as a Streamline export has them: only times relative to the capture start."""
    rel = markers["time_ns"] - capture_start_ns
    return markers.assign(time_ns=pd.array([pd.NA] * len(markers), dtype="Int64"), time_rel_ns=rel)


def test_an_export_is_placed_with_an_offset_or_the_capture_start():
    layers = sequence(["a", "b"], [2.0, 3.0], repeats=3, start_ns=100 * MS)
    rec, _ = ramp_recording(layers)
    want = energy_table(rec).table
    m, p = split(rec)
    exported = Recording(export_of(m.markers, 42 * MS), m.power, Meta(format="streamline-export", sources=["log.csv"]))
    with pytest.raises(InputError, match="log.csv: markers have only times relative"):
        combine([exported, p])
    pd.testing.assert_frame_equal(energy_table(combine([exported, p], offset_ns=42 * MS)).table, want)
    capture = Recording(empty_markers(), p.power.iloc[:0], Meta(format="apc", sources=["x.apc"], clock_base_ns=42 * MS))
    pd.testing.assert_frame_equal(energy_table(combine([exported, p, capture])).table, want)


def test_a_rail_in_two_inputs_is_an_error():
    layers = sequence(["a", "b"], [2.0, 3.0])
    rec, _ = ramp_recording(layers)
    m, p = split(rec)
    with pytest.raises(InputError, match="rail VDD_IN is also in p.sbp"):
        combine([m, p, p])


# ---------------------------------------------------------------- statistical coverage


def box_sensor(t_fine_ns, p_fine, period_ns, phase_ns, sample_ns, end_ns):
    """A sensor reporting every ``period_ns`` the mean power of its last period, read every ``sample_ns``."""
    updates = np.arange(phase_ns + period_ns, end_ns, period_ns, dtype=np.int64)
    cum = np.concatenate([[0.0], np.cumsum(p_fine[:-1] * np.diff(t_fine_ns))])
    readings = (np.interp(updates, t_fine_ns, cum) - np.interp(updates - period_ns, t_fine_ns, cum)) / period_ns
    t = np.arange(updates[0], end_ns, sample_ns, dtype=np.int64)
    last = np.searchsorted(updates, t, side="right") - 1
    return t, readings[last]


def test_iteration_bookmarks_delimit_channel_annotated_layers():
    layers = sequence(["a", "b"], [2.0, 3.0], repeats=3, pause_ms=4)
    marks = bookmarks([(layers[2 * i][1], f"iteration {i + 7}") for i in range(3)])
    iv = find_intervals(pd.concat([channel_markers(layers), marks], ignore_index=True))
    assert iv.style == "channels" and iv.iteration_source == "markers"
    assert iv.layers["iteration"].tolist() == [0, 0, 1, 1, 2, 2]
    assert iv.iterations["label"].tolist() == ["iteration 7", "iteration 8", "iteration 9"]


def test_an_export_log_with_an_export_timeline_stay_on_the_capture_clock_and_mix_needs_an_offset():
    layers = sequence(["a", "b"], [2.0, 3.0], repeats=3, start_ns=100 * MS)
    rec, _ = ramp_recording(layers)
    want = energy_table(rec).table
    m, p = split(rec)
    log = Recording(export_of(m.markers, 0), m.power, Meta(format="streamline-export", sources=["log.txt"]))
    timeline = Recording(
        empty_markers(), p.power, Meta(format="streamline-export", sources=["timeline.txt"], rails=p.meta.rails)
    )
    pd.testing.assert_frame_equal(energy_table(combine([log, timeline])).table, want)
    native_markers = Recording(rec.markers, rec.power.iloc[:0], Meta(format="marker-log", sources=["m.sbm"]))
    moved = timeline.power.assign(time_rel_ns=timeline.power["time_ns"] - 30 * MS)
    with pytest.raises(InputError, match="timeline.txt: power times are relative"):
        combine([native_markers, Recording(empty_markers(), moved, timeline.meta)])
    placed = combine([native_markers, Recording(empty_markers(), moved, timeline.meta)], offset_ns=30 * MS)
    pd.testing.assert_frame_equal(energy_table(placed).table, want)


def test_held_values_become_the_step_function_of_the_sensor_windows():
    # a sensor updating every 7 ms with the mean of its last period, read every 1 ms
    t = np.arange(0, 50, dtype=np.int64) * MS
    means = np.array([100.0, 200.0, 300.0, 200.0, 500.0, 400.0, 600.0, 700.0])
    p = means[t // (7 * MS)]
    steps_t, steps_p = integrate.held_windows(t, p, 7 * MS)
    # updates seen at 7, 14, ... ms, placed halfway between the samples around the change
    assert steps_t.tolist()[:6] == [0, 0, 0, 6_500_000, 6_500_000, 13_500_000]
    assert steps_p.tolist()[:6] == [100.0, 100.0, 200.0, 200.0, 300.0, 300.0]
    rail = integrate.prepare(t, p, held_period_ns=7 * MS)
    assert rail.last_ns == 48_500_000  # nothing is known after the last change
    # the value seen at 14 ms is the mean over (6.5, 13.5] ms: exact over that window
    assert integrate.energy_between(rail, [6_500_000], [13_500_000])[0] == pytest.approx(300.0 * 7e-3)
    # an update that repeats its value: the new value covers one period, the old one the rest
    p2 = np.select([t < 21 * MS, t < 35 * MS], [100.0, 900.0], 400.0)
    rail2 = integrate.prepare(t, p2, held_period_ns=7 * MS)
    edges = np.array([0, 13.5, 20.5, 27.5, 34.5]) * MS
    e = integrate.energy_between(rail2, edges[:-1], edges[1:])
    np.testing.assert_allclose(e, [100.0 * 13.5e-3, 900.0 * 7e-3, 900.0 * 7e-3, 400.0 * 7e-3])


def test_the_window_model_removes_the_lag_and_the_smoothing_of_a_windowed_sensor():
    """A 5 W layer between 1 W layers, read through a 7 ms box sensor: raw samples lag by about a period
    (the layer loses ~ΔP·T); the window model, found from the data, fitted through the sensor leaves no
    bias (the old held-value step function left the smoothing, ~ΔP·T/6 per edge)."""
    rng = np.random.default_rng(3)
    period, layers, t0 = 7 * MS, [], 20 * MS
    for _ in range(150):
        seq = sequence(["A", "B", "C"], [20.0, 30.0, 20.0], start_ns=t0)
        layers += seq
        t0 = seq[-1][2] + int(rng.uniform(1, 8) * MS)
    t_fine = np.arange(0, t0 + 30 * MS, 20_000, dtype=np.int64)
    p_fine = np.full(len(t_fine), 1000.0)
    for name, a, b in layers:
        if name == "B":
            p_fine[(t_fine >= a) & (t_fine < b)] = 5000.0
    t, p = box_sensor(t_fine, p_fine, period, 3 * MS, MS, t0 + 30 * MS)
    rec = recording(channel_markers(layers), t, {"VDD_IN": p}, {"VDD_IN": {"update_period_ns": period}})
    delta_t = 4000.0 * period * 1e-9  # ΔP x T in mJ
    held = energy_table(rec, baseline="none")
    instant = energy_table(rec, baseline="none", sensor="instant")
    assert held.meta["rails"]["VDD_IN"]["sensor_model"] == "window:7ms"
    assert held.meta["rails"]["VDD_IN"]["refresh_ms"] == pytest.approx(7.0, rel=1e-3)
    b = held.table.set_index("name").loc["B"]
    bias = {
        r: (res.table.set_index("name").loc["B", "energy_mj"] - 150.0) / delta_t
        for r, res in (("held", held), ("instant", instant))
    }
    assert b["method"] == "sequence" and b["resolved"] and abs(b["energy_mj"] - 150.0) <= b["energy_mj_ci"]
    assert abs(bias["held"]) < 0.05 and bias["instant"] < -0.8
