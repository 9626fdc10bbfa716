"""Fuzzing the annotation decoder: random bytes, truncations and bit flips of the recorded vectors.

Properties: only :class:`DecodeError` is ever raised; the messages before an error are returned;
feeding the same bytes in arbitrary pieces gives the same messages and the same error offset as
decoding them whole; a clean decode accounts for every byte.
"""

from __future__ import annotations

import struct
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamline_bridge.ingest import annotation_fields
from streamline_bridge.ingest.annotation_stream import DecodeError, StreamDecoder, decode

HS = b"ANNOTATE 5\n" + struct.pack("<II", 7, 5) + b"\x00"
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def outcome(data: bytes):
    """(messages as JSON, error offset or None) of a whole-stream decode."""
    try:
        d = decode(data, "fuzz")
        return d.to_json()["messages"], None, d
    except DecodeError as exc:
        assert exc.partial is not None and exc.offset is not None and "fuzz" in str(exc)
        return exc.partial.to_json()["messages"], exc.offset, exc.partial


def outcome_in_pieces(data: bytes, cuts: list[int]):
    dec = StreamDecoder("fuzz")
    got, prev = [], 0
    try:
        for c in sorted(set(cuts)) + [len(data)]:
            got += dec.feed(data[prev:c]).to_json()["messages"]
            prev = c
        dec.finish()
        return got, None
    except DecodeError as exc:
        return got + exc.partial.to_json()["messages"], exc.offset


def check(data: bytes, cuts: list[int]) -> None:
    msgs, err, d = outcome(data)
    assert outcome_in_pieces(data, [c % (len(data) + 1) for c in cuts]) == (msgs, err)
    with mock.patch.object(annotation_fields, "VECTOR_MIN", 0):  # numpy for every code, however few
        vectorised = outcome(data)
    assert (vectorised[0], vectorised[1]) == (msgs, err)
    if err is None and d.handshake is not None:
        assert len(d.handshake.raw) + len(d.raw) == len(data)  # every byte accounted for
    for m in msgs:
        assert err is None or m["offset"] < err


@pytest.fixture(scope="module")
def vector_bytes(vectors):
    return [(vectors / "annotate" / f"annotate-v4-{n}.bin").read_bytes() for n in ("main", "worker")]


@FUZZ
@given(st.binary(max_size=400), st.lists(st.integers(0, 500), max_size=6))
def test_random_bytes(data, cuts):
    check(data, cuts)


@FUZZ
@given(st.binary(max_size=400), st.lists(st.integers(0, 500), max_size=6))
def test_random_bytes_after_a_good_handshake(data, cuts):
    check(HS + data, cuts)


@FUZZ
@given(
    st.lists(st.tuples(st.integers(0, 20), st.binary(max_size=40)), max_size=12),
    st.lists(st.integers(0, 600), max_size=6),
)
def test_random_bodies_with_valid_framing(messages, cuts):
    data = HS + b"".join(bytes([c]) + struct.pack("<I", len(b)) + b for c, b in messages)
    check(data, cuts)


@FUZZ
@given(st.data())
def test_bit_flips_and_truncations_of_vectors(vector_bytes, data):
    raw = bytearray(data.draw(st.sampled_from(vector_bytes)))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= 1 << data.draw(st.integers(0, 7))
    cut = data.draw(st.integers(0, len(raw)))
    check(bytes(raw[:cut]), data.draw(st.lists(st.integers(0, 700), max_size=8)))


def test_every_truncation_of_the_main_vector(vector_bytes):
    raw = vector_bytes[0]
    offsets = decode(raw).offset.tolist()
    for cut in range(len(raw) + 1):
        try:
            d, err = decode(raw[:cut]), None
        except DecodeError as exc:
            d, err = exc.partial, exc.offset
        assert d.offset.tolist() == offsets[: len(d)]
        complete = cut in (0, 20, len(raw)) or cut in offsets
        assert (err is None) == complete
        if err is not None:
            assert err == (0 if cut < 20 else offsets[len(d)])


# Hand-picked edge cases of the variable layouts (no crasher turned up in 4000-example runs).
@pytest.mark.parametrize(
    "data",
    [
        HS + b"\x09\x00\x00\x00\x00",  # empty body where four integers are due
        HS + b"\x08\x0e\x00\x00\x00" + b"\x00" * 10 + b"\x7f\x00\x00\x00",  # activity count -1
        HS + b"\x0c\x0a\x00\x00\x00" + b"\x00" * 9 + b"\x7f",  # dependency count -1
        HS + b"\x0f\x05\x00\x00\x00" + b"\x00\x00\x00\x00\xff",  # count field cut inside its varint
    ],
)
def test_kept_crashers(data):
    check(data, [7, 23])
