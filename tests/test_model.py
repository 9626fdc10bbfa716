"""The shared data model: column sets, dtypes and the helpers that build them."""

from __future__ import annotations

import numpy as np

from streamline_bridge.model import (
    MARKER_DTYPES,
    POWER_DTYPES,
    empty_markers,
    empty_power,
    markers_frame,
    power_frame,
    rail_arrays,
)


def test_empty_tables_have_model_columns():
    assert list(empty_markers().columns) == list(MARKER_DTYPES)
    assert list(empty_power().columns) == list(POWER_DTYPES)


def test_markers_frame_derives_relative_time_and_fills_missing():
    df = markers_frame({"time_ns": [1_000, 2_500], "kind": ["text", "end"], "text": ["conv1", ""]}, 500)
    assert list(df.columns) == list(MARKER_DTYPES)
    assert df["time_rel_ns"].tolist() == [500, 2_000]
    assert df["channel"].isna().all() and df["pid"].tolist() == [0, 0]
    assert str(df["kind"].dtype) == "category"


def test_power_frame_is_long_and_rail_arrays_round_trip():
    t = np.array([10, 20, 30])
    df = power_frame(t, {"VDD_IN": [1.0, 2.0, 3.0], "VDD_GPU": [4.0, np.nan, 6.0]}, clock_base_ns=10)
    assert len(df) == 6 and df["time_rel_ns"].tolist()[:3] == [0, 10, 20]
    arrays = rail_arrays(df)
    assert list(arrays) == ["VDD_IN", "VDD_GPU"]
    np.testing.assert_array_equal(arrays["VDD_GPU"][0], t)
    assert np.isnan(arrays["VDD_GPU"][1][1])


def test_rail_arrays_regroups_interleaved_rows():
    df = power_frame(np.array([10, 20, 30]), {"A": [1.0, 2.0, 3.0], "B": [4.0, 5.0, 6.0]}, 0)
    mixed = df.iloc[[0, 3, 2, 5, 1, 4]]  # A10 B10 A30 B30 A20 B20
    arrays = rail_arrays(mixed)
    assert {k: v[0].tolist() for k, v in arrays.items()} == {"A": [10, 20, 30], "B": [10, 20, 30]}
    assert arrays["B"][1].tolist() == [4.0, 5.0, 6.0]
