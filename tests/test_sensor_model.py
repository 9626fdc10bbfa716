"""The sensor model spec (streamline_bridge.sensor_model): register fields, parsing, hwmon decoding."""

from __future__ import annotations

import pytest

from streamline_bridge.sensor_model import (
    INA3221_DEFAULT,
    SensorModel,
    ina3221_config,
    ina3221_from_hwmon,
    parse,
    parse_assignments,
    parse_duration_ns,
)


def test_known_configs_decode_as_the_datasheet_says() -> None:
    mainline = parse("ina3221:0x7127")
    assert mainline.channels == (1, 2, 3) and mainline.averages == 1
    assert mainline.shunt_ct_ns == mainline.bus_ct_ns == 1_100_000
    assert mainline.update_ns == 6_600_000 and mainline.memory_ns == 6_600_000
    nano = parse("ina3221:0x7607")
    assert nano.averages == 64 and nano.shunt_ct_ns == 140_000 and nano.update_ns == 840_000
    assert nano.memory_ns == 64 * 840_000
    tx2 = parse("ina3221:7c07")
    assert tx2.averages == 512 and tx2.memory_ns == 512 * 840_000  # ~430 ms
    assert tx2.shunt_aperture(2) == (280_000, 140_000)


def test_config_round_trips_through_its_fields() -> None:
    assert ina3221_config((1, 2, 3), 1, 1100, 1100) == INA3221_DEFAULT
    assert ina3221_config((1, 2, 3), 512, 140, 140) == 0x7C07
    one = SensorModel("ina3221", ina3221_config((2,), 4, 588, 332))
    assert one.channels == (2,) and one.averages == 4 and one.update_ns == (588 + 332) * 1000
    with pytest.raises(ValueError, match="not enabled"):
        one.shunt_aperture(1)


def test_hwmon_samples_and_update_interval_give_the_config() -> None:
    assert ina3221_from_hwmon(1, 7, (1, 2, 3)).config == 0x7127  # 6.6 ms reported rounded
    assert ina3221_from_hwmon(512, 430, (1, 2, 3)).config == 0x7C07
    m = ina3221_from_hwmon(64, 36, (1, 2))  # 2 ch x 64 x (140 + 140) us = 35.8 ms
    assert m.channels == (1, 2) and m.averages == 64 and m.shunt_ct_ns == 140_000 and m.source == "driver"
    with pytest.raises(ValueError, match="samples"):
        ina3221_from_hwmon(3, 7, (1, 2, 3))


def test_specs_parse_and_print_back() -> None:
    for text in ("instant", "window:100ms", "window:6.6ms", "ina3221:0x7c07", "ina3221:0x7127"):
        m = parse(text)
        assert parse(m.spec) == m and m.source == "user"
        assert SensorModel.from_dict(m.to_dict()) == m
    assert parse("ina3221").config == INA3221_DEFAULT
    assert parse("window:0.5s").period_ns == 500_000_000
    assert parse_duration_ns("6600us") == 6_600_000 and parse_duration_ns("7") == 7_000_000
    assert "memory ~430 ms" in parse("ina3221:0x7c07", "device tree").describe()


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "probe",
        "window",
        "window:-1ms",
        "ina3221:xyz",
        "ina3221:0x0127",
        "ina3221:0x7120",
        "ina3221:0x17127",
        "instant:3",
    ],
)
def test_bad_specs_are_one_clear_error(bad: str) -> None:
    with pytest.raises(ValueError, match="sensor model"):
        parse(bad)


def test_assignments_per_rail_or_for_all() -> None:
    assert parse_assignments("ina3221:0x7c07") == {None: parse("ina3221:0x7c07")}
    got = parse_assignments("VDD_IN=ina3221:0x7607, VDD_GPU=instant")
    assert got == {"VDD_IN": parse("ina3221:0x7607"), "VDD_GPU": parse("instant")}
