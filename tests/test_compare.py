"""compare: the Welch difference of two runs row by row, against SciPy and hand-made runs; the command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from annotate import mirror, wire
from streamline_bridge import ingest
from streamline_bridge.cli import main
from streamline_bridge.energy import combine, energy_table
from streamline_bridge.energy.compare import COLUMNS, compare, welch
from streamline_bridge.energy.stats import t_quantile
from test_report import BASE, MS, write_power_log

LAYERS = ("conv1", "fire2/squeeze1x1", "pool10")


def write_log(path: Path, durations_us: np.ndarray) -> None:
    """A marker log: iteration bookmarks, then the layers back to back with ``durations_us[iteration, layer]``."""
    data = mirror.header({**mirror.metadata(5), "monotonic_raw_ns": BASE})
    data += mirror.record(mirror.OPENED, 1, wire.handshake(11, 10, 5))
    t = BASE + 5 * MS
    msgs = [wire.name_channel(BASE, 3, 1, "layers")]
    for it, row in enumerate(durations_us):
        msgs.append(wire.marker(t, f"iteration {it}"))
        for name, d in zip(LAYERS, row):
            msgs += [wire.text(t, 3, name), wire.text(t + int(d) * 1000, 3, "")]
            t += int(d) * 1000
        t += 1 * MS
    path.write_bytes(data + mirror.record(mirror.MESSAGES, 1, b"".join(msgs)) + mirror.record(mirror.CLOSED, 1))


def durations(seed: int, means_us: tuple[int, ...], sd_us: float, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.maximum(np.rint(rng.normal(means_us, sd_us, size=(n, len(means_us)))), 10)


T_975_14 = 2.1447866879169  # Student's t, 97.5 % quantile, 14 degrees of freedom (statistical tables)


def exact_welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(difference, Welch df, standard error) from the samples themselves."""
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return b.mean() - a.mean(), df, math.sqrt(va + vb)


def test_welch_interval_where_the_degrees_of_freedom_are_whole() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(10, 1, 8), rng.normal(11, 1, 8)
    b = (b - b.mean()) / b.std(ddof=1) * a.std(ddof=1) + b.mean()  # equal sd and n: df = 2n - 2 exactly
    d, df, se = exact_welch(a, b)
    got_d, got_half = welch(a.mean(), a.std(ddof=1), 8, b.mean(), b.std(ddof=1), 8)
    assert df == pytest.approx(14) and got_d == pytest.approx(d) and got_half == pytest.approx(T_975_14 * se, rel=1e-9)
    assert np.isnan(welch(1.0, 0.1, 1, 2.0, 0.1, 5)[1])  # one iteration: no interval


def test_welch_interval_errs_wide_against_scipy_where_they_are_not() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    a, b = rng.normal(10, 1, 5), rng.normal(10.5, 3, 12)
    _, df, se = exact_welch(a, b)
    exact = float(stats.t.ppf(0.975, df)) * se  # the interval at the fractional degrees of freedom
    _, got_half = welch(a.mean(), a.std(ddof=1), 5, b.mean(), b.std(ddof=1), 12)
    # df rounded down: never narrower than the exact interval, at most one degree of freedom wider
    assert exact <= got_half <= exact * t_quantile(math.floor(df) - 1) / t_quantile(math.floor(df))


