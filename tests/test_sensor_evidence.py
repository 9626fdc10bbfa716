"""Where each rail's sensor model comes from: the user, the driver's configuration, the kind of source;
carried through the power log (version 2; version 1 still reads) to inspect and report."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES
from streamline_bridge import ingest
from streamline_bridge.cli import main
from streamline_bridge.power import discovery
from streamline_bridge.power.source import Unavailable
from streamline_bridge.sensor_model import SensorModel, from_text, in_text, parse

SYSFS = FIXTURES / "sysfs"
V1 = FIXTURES / "power-log" / "v1-ina3221x.sbp"


def found(tree: Path | str, name: str | None = None, **options: str):
    return discovery.find_source(name, discovery.roots(str(tree), "/nonexistent"), options)


def models(src) -> dict[str, str | None]:
    return {
        r.name: None if r.sensor_model is None else f"{r.sensor_model.spec} {r.sensor_model.source}" for r in src.rails
    }


def test_l4t_device_tree_continuous_config_on_the_device_bus() -> None:
    # two ina3221x@40 nodes on two buses: the i2c1 alias picks the one of device 1-0040 (0x7c07, not 0x7127)
    src = found(SYSFS / "tx1-l4t28-dt")
    assert set(models(src).values()) == {"ina3221:0x7c07 device tree"}
    assert src.rails[0].sensor_model.memory_ns == 512 * 3 * 280_000
    assert src.advice() == []


def test_l4t_triggered_mode_uses_the_trigger_config_as_a_window() -> None:
    src = found(SYSFS / "tx1-l4t28-dt-triggered")
    model = src.rails[0].sensor_model
    assert (model.kind, model.source, model.period_ns) == ("window", "device tree", 512 * 3 * 280_000)
    assert any("triggered" in a and "0x7c03" in a for a in src.advice())


def test_l4t_node_without_config_runs_the_driver_default(tmp_path: Path) -> None:
    tree = tmp_path / "sys"
    shutil.copytree(SYSFS / "tx1-l4t28-dt", tree)
    (tree / "firmware/devicetree/base/i2c@7000c400/ina3221x@40/ti,continuous-config").unlink()
    src = found(tree)
    assert set(models(src).values()) == {"ina3221:0x7727 driver default"}
    assert any("no ti,continuous-config" in a and "0x7727" in a for a in src.advice())


def test_l4t_without_device_tree_leaves_the_model_to_the_data_with_a_note() -> None:
    src = found(SYSFS / "tx1-l4t28")
    assert set(models(src).values()) == {None}
    assert any("device tree not readable" in a and "left to the data" in a for a in src.advice())


def test_l4t_unreadable_property_falls_back_with_a_note(tmp_path: Path) -> None:
    tree = tmp_path / "sys"
    shutil.copytree(SYSFS / "tx1-l4t28-dt", tree)
    prop = tree / "firmware/devicetree/base/i2c@7000c400/ina3221x@40/ti,continuous-config"
    prop.unlink()
    prop.mkdir()  # exists, cannot be read as a file
    src = found(tree)
    assert set(models(src).values()) == {None}
    assert any("device tree not readable" in a and "ti,continuous-config" in a for a in src.advice())


def test_l4t_ambiguous_nodes_without_alias_fall_back(tmp_path: Path) -> None:
    tree = tmp_path / "sys"
    shutil.copytree(SYSFS / "tx1-l4t28-dt", tree)
    shutil.rmtree(tree / "firmware/devicetree/base/aliases")
    src = found(tree)
    assert set(models(src).values()) == {None}
    assert any("2 ti,ina3221x node" in a for a in src.advice())


def test_l4t_config_that_disables_a_channel_with_a_rail_is_a_contradiction(tmp_path: Path) -> None:
    tree = tmp_path / "sys"
    shutil.copytree(SYSFS / "tx1-l4t28-dt", tree)
    (tree / "firmware/devicetree/base/i2c@7000c400/ina3221x@40/ti,continuous-config").write_bytes(
        (0x6C07).to_bytes(4, "big")
    )  # channels 1 and 2 only: rail_name_2 (VDD_CPU) contradicts it
    src = found(tree)
    assert set(models(src).values()) == {"ina3221:0x6c07 device tree"}
    assert any("contradicts" in a and "channel(s) 2" in a for a in src.advice())


@pytest.mark.parametrize("tree, spec", [("orin-l4t36", "ina3221:0x7127"), ("xavier-jp5-avg512", "ina3221:0x7c07")])
def test_mainline_hwmon_samples_and_update_interval(tree: str, spec: str) -> None:
    src = found(SYSFS / tree, "ina3221")
    assert set(models(src).values()) == {f"{spec} driver"}
    assert src.advice() == []


def test_mainline_hwmon_disabled_channel_and_contradiction(tmp_path: Path) -> None:
    tree = tmp_path / "sys"
    shutil.copytree(SYSFS / "xavier-jp5-avg512", tree)
    hw = tree / "bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1"
    (hw / "in3_enable").write_text("0\n")
    (hw / "update_interval").write_text("287\n")  # 2 channels x 512 x 280 us
    hw2 = tree / "bus/i2c/drivers/ina3221/1-0041/hwmon/hwmon2"
    (hw2 / "update_interval").write_text("7\n")  # samples 512 cannot give 7 ms
    src = found(tree, "ina3221")
    by_device = {r.extra["device"]: r.sensor_model for r in src.rails}
    assert by_device["1-0040"].spec == "ina3221:0x6c07" and by_device["1-0040"].channels == (1, 2)
    assert by_device["1-0041"].averages == 512
    assert any(a.startswith("1-0041:") and "contradicts itself" in a for a in src.advice())


def test_other_sources_say_what_their_kind_implies(tmp_path: Path) -> None:
    ina226 = found(SYSFS / "hwmon-ina226", "hwmon")
    assert {r.name: r.sensor_model.spec for r in ina226.rails if r.sensor_model} == {"ina226_power1": "window:2ms"}
    (tmp_path / "stat").write_text((FIXTURES / "proc" / "stat").read_text())
    cpu = discovery.find_source("cpu-model", discovery.roots("/nonexistent", str(tmp_path)), {"cpu_window_ms": "50"})
    assert (cpu.rails[0].sensor_model.spec, cpu.rails[0].sensor_model.source) == ("window:50ms", "source")


def test_the_user_wins_and_travels_as_a_source_option() -> None:
    src = found(SYSFS / "tx1-l4t28-dt", sensor_model="VDD_GPU=instant,window:20ms")
    assert models(src) == {"VDD_IN": "window:20ms user", "VDD_GPU": "instant user", "VDD_CPU": "window:20ms user"}
    with pytest.raises(Unavailable, match="--sensor-model 'ina3221:0x0007'"):
        found(SYSFS / "tx1-l4t28-dt", "ina3221x", sensor_model="ina3221:0x0007")


@pytest.mark.parametrize(
    "argv",
    [
        ["report", str(V1), "--sensor-model", "ina3221:zz"],
        ["report", str(V1), "--sensor-model", "window:-3ms"],
        ["record", "-o", "never", "--sensor-model", "bogus", "--", "true"],
    ],
)
def test_bad_sensor_model_is_one_line_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("streamline-bridge: error: --sensor-model")
    assert not (tmp_path / "never").exists()


def test_log_v2_round_trip_and_v1_still_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from streamline_bridge.power.log import PowerLogWriter, read_log

    src = found(SYSFS / "tx1-l4t28-dt")
    path = tmp_path / "p.sbp"
    PowerLogWriter(path, {**src.describe(), "monotonic_raw_ns": 0}).close()
    assert read_log(path).version == 2
    rec = ingest.read(path)
    assert {n: (i.sensor_model.spec, i.sensor_model.source) for n, i in rec.meta.rails.items()} == {
        n: ("ina3221:0x7c07", "device tree") for n in ("VDD_IN", "VDD_GPU", "VDD_CPU")
    }
    old = ingest.read(V1)
    assert old.meta.extra["log_version"] == 1 and not old.meta.partial
    assert {n: i.sensor_model for n, i in old.meta.rails.items()} == {"VDD_IN": None, "VDD_GPU": None}
    assert old.power[old.power["rail"] == "VDD_IN"]["power_mw"].tolist() == [5000.0 + 10 * (i // 7) for i in range(30)]
    assert main(["inspect", str(V1), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["power"]["rails"]["VDD_IN"]["sensor_model"] is None


def test_a_bad_model_entry_in_a_log_is_an_issue_not_an_error(tmp_path: Path) -> None:
    from streamline_bridge.power.log import PowerLogWriter

    src = found(SYSFS / "tx1-l4t28-dt")
    meta = src.describe()
    meta["rails"][0]["sensor_model"] = {"model": "ina3221:0x0000", "source": "device tree"}
    path = tmp_path / "p.sbp"
    PowerLogWriter(path, meta).close()
    rec = ingest.read(path)
    assert rec.meta.rails["VDD_IN"].sensor_model is None and rec.meta.rails["VDD_GPU"].sensor_model is not None
    assert any("VDD_IN" in i.message for i in rec.meta.issues)


def test_model_in_free_text_round_trips() -> None:
    model = parse("ina3221:0x7c07", "device tree")
    assert from_text(f"ina3221x rail; {in_text(model)}") == model
    assert from_text("no model here") is None and from_text("sensor model bogus (from user)") is None
    assert isinstance(model, SensorModel)


def test_streamline_counters_carry_the_sampler_model(tmp_path: Path) -> None:
    from annotate import Client
    from streamline_bridge.ingest import marker_log
    from streamline_bridge.power.streamline_feed import StreamlineFeed

    log = tmp_path / "feed.sbm"
    feed = StreamlineFeed(
        ["VDD_IN", "VDD_GPU", "X"],
        sample_hz=1000,
        rate_hz=250,
        client=Client(file=log, gatord=False, flush_interval=60),
        models=[parse("ina3221:0x7c07", "device tree"), parse("instant", "source")],
    )
    for i in range(8):
        feed.add(5_000_000_000 + i * 1_000_000, [2000.0, 100.0, 1.0])
    feed.close()
    rails = marker_log.read(log).meta.rails
    assert (rails["VDD_IN"].sensor_model.spec, rails["VDD_IN"].sensor_model.source) == ("ina3221:0x7c07", "device tree")
    assert rails["VDD_GPU"].sensor_model.spec == "window:4ms"  # blocks of 4 instant reads
    assert rails["X"].sensor_model is None


def test_the_notes_of_the_log_header_reach_the_recording(tmp_path: Path) -> None:
    from streamline_bridge.power.log import PowerLogWriter

    src = found(SYSFS / "tx1-l4t28")  # no device tree: a note
    path = tmp_path / "p.sbp"
    PowerLogWriter(path, src.describe()).close()
    notes = ingest.read(path).meta.extra["sensor_model_notes"]
    assert len(notes) == 1 and notes[0].startswith("1-0040: device tree not readable")


def test_record_stores_the_users_model_in_the_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    rc = main(
        [
            "record",
            "-o",
            str(run),
            "--idle",
            "0",
            "--sysfs-root",
            str(SYSFS / "tx1-l4t28-dt"),
            "--sensor-model",
            "VDD_IN=ina3221:0x7127,VDD_NOPE=instant",
            "--",
            sys.executable,
            "-c",
            "pass",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "--sensor-model names no rail VDD_NOPE" in err
    rails = ingest.read(run / "power.sbp").meta.rails
    assert (rails["VDD_IN"].sensor_model.spec, rails["VDD_IN"].sensor_model.source) == ("ina3221:0x7127", "user")
    assert (rails["VDD_GPU"].sensor_model.spec, rails["VDD_GPU"].sensor_model.source) == (
        "ina3221:0x7c07",
        "device tree",
    )
    assert main(["report", str(run / "power.sbp"), "--sensor-model", "VDD_NOPE=instant"]) == 2
    assert "names no rail VDD_NOPE" in capsys.readouterr().err


def test_sensors_shows_each_rail_model_with_its_source(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    tree = str(SYSFS / "tx1-l4t28-dt-triggered")
    assert main(["sensors", "--sysfs-root", tree, "--source", "ina3221x", "--measure", "0", "--json"]) == 0
    rails = json.loads(capsys.readouterr().out)[0]["rails"]
    assert {r["name"]: r["sensor_model"]["model"] for r in rails} == dict.fromkeys(
        ["VDD_IN", "VDD_GPU", "VDD_CPU"], "window:430.08ms"
    )
    assert main(["sensors", "--sysfs-root", tree, "--source", "ina3221x", "--measure", "0"]) == 0
    out = capsys.readouterr().out
    assert "window:430.08ms (from device tree)" in out
