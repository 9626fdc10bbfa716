"""Per-layer energy through sensor models, against simulated sensors whose true power is known."""

from __future__ import annotations

import numpy as np
import pytest

from streamline_bridge import ingest, sensor_model
from streamline_bridge import simulate as sim
from streamline_bridge.energy import (
    EnergyOptions,
    combine,
    energy_table,
    sensors,
)
from streamline_bridge.energy.attribute import design, layout
from streamline_bridge.power.period import fit_grid
from streamline_bridge.sensor_model import SensorModel, parse

MS = sim.MS


def schedule(iterations, n_layers=8, seed=3, long=False, **kw):
    rng = np.random.default_rng(seed)
    durations = rng.uniform(1e3, 2e3, n_layers) if long else np.exp(rng.uniform(np.log(0.05), np.log(5), n_layers))
    power = rng.uniform(1500, 6000, n_layers)
    layers = tuple(
        (f"l{i}", float(d), {"VDD_IN": float(p), "VDD_GPU": float(p / 4 + 200)})
        for i, (d, p) in enumerate(zip(durations, power))
    )
    return sim.Schedule(layers, iterations, {"VDD_IN": 1200.0, "VDD_GPU": 300.0}, seed=seed, **kw)


def simulated(model, iterations, sample_ms=1.0, noise=5.0, known=False, oscillator=1.01, seed=3, **kw):
    truth = sim.run(schedule(iterations, seed=seed, **kw))
    m = parse(model, "source")
    period = (m.update_ns or 0) * oscillator or None
    rails = {r: sim.Sensor(m, period, (0.3 + 2.2 * i) * MS % (period or 1), noise) for i, r in enumerate(truth.power)}
    t = sim.read_times(int(truth.edges[0]), truth.end_ns, int(sample_ms * MS), stalls=0.002, seed=seed)
    readings = sim.read(truth, rails, t, seed)
    return truth, readings, sim.recording(truth, readings, known_models=known)


def compare(truth, res, warmup=1):
    want = truth.layer_energy(warmup).set_index(["name", "rail"])["energy_mj"]
    tab = res.table.set_index(["name", "rail"])
    true = want.reindex(tab.index)
    err = ((tab["energy_mj"] - true) / true).abs()
    covered = ((tab["energy_mj"] - true).abs() <= tab["energy_mj_ci"]).fillna(False)
    return tab, err, covered


# ---------------------------------------------------------------- forward models


def test_forward_models_see_what_the_datasheet_says():
    edges = np.array([0, 10, 20, 30], dtype=np.float64) * MS
    power = np.array([1000.0, 3000.0, 2000.0])
    # instant: the value at the read
    got = sensors.forward(SensorModel("instant"), None, edges, power, np.array([5, 15, 25]) * MS)
    assert got.tolist() == [1000.0, 3000.0, 2000.0]
    # window 10 ms, updates at 5, 15, 25 ms: the mean over the 10 ms before the update a read sees
    grid = sensors.Grid(10 * MS, 5 * MS)
    got = sensors.forward(SensorModel("window", period_ns=10 * MS), grid, edges, power, np.array([16, 26]) * MS)
    assert got.tolist() == [2000.0, 2500.0]
    # INA3221 AVG 1 (0x7127): the 1.1 ms shunt aperture before each register load
    m = parse("ina3221:0x7127")
    grid = sensors.Grid(6.6 * MS, 10.5 * MS)  # a load at 10.5 ms: aperture 9.4-10.5 ms straddles the step
    got = sensors.forward(m, grid, edges, power, np.array([10.6 * MS]))
    assert got[0] == pytest.approx((0.6 * 1000 + 0.5 * 3000) / 1.1)


def test_the_ina3221_running_average_is_the_datasheet_recursion():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 5000, (3000, 2))
    want = np.empty_like(x)
    out = np.array([100.0, 200.0])
    for j in range(len(x)):
        out = out + (x[j] - out) / 512
        want[j] = out
    np.testing.assert_allclose(sensors.ema(x, 512, np.array([100.0, 200.0])), want, rtol=1e-10)
    np.testing.assert_array_equal(sensors.ema(x, 1, 0.0), x)


