"""inspect --markers (table, CSV, JSON, filters) and the counter definitions kept in the Recording."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest

from annotate import mirror, wire
from streamline_bridge import ingest
from streamline_bridge.cli import main
from streamline_bridge.commands.inspect import MARKER_COLUMNS

BASE = 7_000_000_000_000
US = 1000


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """Two threads: names, a green text and its end, a bookmark, a counter with activities and a value."""
    data = mirror.header({**mirror.metadata(5), "monotonic_raw_ns": BASE})
    data += mirror.record(mirror.OPENED, 1, wire.handshake(101, 100, 5))
    data += mirror.record(mirror.OPENED, 2, wire.handshake(102, 100, 5))
    main_thread = [
        wire.name_group(BASE, 1, "net"),
        wire.name_channel(BASE + 1 * US, 3, 1, "layers"),
        wire.text_color(BASE + 10 * US, 3, wire.GREEN, "conv1___Convolution"),
        wire.text(BASE + 25 * US, 3, ""),
        wire.counter(
            7,
            "Power",
            "GPU rail",
            units="W",
            description="the GPU's rail",
            activities=("idle", "busy"),
            activity_colors=(wire.BLUE,),
        ),
        wire.counter_value(BASE + 30 * US, 0, 7, 1500),
    ]
    worker = [wire.marker(BASE + 20 * US, "epoch 1"), wire.text(BASE + 40 * US, 5, "load")]
    data += mirror.record(mirror.MESSAGES, 1, b"".join(main_thread))
    data += mirror.record(mirror.MESSAGES, 2, b"".join(worker))
    path = tmp_path / "m.sbm"
    path.write_bytes(data + mirror.record(mirror.CLOSED, 1) + mirror.record(mirror.CLOSED, 2))
    return path


def test_counter_definitions_are_kept_in_the_recording(log: Path) -> None:
    rec = ingest.read(log)
    d = rec.meta.counters[7]
    assert (d["title"], d["name"], d["units"], d["description"]) == ("Power", "GPU rail", "W", "the GPU's rail")
    assert d["class"] == wire.ABSOLUTE and d["display"] == wire.MAXIMUM and d["modifier"] == 1
    assert d["activities"] == [["idle", wire.BLUE], ["busy", wire.COLOR_CYCLE]]
    assert rec.meta.counter_keys == {7: "GPU rail"} and rec.meta.to_dict()["counters"]["7"]["units"] == "W"


def test_markers_listing_every_message_with_names_colours_and_counters(log: Path, capsys) -> None:
    assert main(["inspect", str(log), "--markers", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["kind"] for r in rows] == [
        "name_group",
        "name_channel",
        "text",
        "end",
        "counter_def",
        "counter_value",
        "marker",
        "text",
    ]
    assert list(rows[0]) == list(MARKER_COLUMNS)
    text = rows[2]
    assert (text["time_s"], text["tid"], text["channel"], text["channel_name"], text["group_name"]) == (
        10e-6,
        101,
        3,
        "layers",
        "net",
    )
    assert text["text"] == "conv1___Convolution" and text["color"] == "#00ff00"
    value = rows[5]
    assert (value["key"], value["counter"], value["value"], value["core"]) == (7, "Power", 1500, 0)
    assert rows[4]["time_s"] is None  # a counter definition has no time


def test_markers_filters_and_csv(log: Path, capsys) -> None:
    assert main(["inspect", str(log), "--markers", "--csv", "--tid", "102"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert table["kind"].tolist() == ["marker", "text"] and (table["tid"] == 102).all()
    assert main(["inspect", str(log), "--markers", "--csv", "--kind", "text", "--kind", "end"]) == 0
    assert pd.read_csv(io.StringIO(capsys.readouterr().out))["text"].fillna("").tolist() == [
        "conv1___Convolution",
        "",
        "load",
    ]
    assert main(["inspect", str(log), "--markers", "--csv", "--channel", "layers"]) == 0
    by_name = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert main(["inspect", str(log), "--markers", "--csv", "--channel", "3"]) == 0
    by_number = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert by_name["kind"].tolist() == by_number["kind"].tolist() == ["name_channel", "text", "end"]
    assert main(["inspect", str(log), "--markers", "--kind", "bogus"]) == 2
    assert "--kind bogus: unknown" in capsys.readouterr().err
    assert main(["inspect", str(log), "--kind", "text"]) == 2  # filters need --markers


def test_markers_table_and_summary_are_readable(log: Path, capsys) -> None:
    assert main(["inspect", str(log), "--markers"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("8 message(s)") and "conv1___Convolution" in out and "#00ff00" in out
    assert main(["inspect", str(log)]) == 0
    out = capsys.readouterr().out
    assert "annotation counters" in out and "GPU rail" in out and "the GPU's rail" in out and "{'" not in out
