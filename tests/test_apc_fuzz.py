"""Fuzzing the capture readers: random bytes, every truncation of the real vectors, bit flips.

The contract: a reader returns (``meta.partial`` + Issues for whatever it could not read) or
raises :class:`InputError`; never any other exception. The frame-level decoders are run on every
truncation offset (they are fast); the whole reader on hypothesis-drawn cases.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from apc_writer import CaptureWriter
from fuzz_support import recording_faults
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotate import wire
from streamline_bridge.errors import InputError
from streamline_bridge.ingest import apc, apc_frames
from streamline_bridge.ingest.apc_frames import FrameError

VECTORS = ("gatord-6.5-local", "synthetic-p950")
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _legacy_capture() -> bytes:
    """A capture holding every frame type the real vectors lack (COUNTER, ANNOTATE, PERF)."""
    w = CaptureWriter()
    w.summary(monotonic_raw=10**12, monotonic=10**12 + 5)
    w.counter([(1000, 0, 4, 7), (2000, 1, 4, -8)])
    w.legacy_annotate([(0, 5, 100, b"\x1c\x06\x01\x00\x00\x00\x03\x00abc" + b"\x1b\x01\x02\x03hi\n"),
                       (0, 5, 0, b""), (1, 6, 200, b"\x1c\x05\x02\x00ok\x1c\x08\x01\x00\x00\x00\x01\x00g")])
    w.perf_data(0, bytes(range(40)))
    w.external(9, wire.handshake(1, 1) + wire.marker(10**12 + 9, "m"))
    return w.data()


def _frame_decoders(buf: bytes) -> None:
    """Every frame-level decoder of apc_frames on ``buf``; only FrameError may escape.

    (The annotation stream decoder is fuzzed by its own tests; here it runs in the whole-reader cases.)
    """
    w = apc_frames.walk(buf)
    cols = apc_frames.CounterColumns()
    apc_frames.block_counters(buf, w.frames[apc_frames.BLOCK_COUNTER], cols)
    apc_frames.counter_messages(buf, w.frames[apc_frames.COUNTER], cols)
    assert all(-(1 << 63) <= v < (1 << 63) for v in cols.value + cols.t_rel_ns)
    for s in apc_frames.external_streams(buf, w.frames[apc_frames.EXTERNAL]).streams:
        assert s.file_offset(len(s.data) - 1) < len(buf)
    streams, _ = apc_frames.legacy_streams(buf, w.frames[apc_frames.ANNOTATE])
    for ls in streams:
        try:
            list(apc_frames.legacy_records(ls.data))
        except FrameError:
            pass
    for s, e in zip(w.frames[apc_frames.SUMMARY][0::2], w.frames[apc_frames.SUMMARY][1::2]):
        try:
            apc_frames.SummaryMessage.parse(buf[s + 1:e])
        except (apc_frames.ConstructError, UnicodeDecodeError):
            pass


@pytest.fixture(scope="module")
def datas(shared) -> dict[str, bytes]:
    out = {n: (shared / "vectors" / "apc" / f"{n}.apc" / "0000000000").read_bytes() for n in VECTORS}
    out["legacy"] = _legacy_capture()
    return out


@pytest.mark.parametrize("name", [*VECTORS, "legacy"])
def test_frame_decoders_at_every_truncation(datas, name):
    data = datas[name]
    for cut in range(len(data) + 1):
        _frame_decoders(data[:cut])


@pytest.mark.parametrize("name", [*VECTORS, "legacy"])
def test_frame_decoders_with_every_single_byte_flipped(datas, name):
    data = bytearray(datas[name])
    for i in range(len(data)):
        data[i] ^= 0xFF
        _frame_decoders(bytes(data))
        data[i] ^= 0xFF


@given(st.binary(max_size=2000))
def test_frame_decoders_on_random_bytes(data):
    _frame_decoders(data)


def _read(folder: Path, data: bytes):
    """The capture with ``data`` as its data file (None: InputError naming the folder); its consistency asserted."""
    (folder / "0000000000").write_bytes(data)
    try:
        rec = apc.read(folder)
    except InputError as exc:
        assert exc.path is not None and exc.path.startswith(str(folder))
        return None
    assert not recording_faults(rec, folder)
    return rec


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
    rec = _read(folders[name], data[:cut])
    if rec is not None and cut not in _record_boundaries(data):
        assert rec.meta.partial and any("past the end" in i.message or "cut short" in i.message
                                        for i in rec.meta.issues)


def _record_boundaries(data: bytes) -> set[int]:
    out, pos = {len(data)}, 0
    while pos < len(data):
        out.add(pos)
        pos += 4 + int.from_bytes(data[pos:pos + 4], "little")
    return out


@FUZZ
@given(name=st.sampled_from([*VECTORS, "legacy"]), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 7)),
                                                                   min_size=1, max_size=8))
def test_reader_on_bit_flips(folders, datas, name, flips):
    data = bytearray(datas[name])
    for frac, bit in flips:
        data[int(frac * (len(data) - 1))] ^= 1 << bit
    rec = _read(folders[name], bytes(data))
    assert rec is not None  # a data file is there: damage inside it is never more than partial


@FUZZ
@given(data=st.binary(max_size=3000))
def test_reader_on_random_bytes(folders, data):
    rec = _read(folders["synthetic-p950"], data)
    assert rec is not None and rec.meta.partial  # (random bytes hold no Summary frame: no clock base)


def test_truncated_vector_is_partial_and_keeps_the_head(folders, datas):
    data = datas["gatord-6.5-local"]
    rec = _read(folders["gatord-6.5-local"], data[: len(data) - 1])
    assert rec.meta.partial and len(rec.markers) > 0