@pytest.mark.parametrize("model", ["instant", "window:7ms", "ina3221:0x7127", "ina3221:0x7607"])
def test_the_design_matrix_is_the_simulator_run_backwards(model):
    """Without noise or jitter, the readings are exactly the design times the true powers."""
    truth, readings, _ = simulated(model, 20, noise=0.0, oscillator=1.0, time_jitter=0.0, power_jitter=0.0)
    truth_rd = sim.read(
        truth,
        {r: sim.Sensor(s.model, s.period_ns, s.phase_ns, 0.0, 0.0) for r, s in readings.sensors.items()},
        readings.t_ns,
    )
    occ = truth.occurrences
    lay = layout(occ)
    s = readings.sensors["VDD_IN"]
    d = design(s.model, s.grid(), lay, readings.t_ns, truth_rd.values["VDD_IN"])
    layer_mw = {name: mw["VDD_IN"] for name, _, mw in schedule(20).layers}
    beta = np.array([layer_mw.get(n, 1200.0) for n in lay.names])
    beta[lay.names.index("(drift, mW/s)")] = 0.0
    if d.x.shape[1] > len(beta):  # the register before the first modelled update: idle by then
        beta = np.append(beta, 1200.0)
    np.testing.assert_allclose(d.x @ beta, d.y, rtol=1e-9, atol=1e-6)


# ---------------------------------------------------------------- timing


