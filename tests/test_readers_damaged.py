"""The readers on the damaged inputs of the reliability issue: each ends in an InputError naming the file,
or a partial recording with few counted issues; never an internal error, never a hang."""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import pytest

import fuzz_support as fz
from streamline_bridge import ingest
from streamline_bridge.cli import main
from streamline_bridge.errors import InputError
from streamline_bridge.ingest import marker_log, run_dir


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> dict[str, fz.Seed]:
    return {s.name: s for s in fz.build_seeds(tmp_path_factory.mktemp("seeds"), shared)}


def _copy(seed: fz.Seed, dst: Path) -> Path:
    if seed.path.is_dir():
        shutil.copytree(seed.path, dst)
    else:
        shutil.copy(seed.path, dst)
    return dst


def test_zeros_appended_to_a_marker_log_are_one_issue(seeds, tmp_path):
    good = marker_log.read(seeds["marker-log"].path)
    p = _copy(seeds["marker-log"], tmp_path / "z.sbm")
    size = p.stat().st_size
    with open(p, "ab") as f:
        f.write(bytes(3 << 20))
    rec = marker_log.read(p)
    (issue,) = rec.meta.issues
    assert issue.offset == size and f"{3 << 20} damaged byte(s)" in issue.message and rec.meta.partial
    assert len(rec.markers) == len(good.markers)


def test_garbage_between_records_is_skipped_to_the_next_record(seeds, tmp_path):
    """Bytes inserted between two records: one issue for the range, the records after it still read."""
    data = seeds["marker-log"].path.read_bytes()
    n = struct.unpack_from("<I", data, 12)[0]
    first = 16 + n + 9 + struct.unpack_from("<I", data, 16 + n + 5)[0]  # end of the first record
    garbage = bytes(range(250, 256)) * 50 + b"\x02\x63\x00\x00\x00"  # ends in a messages record type of no stream
    p = tmp_path / "g.sbm"
    p.write_bytes(data[:first] + garbage + data[first:])
    rec = marker_log.read(p)
    (issue,) = rec.meta.issues
    assert (
        issue.offset == first and f"{len(garbage)} damaged byte(s) up to byte {first + len(garbage)}" in issue.message
    )
    pd_good = marker_log.read(seeds["marker-log"].path).markers
    assert rec.markers.equals(pd_good)


