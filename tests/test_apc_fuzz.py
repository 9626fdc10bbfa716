"""Fuzzing the capture readers: random bytes, every truncation of the real vectors, bit flips.

The contract: a reader returns (``meta.partial`` + Issues naming the file and offset for whatever
it could not read); bad bytes never raise. Properties checked beyond that: frames lie inside the
buffer in order, reassembled streams are the buffer's own bytes, a cut keeps every record (and
every marker) before it, and a damaged byte changes no record before the one holding it. The
frame-level decoders run on every truncation offset (they are fast); the whole reader on
hypothesis-drawn cases.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
from construct import ConstructError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotate import wire
from apc_writer import CaptureWriter
from streamline_bridge.ingest import apc, apc_annotation_frames, apc_counter_frames, apc_frames
from streamline_bridge.ingest.apc_frames import FrameError

VECTORS = ("gatord-6.5-local", "synthetic-p950")
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _legacy_capture() -> bytes:
    """A capture holding every frame type the real vectors lack (COUNTER, ANNOTATE, PERF)."""
    w = CaptureWriter()
    w.summary(monotonic_raw=10**12, monotonic=10**12 + 5)
    w.counter([(1000, 0, 4, 7), (2000, 1, 4, -8)])
    w.legacy_annotate(
        [
            (0, 5, 100, b"\x1c\x06\x01\x00\x00\x00\x03\x00abc" + b"\x1b\x01\x02\x03hi\n"),
            (0, 5, 0, b""),
            (1, 6, 200, b"\x1c\x05\x02\x00ok\x1c\x08\x01\x00\x00\x00\x01\x00g"),
        ]
    )
    w.perf_data(0, bytes(range(40)))
    w.external(9, wire.handshake(1, 1) + wire.marker(10**12 + 9, "m"))
    return w.data()


def _frame_decoders(buf: bytes) -> apc_frames.Walk:
    """Every frame-level decoder (apc_frames, apc_counter_frames, apc_annotation_frames) on ``buf``; only FrameError may escape.

    Checks what holds for any bytes: frames lie inside the buffer, in file order, without overlap,
    and the walk stops at its error or at the end; every error offset is inside the buffer; the
    reassembled EXTERNAL and ANNOTATE streams are the buffer's own bytes at the offsets they give.
    (The annotation stream decoder is fuzzed by its own tests; here it runs in the whole-reader cases.)
    """
    n = len(buf)
    w = apc_frames.walk(buf)
    spans = sorted((s, e) for flat in w.frames.values() for s, e in zip(flat[0::2], flat[1::2]))
    assert all(0 < s < e <= w.end for s, e in spans)
    assert all(e0 < s1 for (_, e0), (s1, _) in zip(spans, spans[1:]))  # each has its own 4-byte header
    assert (w.error is None) == (w.end == n) and w.end <= n
    assert w.error is None or w.error.offset == w.end
    cols = apc_counter_frames.CounterColumns()
    apc_counter_frames.block_counters(buf, w.frames[apc_frames.BLOCK_COUNTER], cols)
    apc_counter_frames.counter_messages(buf, w.frames[apc_frames.COUNTER], cols)
    assert all(-(1 << 63) <= v < (1 << 63) for v in cols.value + cols.t_rel_ns)
    ext = apc_annotation_frames.external_streams(buf, w.frames[apc_frames.EXTERNAL])
    for s in ext.streams:
        assert all(buf[o : o + len(c)] == c for c, o in zip(s.chunks, s.offsets))
        assert s.file_offset(len(s.data) - 1) < n
    streams, errors = apc_annotation_frames.legacy_streams(buf, w.frames[apc_frames.ANNOTATE])
    for ls in streams:
        assert all(buf[o : o + len(c)] == c for c, o in zip(ls.chunks, ls.offsets))
        assert ls.size == len(ls.data) and ls.starts == sorted(ls.starts)
        try:
            list(apc_annotation_frames.legacy_records(ls.data))
        except FrameError as exc:
            assert 0 <= exc.offset <= ls.size
    assert all(0 <= e.offset <= n for e in cols.errors + ext.errors + errors)
    for s, e in zip(w.frames[apc_frames.SUMMARY][0::2], w.frames[apc_frames.SUMMARY][1::2]):
        try:
            apc_frames.SummaryMessage.parse(buf[s + 1 : e])
        except (ConstructError, UnicodeDecodeError):
            pass
    return w


def _frames_before(w: apc_frames.Walk, offset: int) -> dict[int, list[int]]:
    """``w.frames`` restricted to the frames that end at or before ``offset``."""
    return {t: [x for s, e in zip(f[0::2], f[1::2]) if e <= offset for x in (s, e)] for t, f in w.frames.items()}


@pytest.fixture(scope="module")
def datas(shared) -> dict[str, bytes]:
    out = {n: (shared / "vectors" / "apc" / f"{n}.apc" / "0000000000").read_bytes() for n in VECTORS}
    out["legacy"] = _legacy_capture()
    return out


@pytest.mark.parametrize("name", [*VECTORS, "legacy"])
def test_frame_decoders_at_every_truncation(datas, name):
    """A cut keeps every whole record before it, reports the rest, and streams keep their head."""
    data = datas[name]
    whole = _frame_decoders(data)
    assert whole.error is None
    boundaries = sorted(_record_boundaries(data))
    full_streams = {
        s.id: s.data for s in apc_annotation_frames.external_streams(data, whole.frames[apc_frames.EXTERNAL]).streams
    }
    for cut in range(len(data) + 1):
        w = _frame_decoders(data[:cut])
        last = max(b for b in boundaries if b <= cut)
        assert w.frames == _frames_before(whole, cut) and w.end == last
        assert (w.error is None) == (cut == last)
        for s in apc_annotation_frames.external_streams(data[:cut], w.frames[apc_frames.EXTERNAL]).streams:
            assert full_streams[s.id].startswith(s.data)


@pytest.mark.parametrize("name", [*VECTORS, "legacy"])
def test_frame_decoders_with_every_single_byte_flipped(datas, name):
    """A damaged byte changes nothing in the records before the one that holds it."""
    data = bytearray(datas[name])
    whole = apc_frames.walk(bytes(data))
    boundaries = sorted(_record_boundaries(bytes(data)))
    for i in range(len(data)):
        data[i] ^= 0xFF
        w = _frame_decoders(bytes(data))
        record = max(b for b in boundaries if b <= i)
        assert _frames_before(w, record) == _frames_before(whole, record)
        assert w.end >= record
        data[i] ^= 0xFF


@given(st.binary(max_size=2000))
def test_frame_decoders_on_random_bytes(data):
    _frame_decoders(data)


def _read(folder: Path, data: bytes) -> apc.Capture:
    """Read ``data`` as the folder's data file, checking what holds for any bytes.

    Bad bytes never raise (InputError is for a folder with no data file); every issue names a file
    of the folder and an offset inside it, if any; a partial result says why; the bytes read are
    within the file; every marker belongs to a stream the metadata lists, every power row to a rail.
    """
    (folder / "0000000000").write_bytes(data)
    cap = apc.read_capture(folder)
    meta = cap.recording.meta
    sizes = {str(f): f.stat().st_size for f in folder.iterdir()}
    for issue in meta.issues:
        assert str(folder) in (issue.file, str(Path(issue.file).parent)), issue
        assert issue.offset is None or 0 <= issue.offset <= sizes[issue.file], issue
    assert not meta.partial or meta.issues
    assert 0 <= meta.extra["bytes_read"] <= len(data)
    assert meta.extra["bytes_read"] == len(data) or meta.partial
    assert set(cap.recording.markers["stream"]) <= {e["stream"] for e in meta.extra["streams"]}
    assert set(cap.recording.power["rail"].astype(str)) <= set(meta.rails)
    return cap


def _by_stream(cap: apc.Capture) -> dict[tuple, list[tuple]]:
    """Each stream's markers (time, kind, text), keyed by where they came from, not by ordinal."""
    keys, seen = {}, Counter()
    for e in cap.recording.meta.extra["streams"]:
        who = (e["source"], e.get("id", e.get("tid")))
        keys[e["stream"]] = (*who, seen[who])
        seen[who] += 1
    m = cap.recording.markers
    return {
        keys[k]: list(zip(part["time_rel_ns"].tolist(), part["kind"].astype(str), part["text"].tolist()))
        for k, part in m.groupby("stream", sort=False)
    }


