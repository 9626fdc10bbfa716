"""inspect's summary: counts and spans that mean what they say."""

from __future__ import annotations

from streamline_bridge.ingest.summary import summarize
from streamline_bridge.model import Meta, Recording, empty_power, markers_frame


def test_duration_ignores_caller_timed_cam_jobs():
    markers = markers_frame(
        {"time_ns": [5_000_000_000, 2_000_000_000, 5_250_000_000], "kind": ["text", "cam_job", "end"]}, 4_000_000_000
    )
    info = summarize(Recording(markers, empty_power(), Meta(format="test")))
    assert info["markers"]["duration_s"] == 0.25
    assert info["markers"]["by_kind"] == {"text": 1, "end": 1, "cam_job": 1}


def test_threads_and_rails_are_summarised_from_the_tables():
    import numpy as np

    from streamline_bridge.model import RailInfo, power_frame

    markers = markers_frame(
        {"time_ns": [1, 2, 3], "kind": ["text", "end", "text"], "pid": np.array([7, 7, 7]), "tid": np.array([9, 8, 9])},
        0,
    )
    power = power_frame(np.array([0, 1_000_000]), {"VDD_IN": [100.0, np.nan], "VDD_GPU": [10.0, 30.0]}, 0)
    meta = Meta(format="test", rails={"VDD_IN": RailInfo("VDD_IN", unit="mW", update_period_ns=7_000_000)})
    info = summarize(Recording(markers, power, meta))
    assert info["markers"]["threads"] == [(7, 8), (7, 9)]
    assert info["power"]["rails"]["VDD_IN"] == {
        "samples": 2,
        "missing": 1,
        "mean_mw": 100.0,
        "unit": "mW",
        "update_period_ms": 7.0,
        "estimated": False,
        "sensor_model": None,
    }
    assert info["power"]["rails"]["VDD_GPU"]["mean_mw"] == 20.0
    assert info["power"]["rails"]["VDD_GPU"]["update_period_ms"] is None
