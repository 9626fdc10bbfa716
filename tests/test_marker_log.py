"""The marker log reader (docs/marker-log.md) on logs built from the recorded vectors, whole, cut and damaged."""

from __future__ import annotations

import argparse
import json
import struct

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamline_bridge import ingest
from streamline_bridge.commands import inspect
from streamline_bridge.errors import InputError
from streamline_bridge.ingest import marker_log
from streamline_bridge.ingest.annotation_stream import decode

BASE = 894_000_000_000
META = {
    "writer": "listen",
    "clock": "CLOCK_MONOTONIC_RAW",
    "monotonic_raw_ns": BASE,
    "realtime_ns": 1_763_000_000_000_000_000,
    "pid": 99,
    "protocol": 5,
    "host": "board",
}


def header(meta=META) -> bytes:
    blob = json.dumps(meta).encode()
    return b"SBMARK1\n" + struct.pack("<II", 1, len(blob)) + blob


def record(kind: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack("<BII", kind, stream, len(payload)) + payload


def pieces(data: bytes, every: int):
    """The handshake, then the messages of a stream in groups of ``every`` (complete messages only)."""
    d = decode(data)
    cuts = [int(o) for o in d.offset[::every]] + [len(data)]
    return data[:20], [data[a:b] for a, b in zip(cuts, cuts[1:])]


@pytest.fixture(scope="module")
def streams(vectors):
    return [(vectors / "annotate" / f"annotate-v4-{n}.bin").read_bytes() for n in ("main", "worker")]


@pytest.fixture(scope="module")
def log_bytes(streams):
    """Main (id 3) and worker (id 4) interleaved, both closed."""
    (hs_main, main_parts), (hs_worker, worker_parts) = pieces(streams[0], 7), pieces(streams[1], 1)
    out = [header(), record(1, 3, hs_main), record(2, 3, main_parts[0]), record(1, 4, hs_worker)]
    for i, part in enumerate(main_parts[1:]):
        out.append(record(2, 3, part))
        if i < len(worker_parts):
            out.append(record(2, 4, worker_parts[i]))
    out += [record(3, 4), record(3, 3)]
    return b"".join(out)


def write(tmp_path, data: bytes, name="run.sbm"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def expected_markers(streams) -> pd.DataFrame:
    tables = [decode(s).markers(stream=i, clock_base_ns=BASE) for i, s in enumerate(streams)]
    return pd.concat(tables, ignore_index=True)


def test_reads_interleaved_streams(tmp_path, log_bytes, streams):
    p = write(tmp_path, log_bytes)
    assert ingest.detect(p) == "marker-log"
    rec = ingest.read(p)
    pd.testing.assert_frame_equal(rec.markers, expected_markers(streams))
    m = rec.meta
    assert (m.format, m.clock_base_ns, m.protocol, m.partial, m.issues) == ("marker-log", BASE, 4, False, [])
    assert m.counter_keys == {1: "GPU rail", 2: "processed", 3: "State"}
    assert m.extra["writer"] == "listen" and m.extra["host"] == "board" and m.extra["pid"] == 99
    assert m.extra["realtime_ns"] == META["realtime_ns"]
    assert m.extra["streams"] == [
        {"stream": 0, "id": 3, "pid": 12507, "tid": 12507, "protocol": 4, "messages": 29, "bytes": 666, "closed": True},
        {"stream": 1, "id": 4, "pid": 12507, "tid": 12509, "protocol": 4, "messages": 2, "bytes": 50, "closed": True},
    ]
    assert (rec.markers["time_rel_ns"] == rec.markers["time_ns"] - BASE).dropna().all()


def test_stream_id_reused_after_close(tmp_path, streams):
    w = streams[1]
    data = (
        header()
        + record(1, 1, w[:20])
        + record(2, 1, w[20:])
        + record(3, 1)
        + record(1, 1, w[:20])
        + record(2, 1, w[20:38])
    )
    rec = marker_log.read(write(tmp_path, data))
    assert list(rec.markers["stream"]) == [0, 0, 1] and not rec.meta.partial and rec.meta.issues == []
    assert [s["closed"] for s in rec.meta.extra["streams"]] == [True, False]


def test_every_cut_point_returns_a_prefix(tmp_path, log_bytes, streams):
    full = expected_markers(streams)
    hdr = len(header())
    bounds = _record_starts(log_bytes, hdr)
    for cut in sorted(set(range(0, len(log_bytes), 61)) | {b + d for b in bounds for d in (-1, 0, 5)} | {1, 8, 15}):
        rec = marker_log.read(write(tmp_path, log_bytes[:cut]))
        if cut >= len(log_bytes):
            continue
        n = len(rec.markers)
        assert rec.meta.partial == (cut < hdr or not _at_record_boundary(log_bytes, hdr, cut)), cut
        if rec.meta.partial:
            (issue,) = rec.meta.issues
            assert issue.file.endswith("run.sbm") and issue.offset <= cut
        for i in (0, 1):
            got = rec.markers[rec.markers["stream"] == i].reset_index(drop=True)
            want = full[full["stream"] == i].reset_index(drop=True).iloc[: len(got)]
            pd.testing.assert_frame_equal(got, want)
        assert n <= len(full)


def _record_starts(data: bytes, pos: int) -> list[int]:
    out = [pos]
    while pos < len(data):
        pos += 9 + struct.unpack_from("<I", data, pos + 5)[0]
        out.append(pos)
    return out


def _at_record_boundary(data: bytes, pos: int, cut: int) -> bool:
    return cut in _record_starts(data, pos)


def test_damaged_records_are_skipped_with_issues(tmp_path, streams):
    w = streams[1]
    data = (
        header()
        + record(1, 5, w[:20])
        + record(9, 5, b"future")
        + record(2, 6, w[20:38])
        + record(2, 5, w[20:38])
        + record(3, 7)
        + record(2, 5, w[38:])
        + record(3, 5)
    )
    rec = marker_log.read(write(tmp_path, data))
    assert list(rec.markers["text"]) == ["worker", ""]
    msgs = [str(i) for i in rec.meta.issues]
    assert len(msgs) == 3 and rec.meta.partial
    assert "unknown record type 9" in msgs[0] and f"at byte {len(header()) + 29}" in msgs[0]
    assert "stream 6, which is not open" in msgs[1]
    assert "close record for stream 7" in msgs[2]


def test_bad_message_bytes_inside_a_stream_name_the_file_offset(tmp_path, streams):
    m = streams[0]
    bad = bytearray(m[20:])
    bad[37 - 20] = 0x55  # the code byte of the NAME_CHANNEL message at stream offset 37
    data = header() + record(1, 1, m[:20]) + record(2, 1, bytes(bad))
    rec = marker_log.read(write(tmp_path, data))
    (issue,) = rec.meta.issues
    assert issue.offset == len(header()) + 9 + 20 + 9 + 17 and "unknown message code 85" in issue.message
    assert len(rec.markers) == 1 and rec.meta.partial


def test_bad_header_json_keeps_the_records(tmp_path, streams):
    blob = b"{not json"
    data = (
        b"SBMARK1\n"
        + struct.pack("<II", 1, len(blob))
        + blob
        + record(1, 1, streams[1][:20])
        + record(2, 1, streams[1][20:])
    )
    rec = marker_log.read(write(tmp_path, data))
    assert len(rec.markers) == 2 and rec.meta.clock_base_ns is None and rec.markers["time_rel_ns"].isna().all()
    assert "not valid JSON" in rec.meta.issues[0].message


def test_unsupported_version_is_an_input_error(tmp_path):
    p = write(tmp_path, b"SBMARK1\n" + struct.pack("<II", 2, 2) + b"{}")
    with pytest.raises(InputError, match="version 2 is not supported"):
        marker_log.read(p)


def test_written_by_the_annotate_mirror(tmp_path, streams):
    mirror = pytest.importorskip("annotate.mirror")
    p = tmp_path / "m.sbm"
    log = mirror.MarkerLog(p, protocol=4)
    log.write(
        mirror.record(mirror.OPENED, 12509, streams[1][:20]) + mirror.record(mirror.MESSAGES, 12509, streams[1][20:])
    )
    log.close()
    rec = ingest.read(p)
    assert list(rec.markers["text"]) == ["worker", ""] and rec.meta.extra["writer"] == "annotate"


# ---- inspect ----------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    """``streamline-bridge inspect ...`` without building the other sub-commands' parsers."""
    parser = argparse.ArgumentParser()
    inspect.configure(parser)
    return inspect.run(parser.parse_args(argv[1:]))


def test_inspect_rich_and_json(tmp_path, log_bytes, capsys):
    p = write(tmp_path, log_bytes)
    assert main(["inspect", str(p)]) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "marker-log" in out and "31 markers, 2 thread(s)" in out and "counter_value" in out
    assert "protocol 4" in out and "{'" not in out  # readable: tables, not Python dicts
    streams = out[out.index("streams") :]
    assert "tid" in streams and "12509" in streams
    assert main(["inspect", str(p), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["markers"]["count"] == 31 and info["markers"]["threads"] == [[12507, 12507], [12507, 12509]]
    assert info["markers"]["by_kind"]["end"] == 4 and info["partial"] is False
    assert [s["messages"] for s in info["extra"]["streams"]] == [29, 2]


def test_inspect_truncated_log(tmp_path, log_bytes, capsys):
    cut = len(log_bytes) - 30
    p = write(tmp_path, log_bytes[:cut], "cut.sbm")
    assert main(["inspect", str(p)]) == 3  # EXIT_DAMAGED
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "cut.sbm at byte" in out and "file ends inside a record" in out and "markers" in out
    assert main(["inspect", str(p), "--json"]) == 3
    info = json.loads(capsys.readouterr().out)
    assert info["partial"] is True and info["markers"]["count"] > 0
    assert any("cut.sbm at byte" in i for i in info["issues"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_damaged_logs_never_crash(tmp_path, log_bytes, data):
    raw = bytearray(log_bytes)
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(16, len(raw) - 1))  # past the magic and version: those are checked strictly
        raw[i] = data.draw(st.integers(0, 255))
    raw = raw[: data.draw(st.integers(0, len(raw)))]
    p = write(tmp_path, bytes(raw), "fuzz.sbm")
    try:
        rec = marker_log.read(p)
    except InputError as exc:
        assert "fuzz.sbm" in str(exc)
        return
    assert all(i.file.endswith("fuzz.sbm") for i in rec.meta.issues)
    assert (
        rec.meta.partial
        or rec.meta.issues == []
        or all(i.action in ("ignored", "earlier stream ended there") for i in rec.meta.issues)
    )
    assert set(rec.markers["stream"]) <= {e["stream"] for e in rec.meta.extra["streams"]}
