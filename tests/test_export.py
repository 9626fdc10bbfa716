"""ingest.streamline_export on the hand-written export fixtures and on tolerance/error cases."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FIXTURES
from helpers import read_or_one_line_error
from streamline_bridge import ingest
from streamline_bridge.errors import InputError
from streamline_bridge.ingest import streamline_export as ex

E = FIXTURES / "exports"


@pytest.mark.parametrize("name", sorted(p.name for p in E.iterdir() if p.name != "README.md"))
def test_fixtures_are_detected(name):
    assert ingest.detect(E / name) == "streamline-export"


def test_log_view_durations_become_text_and_end_pairs():
    rec = ingest.read(E / "log-view-6.1.csv")
    m = rec.markers
    assert rec.meta.clock_base_ns is None and m["time_ns"].isna().all()
    assert m["kind"].tolist()[:5] == ["marker", "text", "end", "text", "end"]
    conv1 = m.iloc[1]
    assert (conv1["text"], conv1["time_rel_ns"], conv1["channel_name"], conv1["group_name"]) == (
        "conv1",
        1_681_849_000,
        "layers",
        "Caffe",
    )
    assert m.iloc[2]["time_rel_ns"] == 1_681_849_000 + 1_566_000  # Time + Duration
    assert (m["pid"] == 2345).all() and (m["tid"] == 2345).all()
    assert (m["kind"] == "text").sum() == 14 and (m["kind"] == "end").sum() == 14
    assert m["text"].iloc[-1] == "note, with a comma"  # quoted comma kept, BOM and CRLF ignored
    assert m.loc[m["kind"] == "marker", "text"].tolist() == ["start", "end", "note, with a comma"]


def test_old_log_view_tab_decimal_comma_rows_are_text_starts():
    rec = ingest.read(E / "log-view-dui0482.txt")
    m = rec.markers
    assert m["time_rel_ns"].tolist()[:2] == [1_681_849_000, 1_683_427_000]
    assert set(m["kind"]) == {"text"} and (m["channel"] == 3).all() and (m["core"] == 1).all()
    assert any("no Duration column" in i.message for i in rec.meta.issues)


@pytest.mark.parametrize("name", ["report-bookmarks.space.txt", "report-bookmarks.csv"])
def test_bookmark_reports(name):
    m = ingest.read(E / name).markers
    assert set(m["kind"]) == {"marker"} and len(m) == 16
    assert m["text"].tolist()[:2] == ["start", "conv1___Conv"] and m["text"].iloc[-1] == "end"
    assert m["time_rel_ns"].iloc[1] == 1_681_849_000


def test_timeline_space_power_columns_in_mw():
    rec = ingest.read(E / "report-timeline.space.txt")
    assert list(rec.power["rail"].cat.categories) == ["VDD_IN", "VDD_GPU", "VDD_CPU"]
    vin = rec.power[rec.power["rail"] == "VDD_IN"]
    assert vin["power_mw"].tolist()[:3] == [2150.0, 2157.0, 2164.0]
    assert vin["time_rel_ns"].tolist()[:2] == [1_600_000_000, 1_610_000_000]
    assert rec.meta.rails["VDD_IN"].update_period_ns == 10_000_000 and rec.meta.rails["VDD_IN"].extra["binned"]
    assert rec.meta.extra["counters"]["CPU Activity (%)"]["unit"] == "%"
    assert any("per-bin averages" in i.message for i in rec.meta.issues)


def test_timeline_semicolon_decimal_comma_watts():
    rec = ingest.read(E / "report-timeline.semicolon.csv")
    assert rec.power["power_mw"].tolist()[:2] == [4810.0, 4811.0]
    assert list(rec.meta.rails) == ["VDD_IN"]


def _write(tmp_path, text: str, name: str = "x.txt", encoding: str = "utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def test_column_order_extra_columns_and_utf16(tmp_path):
    text = "Channel\tExtra\tMessage\tTime\tDuration\n2\tx\tlayer a\t0.5\t0.25\n2\ty\tlayer b\t0.75\t0\n"
    m = ex.read(_write(tmp_path, text, encoding="utf-16")).markers  # UTF-16 with its BOM
    assert list(zip(m["kind"], m["time_rel_ns"], m["text"])) == [
        ("text", 500_000_000, "layer a"),
        ("end", 750_000_000, ""),
        ("marker", 750_000_000, "layer b"),
    ]
    assert m["channel"].iloc[0] == 2 and m["channel"].iloc[1] == 2 and m["channel"].isna().iloc[2]


def test_space_separated_unaligned_rows_with_quotes(tmp_path):
    p = _write(tmp_path, 'Time Duration Message Channel\n0,5 0,1 "conv 1" 1\n0,7 0 epoch two 0\n')
    m = ex.read(p).markers
    assert m["text"].tolist() == ["conv 1", "", "epoch two"]
    assert m["time_rel_ns"].tolist() == [500_000_000, 600_000_000, 700_000_000]


def test_time_units_and_clock_format(tmp_path):
    p = _write(tmp_path, "Time (ms),Bookmark\n1500,a\n00:02.250,b\n3 s,c\n")
    assert ex.read(p).markers["time_rel_ns"].tolist() == [1_500_000_000, 2_250_000_000, 3_000_000_000]


def test_bad_time_names_file_and_line(tmp_path):
    p = _write(tmp_path, "Time,Message\n0.1,a\n\nsoon,b\n")
    with pytest.raises(InputError) as err:
        ex.read(p)
    assert str(err.value) == f"{p}: line 4: time 'soon' is not a number"


def test_no_header_and_no_rows(tmp_path):
    with pytest.raises(InputError, match="no header row with a Time column"):
        ex.read(_write(tmp_path, "a,b\n1,2\n"))
    with pytest.raises(InputError, match="header but no rows"):
        ex.read(_write(tmp_path, "Time,Message\n"))
    assert not ex.sniff(_write(tmp_path, "a,b\n1,2\n", "y.csv"))


def test_timeline_missing_cells_are_nan(tmp_path):
    p = _write(tmp_path, "Time;GPU power\n0,0;1,5\n0,1;-\n")
    rec = ex.read(p)
    v = rec.power["power_mw"].tolist()
    assert v[0] == 1500.0 and math.isnan(v[1])
    assert any("no power unit: assumed W" in i.message for i in rec.meta.issues)
    assert list(rec.meta.rails) == ["GPU"]


def test_utf16_export_is_detected(tmp_path):
    p = _write(tmp_path, "Time\tMessage\n1\ta\n", "u.txt", encoding="utf-16")
    assert ingest.detect(p) == "streamline-export" and ingest.read(p).markers["text"].tolist() == ["a"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    header=st.sampled_from(
        ["Time;Duration;Message;VDD power (mW)", "Time;Message;Core;Channel;Process/Thread", "Time\tGPU power\tCPU (%)"]
    ),
    body=st.text(alphabet='0123456789,.;\t \n-:"sSmMeE_abTimeDurationMessageChannel()[]W#', max_size=300),
)
def test_random_text_only_input_errors(tmp_path, header, body):
    """Any text gives one line naming the file, or one marker (two with a duration) or one sample
    per rail for every row, each row's issues naming the file."""
    p = _write(tmp_path, header + "\n" + body, "r.txt")
    rows = [ln for ln in body.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    rec = read_or_one_line_error(ex.read, p)
    if rec is None:
        return
    if "Message" in header:
        assert len(rows) <= len(rec.markers) <= 2 * len(rows) and rec.markers["time_rel_ns"].notna().all()
    else:
        assert len(rec.power) == len(rows) * len(rec.meta.rails) and len(rec.meta.rails) >= 1


@pytest.mark.parametrize("cell, why", [("1E10", "out of range"), ("0.0.0", "not a number"), ("1E400", "out of range")])
def test_found_by_fuzzing_numbers_that_do_not_fit(tmp_path, cell, why):
    p = _write(tmp_path, f"Time;Duration;Message\n{cell}\n")
    with pytest.raises(InputError, match=f"line 2: time '{cell}' is {why}"):
        ex.read(p)


def test_found_by_fuzzing_one_row_timeline(tmp_path):
    rec = ex.read(_write(tmp_path, "Time\tGPU power\tCPU (%)\n0\n"))
    assert math.isnan(rec.power["power_mw"].iloc[0]) and rec.meta.rails["GPU"].update_period_ns is None