def test_the_refresh_grid_is_fitted_jointly_through_stalls_and_a_rail_that_rarely_changes():
    period, phase = 6.6 * MS * 1.03, 1.7 * MS  # an oscillator 3 % off the configuration
    t = sim.read_times(0, 20_000 * MS, MS, stalls=0.01, seed=5)
    k = np.floor((t - phase) / period)
    busy = 1000 + (k % 7) * 13.0  # changes at every update
    rare = 500 + (k // 500) * 10.0  # changes every 500 updates
    g = fit_grid([(t, busy), (t, rare)], 6.6 * MS)
    assert g is not None and g.on_grid > 0.95
    assert g.period_ns == pytest.approx(period, rel=1e-4)
    assert min(abs(g.phases_ns[0] - phase), period - abs(g.phases_ns[0] - phase)) < 0.1 * MS
    assert min(abs(g.phases_ns[1] - phase), period - abs(g.phases_ns[1] - phase)) < 0.5 * MS


def test_values_that_change_off_any_grid_have_no_grid():
    rng = np.random.default_rng(2)
    t = np.arange(0, 5_000 * MS, MS)
    changes = np.sort(rng.uniform(0, 5_000 * MS, 400))
    v = np.searchsorted(changes, t).astype(float)
    g = fit_grid([(t, v)])
    assert g is None or g.on_grid < 0.85


# ---------------------------------------------------------------- attribution


def test_ina3221_0x7127_is_found_from_the_data_and_resolved_with_honest_cis():
    truth, _, rec = simulated("ina3221:0x7127", 300, n_layers=20)
    res = energy_table(rec, warmup=1)
    assert res.meta["rails"]["VDD_IN"]["sensor_model"] == "ina3221:0x7127"
    assert res.meta["rails"]["VDD_IN"]["refresh_ms"] == pytest.approx(6.6 * 1.01, rel=1e-3)
    tab, err, covered = compare(truth, res)
    assert covered.mean() >= 0.9 and tab["resolved"].mean() >= 0.9
    assert err[tab["resolved"]].median() <= 0.02
    assert set(tab["method"]) == {"sequence"}
    totals = tab.groupby(level="rail")["energy_mj"].sum()
    want = truth.layer_energy(1).groupby("rail")["energy_mj"].sum()
    assert ((totals - want) / want).abs().max() <= 0.02


def test_instant_step_files_are_exact_within_one_percent():
    truth, _, rec = simulated("instant", 100, noise=0.0)
    res = energy_table(rec, warmup=1)
    tab, err, covered = compare(truth, res)
    assert res.meta["rails"]["VDD_IN"]["sensor_model"] == "instant"
    assert err.max() <= 0.01 and covered.mean() >= 0.9 and tab["resolved"].all()


def test_rows_the_sensor_cannot_resolve_are_flagged_with_a_wide_ci_and_what_would_resolve_them():
    truth, _, rec = simulated("ina3221:0x7c07", 40, known=True)
    res = energy_table(rec, warmup=1)
    tab, _err, covered = compare(truth, res)
    assert res.meta["rails"]["VDD_IN"]["sensor_model_source"] == "source"
    assert not tab["resolved"].any() and tab["energy_mj"].notna().all()
    assert covered.mean() >= 0.9
    assert (tab["n_needed"] > 40).all()
    assert any("not resolved" in w and "--method isolate" in w and "n_needed" in w for w in res.warnings)


def test_layers_much_longer_than_the_sensor_memory_are_resolved():
    truth, _, rec = simulated("ina3221:0x7c07", 12, long=True, n_layers=4)
    res = energy_table(rec, warmup=1)
    tab, err, covered = compare(truth, res)
    assert tab["resolved"].all() and err.max() <= 0.02 and covered.mean() >= 0.9


def test_the_user_model_wins_over_the_recordings_and_the_datas():
    _truth, _, rec = simulated("window:7ms", 30, known=True)
    assert energy_table(rec, warmup=1).meta["rails"]["VDD_IN"]["sensor_model"] == "window:7ms"
    res = energy_table(rec, warmup=1, sensor_models={"VDD_IN": parse("instant")})
    assert res.meta["rails"]["VDD_IN"]["sensor_model"] == "instant"
    assert res.meta["rails"]["VDD_IN"]["sensor_model_source"] == "user"
    assert res.meta["rails"]["VDD_GPU"]["sensor_model"] == "window:7ms"
    assert set(energy_table(rec, warmup=1, sensor="instant").table["sensor_model"]) == {"instant"}


def test_a_configured_period_the_data_contradict_is_a_warning_and_the_data_win():
    _truth, _readings, rec = simulated("window:7ms", 30)
    rec.meta.rails["VDD_IN"].sensor_model = parse("window:10ms", "driver")
    res = energy_table(rec, warmup=1)
    assert res.meta["rails"]["VDD_IN"]["refresh_ms"] == pytest.approx(7.07, rel=1e-3)
    assert any("VDD_IN" in w and "the data win" in w for w in res.warnings)


def test_a_configured_model_the_data_contradict_gives_way_to_the_datas_model():
    # the user says 0x7c07 (0.84 ms rounds, AVG 512); the chip runs 0x7127: its model, not the user's
    truth, _, rec = simulated("ina3221:0x7127", 150, n_layers=12)
    res = energy_table(rec, warmup=1, sensor_models={None: parse("ina3221:0x7c07", "user")})
    assert res.meta["rails"]["VDD_IN"]["sensor_model"] == "ina3221:0x7127"
    assert any("VDD_IN" in w and "the data win" in w and "0x7127" in w for w in res.warnings)
    tab, err, covered = compare(truth, res)
    assert covered.mean() >= 0.9 and err[tab["resolved"]].median() <= 0.02
    # a window the readings change far faster than, off any grid: instant
    _truth, _, rec = simulated("instant", 20, noise=0.0)
    res = energy_table(rec, warmup=1, sensor_models={None: parse("window:100ms", "user")})
    assert res.meta["rails"]["VDD_IN"]["sensor_model"] == "instant"
    assert any("VDD_IN" in w and "the data win" in w for w in res.warnings)


@pytest.mark.parametrize(
    "config",
    [
        sensor_model.ina3221_config((1, 2), 1, 1100, 1100),  # two channels: a 4.4 ms round
        sensor_model.ina3221_config((1,), 1, 332, 2116),  # one channel, unequal bus and shunt times
        sensor_model.ina3221_config((1, 2, 3), 1, 140, 588),  # a 2.2 ms round read every 1 ms
        sensor_model.ina3221_config((1, 2, 3), 16, 332, 332),  # a 2 ms round read every 1 ms: gaps slide slowly
    ],
)
def test_ina3221_geometries_beyond_the_known_configs_are_found_from_the_data(config):
    truth, _, rec = simulated(f"ina3221:{config:#06x}", 150, n_layers=12)
    res = energy_table(rec, warmup=1)
    assert res.meta["rails"]["VDD_IN"]["sensor_model"] == f"ina3221:{config:#06x}"
    tab, err, covered = compare(truth, res)
    assert covered.mean() >= 0.9 and err[tab["resolved"]].median() <= 0.02
    totals = tab.groupby(level="rail")["energy_mj"].sum()
    want = truth.layer_energy(1).groupby("rail")["energy_mj"].sum()
    assert ((totals - want) / want).abs().max() <= 0.02


def test_a_short_run_on_a_long_memory_chip_keeps_that_chips_model_and_honest_cis():
    # 30 iterations (~2.5 s): 0x7c07's 430 ms memory is a sixth of the record, still a candidate
    truth, _, rec = simulated("ina3221:0x7c07", 30)
    res = energy_table(rec, warmup=1)
    assert res.meta["rails"]["VDD_IN"]["sensor_model"] == "ina3221:0x7c07"
    tab, _err, covered = compare(truth, res)
    assert covered.mean() >= 0.9 and not tab["resolved"].any()
    totals = res.totals.set_index("rail")
    want = truth.layer_energy(1).groupby("rail")["energy_mj"].sum().reindex(totals.index)
    assert ((totals["energy_mj"] - want).abs() <= totals["energy_mj_ci"]).all()
    assert ((totals["energy_mj"] - want) / want).abs().max() <= 0.05


def test_too_few_readings_give_unresolved_rows_with_honest_cis_not_an_exception():
    # 2 iterations after warm-up on a known 0x7c07 (0.84 ms rounds read every 1 ms): the few changes
    # of a quiet rail must not pass for a refresh grid that overrides the known model
    truth, _, rec = simulated("ina3221:0x7c07", 3, known=True, seed=1, n_layers=26)
    res = energy_table(rec, warmup=1)
    tab, _err, covered = compare(truth, res)
    assert set(tab["sensor_model"]) == {"ina3221:0x7c07"} and not tab["resolved"].any()
    assert tab["energy_mj"].notna().all() and covered.mean() >= 0.9


def test_every_statistic_of_a_row_uses_the_same_iterations():
    """A rail recorded over only the second half of the run: its rows average time and energy over
    the same iterations, so power = energy / time stays the layer's power (not 2x it)."""
    truth, _, rec = simulated("instant", 40, noise=0.0)
    half = truth.occurrences.groupby("iteration")["start_ns"].min().iloc[20]
    power = rec.power[(rec.power["rail"] != "VDD_GPU") | (rec.power["time_ns"] >= half)]
    from streamline_bridge.model import Recording

    res = energy_table(Recording(rec.markers, power.reset_index(drop=True), rec.meta), warmup=1)
    gpu = res.table[res.table["rail"] == "VDD_GPU"].set_index("name")
    assert (gpu["n"] < 21).all() and (res.table.loc[res.table["rail"] == "VDD_IN", "n"] == 39).all()
    occ = truth.occurrences[truth.occurrences["start_ns"] > half]
    occ = occ[occ["iteration"].isin(occ.groupby("iteration").size().index[1:])]  # whole iterations inside
    time_ms = ((occ["end_ns"] - occ["start_ns"]) / 1e6).groupby(occ["name"]).mean()
    np.testing.assert_allclose(gpu["time_ms"], time_ms.loc[gpu.index], rtol=1e-9)
    want_w = {name: mw["VDD_GPU"] / 1000 for name, _, mw in schedule(40).layers}
    assert ((gpu["power_w"] - gpu.index.map(want_w)).abs() <= gpu["power_w_ci"] + 0.02 * gpu["power_w"]).all()


# ---------------------------------------------------------------- API


def test_options_are_checked_once_and_keywords_override_them():
    with pytest.raises(ValueError, match="by must be one of"):
        EnergyOptions(by="layers")
    with pytest.raises(TypeError, match="unknown energy option"):
        EnergyOptions().with_overrides(sensr="held")
    opt = EnergyOptions(by="group").with_overrides(warmup=2)
    assert opt.by == "group" and opt.warmup == 2


def test_the_simulators_logs_read_back_through_the_real_readers(tmp_path):
    truth, readings, rec = simulated("window:7ms", 20, known=True)
    m_path, p_path = sim.write_logs(truth, readings, tmp_path)
    back = combine([ingest.read(m_path), ingest.read(p_path)])
    a = energy_table(back, warmup=1, baseline="none").table
    b = energy_table(rec, warmup=1, baseline="none").table
    np.testing.assert_allclose(a["energy_mj"], b["energy_mj"], rtol=1e-6)


def test_a_window_source_read_once_per_period_is_read_at_its_reads():
    """tegrastats-like: one line per 100 ms window, stamped when the window ends, read with jitter."""
    truth = sim.run(
        sim.Schedule(
            tuple((n, d * 40, mw) for n, d, mw in schedule(40, n_layers=4, seed=4).layers),
            40,
            {"VDD_IN": 1200.0, "VDD_GPU": 300.0},
            pause_ms=(20.0, 60.0),
            seed=4,
        )
    )
    t = sim.read_times(int(truth.edges[0]), truth.end_ns, 100 * MS, jitter_ns=2 * MS, seed=4)
    model = parse("window:100ms", "source")
    values = {r: sensors.means(truth.edges, truth.power[r], t - 100 * MS, t) for r in truth.power}
    rec = sim.recording(truth, sim.Readings(t, values, {r: sim.Sensor(model) for r in values}), known_models=True)
    res = energy_table(rec, warmup=1)
    assert res.meta["rails"]["VDD_IN"]["period_source"] == "configured"
    tab, err, covered = compare(truth, res)
    assert covered.mean() >= 0.9 and tab["resolved"].any() and err[tab["resolved"]].median() <= 0.02