@pytest.fixture
def folders(tmp_path, shared) -> dict[str, Path]:
    out = {}
    for n in VECTORS:
        out[n] = tmp_path / f"{n}.apc"
        shutil.copytree(shared / "vectors" / "apc" / f"{n}.apc", out[n])
    out["legacy"] = tmp_path / "legacy.apc"
    out["legacy"].mkdir()
    return out


@FUZZ
@given(name=st.sampled_from([*VECTORS, "legacy"]), frac=st.floats(0, 1))
def test_reader_on_truncated_vectors(folders, datas, name, frac):
    data = datas[name]
    cut = int(len(data) * frac)
    whole = _by_stream(_read(folders[name], data))
    cap = _read(folders[name], data[:cut])
    if cut not in _record_boundaries(data):
        assert cap.recording.meta.partial and any(
            "past the end" in i.message or "cut short" in i.message for i in cap.recording.meta.issues
        )
    for key, markers in _by_stream(cap).items():  # what was read before the cut is what a whole read gives
        assert whole[key][: len(markers)] == markers


def _record_boundaries(data: bytes) -> set[int]:
    out, pos = {len(data)}, 0
    while pos < len(data):
        out.add(pos)
        pos += 4 + int.from_bytes(data[pos : pos + 4], "little")
    return out


@FUZZ
@given(
    name=st.sampled_from([*VECTORS, "legacy"]),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 7)), min_size=1, max_size=8),
)
def test_reader_on_bit_flips(folders, datas, name, flips):
    data = bytearray(datas[name])
    for frac, bit in flips:
        data[int(frac * (len(data) - 1))] ^= 1 << bit
    cap = _read(folders[name], bytes(data))
    first = min(int(frac * (len(data) - 1)) for frac, _ in flips)
    whole = apc_frames.walk(datas[name])
    assert _frames_before(apc_frames.walk(bytes(data)), first) == _frames_before(whole, first)
    assert cap.recording.meta.extra["bytes_read"] >= max(b for b in _record_boundaries(datas[name]) if b <= first)


@FUZZ
@given(data=st.binary(max_size=3000))
def test_reader_on_random_bytes(folders, data):
    cap = _read(folders["synthetic-p950"], data)
    if apc_frames.walk(data).error is not None:
        assert cap.recording.meta.partial


def test_truncated_vector_is_partial_and_keeps_the_head(folders, datas):
    data = datas["gatord-6.5-local"]
    rec = _read(folders["gatord-6.5-local"], data[: len(data) - 1]).recording
    assert rec.meta.partial and len(rec.markers) > 0