def test_a_marker_log_read_in_small_chunks_and_batches_gives_the_same_recording(seeds, monkeypatch):
    whole = marker_log.read(seeds["marker-log"].path)
    monkeypatch.setattr(marker_log, "CHUNK", 7)
    monkeypatch.setattr(marker_log, "BATCH", 5)
    pieces = marker_log.read(seeds["marker-log"].path)
    assert pieces.markers.equals(whole.markers) and pieces.meta.extra == whole.meta.extra
    assert pieces.meta.counter_keys == whole.meta.counter_keys and not pieces.meta.partial


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_non_regular_file_is_refused_in_one_line(tmp_path, capsys, kind):
    if kind == "fifo":
        path = tmp_path / "pipe.sbm"
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    for fmt in (None, "marker-log", "power-log", "tegrastats", "streamline-export"):
        with pytest.raises(InputError, match="not a file: only regular files are read") as err:
            ingest.read(path, fmt)
        assert err.value.path == str(path)
    assert main(["inspect", str(path)]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and ("named pipe" in err or "character device" in err)


@pytest.mark.parametrize("damage", ["missing", "empty", "cut", "header cut", "fifo"])
def test_a_run_folder_without_a_whole_power_log_is_damaged(seeds, tmp_path, damage):
    run = _copy(seeds["run-dir"], tmp_path / "run")
    log = run / "power.sbp"
    data = log.read_bytes()
    log.unlink()
    if damage == "empty":
        log.write_bytes(b"")
    elif damage == "cut":
        log.write_bytes(data[:-7])
    elif damage == "header cut":
        log.write_bytes(data[:30])
    elif damage == "fifo":
        os.mkfifo(log)
    rec = run_dir.read(run)
    assert rec.meta.partial and any(i.file == str(log) for i in rec.meta.issues)
    assert len(rec.markers) > 0  # the markers are still read


@pytest.mark.parametrize(
    "field, value",
    [
        ("files", "x"),
        ("files", {"power": "../../etc/passwd"}),
        ("phases", {"run": [1, {}]}),
        ("phases", ["x"]),
        ("started_monotonic_raw_ns", "soon"),
    ],
)
def test_a_manifest_field_of_the_wrong_form_is_an_input_error(seeds, tmp_path, field, value):
    run = _copy(seeds["run-dir"], tmp_path / "run")
    m = json.loads((run / "manifest.json").read_text())
    m[field] = value
    (run / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(InputError, match=field) as err:
        ingest.read(run)
    assert err.value.path == str(run / "manifest.json")


def test_an_unknown_xml_encoding_leaves_the_capture_readable(seeds, tmp_path):
    cap = _copy(seeds["apc:synthetic-p950"], tmp_path / "c.apc")
    xml = cap / "captured.xml"
    xml.write_text(
        xml.read_text().replace('encoding="UTF-8"', 'encoding="utf-9"').replace('encoding="utf-8"', 'encoding="utf-9"')
    )
    assert "utf-9" in xml.read_text()
    rec = ingest.read(cap)
    assert rec.meta.partial and any(
        "unknown encoding: utf-9" in i.message and i.file == str(xml) for i in rec.meta.issues
    )


@pytest.mark.parametrize("kind", range(6))
def test_a_power_log_record_type_changed_is_never_an_internal_error(seeds, tmp_path, kind):
    data = bytearray(seeds["power-log"].path.read_bytes())
    data[16 + struct.unpack_from("<I", data, 12)[0] + 4] = kind  # the first record's type byte
    p = tmp_path / "p.sbp"
    p.write_bytes(bytes(data))
    try:
        rec = ingest.read(p)
    except InputError as exc:
        assert exc.path == str(p)
    else:
        assert rec.meta.partial == (kind != 1) and not fz.recording_faults(rec, p)


def test_zeros_appended_to_a_power_log_are_one_issue(seeds, tmp_path):
    p = _copy(seeds["power-log"], tmp_path / "p.sbp")
    with open(p, "ab") as f:
        f.write(bytes(9 * 10_000))
    rec = ingest.read(p)
    (issue,) = rec.meta.issues
    assert issue.message.startswith("10000 damaged records") and rec.meta.partial
    assert len(rec.power) == len(ingest.read(seeds["power-log"].path).power)


def test_noise_in_a_tegrastats_log_is_one_issue_per_run_of_lines(tmp_path):
    lines = (fz.FIXTURES / "tegrastats" / "tx2.log").read_text().splitlines()
    p = tmp_path / "t.log"
    p.write_text("\n".join([lines[0]] + ["garbage"] * 500 + [""] + ["more"] * 3 + [lines[1], "x", lines[0]]) + "\n")
    rec = ingest.read(p)
    bad = [i.message for i in rec.meta.issues if "tegrastats line" in i.message]
    assert bad == [
        "lines 2-505 (503 lines) are not tegrastats lines: 'garbage'",
        "line 507 is not a tegrastats line: 'x'",
    ]
    assert rec.meta.partial and rec.meta.extra["lines"] == 3


def test_text_of_the_input_is_never_taken_for_markup(tmp_path, capsys):
    """inspect prints names and lines of the input as they are (rich markup in them was an internal error)."""
    line = (fz.FIXTURES / "tegrastats" / "tx2.log").read_text().splitlines()[0]
    p = tmp_path / "t.log"
    p.write_text(f"{line}\njunk [/bar] [bold]x\n{line}\n")
    assert main(["inspect", str(p)]) not in (0, 70)  # damaged: one line is not a tegrastats line
    out = " ".join(capsys.readouterr().out.split())
    assert "'junk [/bar] [bold]x'" in out


def test_an_over_long_line_in_a_tegrastats_log_is_one_bad_line(tmp_path):
    line = (fz.FIXTURES / "tegrastats" / "tx2.log").read_text().splitlines()[0]
    p = tmp_path / "t.log"
    p.write_text(f"{line}\n{'x' * 300_000}\n{line}\nnoise\n{line}")
    rec = ingest.read(p)
    bad = [i.message for i in rec.meta.issues if "tegrastats line" in i.message]
    assert [m.split(":")[0] for m in bad] == ["line 2 is not a tegrastats line", "line 4 is not a tegrastats line"]
    assert rec.meta.extra["lines"] == 3
