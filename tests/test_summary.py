"""inspect's summary: counts and spans that mean what they say."""

from __future__ import annotations

from streamline_bridge.ingest.summary import summarize
from streamline_bridge.model import Meta, Recording, empty_power, markers_frame


def test_duration_ignores_caller_timed_cam_jobs():
    markers = markers_frame({"time_ns": [5_000_000_000, 2_000_000_000, 5_250_000_000],
                             "kind": ["text", "cam_job", "end"]}, 4_000_000_000)
    info = summarize(Recording(markers, empty_power(), Meta(format="test")))
    assert info["markers"]["duration_s"] == 0.25
    assert info["markers"]["by_kind"] == {"text": 1, "end": 1, "cam_job": 1}