def test_compare_gives_each_rows_difference_its_ci_and_significance(tmp_path: Path) -> None:
    da = durations(2, (2000, 500, 1500), 40, 6)
    db = durations(3, (2000, 800, 1500), 40, 6)  # fire2/squeeze1x1 is 300 µs slower in B
    write_log(tmp_path / "a.sbm", da)
    write_log(tmp_path / "b.sbm", db)
    write_power_log(tmp_path / "p.sbp")
    power = ingest.read(tmp_path / "p.sbp")
    ra = energy_table(combine([ingest.read(tmp_path / "a.sbm"), power]), baseline="none")
    rb = energy_table(combine([ingest.read(tmp_path / "b.sbm"), power]), baseline="none")
    c = compare(ra, rb)
    assert list(c.table.columns) == list(COLUMNS) and len(c.table) == 3 * 3
    vdd_in = c.table[c.table["rail"] == "VDD_IN"].set_index("name")
    for j, name in enumerate(LAYERS):
        d, df, se = exact_welch(da[:, j] / 1e3, db[:, j] / 1e3)
        assert vdd_in.loc[name, "time_ms_diff"] == pytest.approx(d, abs=1e-9)
        assert vdd_in.loc[name, "time_ms_diff_ci"] == pytest.approx(t_quantile(math.floor(df)) * se, rel=1e-6)
        ea = ra.samples[(ra.samples["rail"] == "VDD_IN") & (ra.samples["name"] == name)]["energy_mj"].to_numpy()
        eb = rb.samples[(rb.samples["rail"] == "VDD_IN") & (rb.samples["name"] == name)]["energy_mj"].to_numpy()
        assert vdd_in.loc[name, "energy_mj_diff"] == pytest.approx(eb.mean() - ea.mean(), rel=1e-9)
    assert bool(vdd_in.loc["fire2/squeeze1x1", "time_ms_significant"])  # not <NA>: bool(<NA>) raises
    assert vdd_in.loc["fire2/squeeze1x1", "time_ms_diff"] == pytest.approx(0.3, abs=0.06)
    assert not bool(vdd_in.loc["conv1", "time_ms_significant"])  # same distribution
    assert c.warnings == []


def test_rows_in_one_run_only_board_states_and_single_iterations_are_said(tmp_path: Path) -> None:
    write_log(tmp_path / "a.sbm", durations(4, (2000, 500, 1500), 40, 1))
    write_log(tmp_path / "b.sbm", durations(5, (2000, 500, 1500), 40, 3)[:, :2])
    from streamline_bridge.energy.timetable import time_table

    ra, rb = time_table(ingest.read(tmp_path / "a.sbm")), time_table(ingest.read(tmp_path / "b.sbm"))
    ra.meta["board"] = {"model": "NVIDIA Jetson TX1", "nvpmodel": None, "cpus": []}
    rb.meta["board"] = {"model": "NVIDIA Jetson TX1", "nvpmodel": {"id": 1, "name": "MODE_10W"}, "cpus": []}
    c = compare(ra, rb)
    assert c.table["name"].tolist() == ["conv1", "fire2/squeeze1x1"]
    assert c.table["time_ms_significant"].isna().all()  # one iteration in A: cannot be said
    assert any("1 row(s) only in run A" in w and "pool10" in w for w in c.warnings)
    assert any(w.startswith("the runs' board states differ") and "nvpmodel" in w for w in c.warnings)
    assert any("run A has no power" in w for w in c.warnings)


def test_compare_command_table_csv_json_and_plot(tmp_path: Path, capsys) -> None:
    write_log(tmp_path / "a.sbm", durations(6, (2000, 500, 1500), 30, 5))
    write_log(tmp_path / "b.sbm", durations(7, (1000, 500, 1500), 30, 5))
    a, b = str(tmp_path / "a.sbm"), str(tmp_path / "b.sbm")
    assert main(["compare", a, b]) == 0
    out = capsys.readouterr().out
    assert "B - A per layer" in out and "conv1" in out and "*" in out
    assert main(["compare", a, b, "--format", "csv", "--plot", str(tmp_path / "d.png")]) == 0
    table = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert table.set_index("name").loc["conv1", "time_ms_diff"] == pytest.approx(-1.0, abs=0.05)
    assert (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["compare", a, b, "--by", "group", "-o", str(tmp_path / "c.json")]) == 0
    rows = pd.read_json(tmp_path / "c.json")
    assert rows["name"].tolist() == ["conv1", "fire2", "pool10"]
    assert json.loads((tmp_path / "c.meta.json").read_text())["by"] == "group"
    with pytest.raises(SystemExit) as exit_:
        main(["compare", a, b, "--by", "iteration"])  # not a choice: compared rows need iterations
    assert exit_.value.code == 2
