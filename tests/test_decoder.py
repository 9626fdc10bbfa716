"""The annotation stream decoder against the recorded vectors, hand-made edge cases and bad input."""

from __future__ import annotations

import json
import random
import struct

import numpy as np
import pandas as pd
import pytest

from annotate.wire import frame, sleb128
from streamline_bridge.errors import InputError
from streamline_bridge.ingest.annotation_markers import resolve_group_names
from streamline_bridge.ingest.annotation_stream import (
    MAX_MESSAGE_LENGTH,
    DecodeError,
    StreamDecoder,
    color_json,
    decode,
)

VECTORS = ("annotate-v4-main", "annotate-v4-worker")


def load(vectors, name):
    data = (vectors / "annotate" / f"{name}.bin").read_bytes()
    expected = json.loads((vectors / "annotate" / f"{name}.expected.json").read_text())
    return data, expected


def handshake(version: int = 5, tid: int = 7, pid: int = 5, flag: int = 0) -> bytes:
    out = f"ANNOTATE {version}\n".encode() + struct.pack("<II", tid, pid)
    return out + bytes([flag]) if version >= 3 else out


@pytest.mark.parametrize("name", VECTORS)
def test_vector_decodes_exactly(vectors, name):
    data, expected = load(vectors, name)
    got = decode(data, name).to_json()
    assert got["handshake"] == expected["handshake"]
    assert got["messages"] == expected["messages"]  # offset, code, name, length, hex and every field


@pytest.mark.parametrize("name", VECTORS)
def test_vector_in_random_pieces(vectors, name):
    data, expected = load(vectors, name)
    rng = random.Random(1234)
    for _ in range(20):
        dec = StreamDecoder(name)
        got, pos = [], 0
        while pos < len(data):
            n = rng.randint(1, 40)
            got += [m.to_json() for m in dec.feed(data[pos : pos + n]).messages()]
            pos += n
        dec.finish()
        assert got == expected["messages"]
        assert dec.handshake.to_json() == expected["handshake"]
        assert dec.pending == 0 and dec.offset == len(data)


def test_markers_table_of_main_vector(vectors):
    data, _ = load(vectors, "annotate-v4-main")
    m = decode(data).markers(stream=3, clock_base_ns=894_000_000_000)
    assert len(m) == 29
    assert (m["pid"] == 12507).all() and (m["tid"] == 12507).all() and (m["stream"] == 3).all()
    conv1 = m.iloc[2]
    assert (conv1["kind"], conv1["text"], conv1["channel"], conv1["color"]) == ("text", "conv1", 3, 0x00FF001B)
    assert (conv1["channel_name"], conv1["group"], conv1["group_name"]) == ("layers", 1, "Caffe")
    assert conv1["time_rel_ns"] == 894071173595 - 894_000_000_000
    assert list(m["kind"].iloc[3:8]) == ["end", "text", "end", "text", "end"]
    # channel 0 was never named: no name, no group
    assert m["channel_name"].iloc[6] is pd.NA and m["group"].iloc[6] is pd.NA
    values = m[m["kind"] == "counter_value"]
    assert list(values["key"]) == [1, 2] and list(values["value"]) == [1234, -1294967296]  # v4: 32-bit, kept as sent
    switch = m[m["kind"] == "activity_switch"].iloc[0]
    assert (switch["core"], switch["key"], switch["value"]) == (0, 3, 2)
    assert list(m.loc[m["kind"] == "cam_job", "time_ns"]) == [2000000000, 2000600000, 2001000000]
    assert m.loc[m["kind"] == "counter_def", "time_ns"].isna().all()
    assert decode(data).counter_names() == {1: "GPU rail", 2: "processed", 3: "State"}


def test_structured_fields_for_records_not_in_table(vectors):
    d = decode(load(vectors, "annotate-v4-main")[0])
    counters = d.fields[8].columns
    assert counters["activities"] == [[], [], [("Load", 0xFF1B), ("Run", 0xFF001B)]]
    assert counters["description"][2] == "demo activity counter"
    assert d.fields[12].columns["deps"] == [[], [100], [100, 101]]
    assert d.fields[5].columns["image"] == [bytes.fromhex("89504e470d0a1a0a")]
    assert list(d.fields[11].columns["parent"]) == [-1, 1]


def test_v5_handshake_and_64_bit_counter_value():
    # spec E8: ANNOTATE_COUNTER_VALUE(2, 3000000000) from the v5 library
    data = handshake(5, tid=12203, pid=12201, flag=1) + bytes.fromhex(
        "090d000000c8f59385a81900 0280bcc1960b".replace(" ", "")
    )
    d = decode(data)
    assert d.handshake.to_json() == {
        "magic": "ANNOTATE 5\n",
        "version": 5,
        "tid": 12203,
        "pid": 12201,
        "dont_mangle_keys": 1,
    }
    assert d.message(0).fields == {"time": 869741689544, "core": 0, "key": 2, "value": 3_000_000_000}


@pytest.mark.parametrize("version", [1, 2])
def test_old_handshakes_have_no_flag_byte(version):
    data = handshake(version, tid=9, pid=8) + frame(6, bytes.fromhex("7b") + b"m")
    d = decode(data)
    assert (d.handshake.version, d.handshake.tid, d.handshake.pid, d.handshake.dont_mangle_keys) == (version, 9, 8, 0)
    assert len(d.handshake.raw) == 19
    assert d.message(0).offset == 19 and d.message(0).fields == {"time": -5, "text": "m"}


def test_spec_leb128_examples_and_extremes():
    cases = {
        1234: "d209",
        -5: "7b",
        -1: "7f",
        4660: "b424",
        12201: "a9df00",
        100: "e400",
        1_000_000_000: "8094ebdc03",
        -1294967296: "80bcc1967b",
        2**63 - 1: "ffffffffffffffff ff00",
        -(2**63): "8080808080808080 807f",
    }
    stream = handshake() + b"".join(frame(16, b"\x00\x00" + bytes.fromhex(h)) for h in cases.values())
    d = decode(stream)
    assert list(d.fields[16].columns["time"]) == list(cases)
    assert [sleb128(v) for v in cases] == [bytes.fromhex(h) for h in cases.values()]


def test_color_json():
    assert color_json(0x0000FF1B) == {"rgb": "#ff0000", "tag": 0x1B, "u32": 0xFF1B}


def test_group_named_on_another_thread_of_the_process():
    main = decode(handshake(tid=1, pid=5) + frame(4, b"\x01\x02Caffe")).markers(stream=0)
    worker = decode(handshake(tid=2, pid=5) + frame(3, b"\x02\x07\x02conv") + frame(1, b"\x03\x07conv1")).markers(
        stream=1
    )
    other = decode(handshake(tid=3, pid=6) + frame(3, b"\x02\x07\x02x")).markers(stream=2)
    m = pd.concat([main, worker, other], ignore_index=True)
    assert m["group_name"].isna().sum() == 3
    resolve_group_names(m)
    assert list(m["group_name"].fillna("-")) == ["Caffe", "Caffe", "Caffe", "-"]
    assert list(m["channel_name"].fillna("-")) == ["-", "conv", "conv", "x"]


def test_empty_stream_and_handshake_only():
    assert len(decode(b"")) == 0 and decode(b"").handshake is None
    d = decode(handshake())
    assert len(d) == 0 and d.handshake.pid == 5


# ---- bad input -------------------------------------------------------------------------------


def check_error(data: bytes, offset: int, words: str, n_before: int) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        decode(data, "conn")
    err = info.value
    assert isinstance(err, InputError)
    assert err.offset == offset and words in str(err) and f"at byte {offset}" in str(err) and "conn" in str(err)
    assert len(err.partial) == n_before
    return err


def test_garbage_instead_of_handshake():
    check_error(b"GET / HTTP/1.1\r\n", 0, "not an annotation stream", 0)
    check_error(b"ANNOTATE X\n" + bytes(9), 0, "bad handshake", 0)
    check_error(b"ANNOTATE 7\n" + bytes(9), 0, "unsupported annotation protocol version 7", 0)


def test_truncations_are_reported_at_the_cut_message(vectors):
    data, expected = load(vectors, "annotate-v4-main")
    msgs = expected["messages"]
    for cut in (5, 19, 21, 24, 30, msgs[10]["offset"] + 3, len(data) - 1):
        before = sum(1 for m in msgs if m["offset"] + 5 + m["length"] <= cut)
        err = check_error(data[:cut], 0 if cut < 20 else msgs[before]["offset"], "stream ends inside", before)
        assert err.partial.to_json()["messages"] == msgs[:before]


def test_unknown_code_and_absurd_length(vectors):
    data, expected = load(vectors, "annotate-v4-main")
    at = expected["messages"][5]["offset"]
    bad_code = data[:at] + b"\x2a" + data[at + 1 :]
    check_error(bad_code, at, "unknown message code 42", 5)
    huge = data[:at] + frame(1, b"")[:1] + struct.pack("<I", MAX_MESSAGE_LENGTH + 1) + b"xx"
    check_error(huge, at, "exceeds the 32 MiB limit", 5)


def test_field_errors_name_the_message():
    hs = handshake()
    good = frame(1, b"\x01\x00hi")
    check_error(hs + good + frame(9, b"\x01\x00"), 20 + len(good), "COUNTER_VALUE message (code 9)", 1)
    check_error(hs + good + frame(5, b"\x01no-nul"), 20 + len(good), "not NUL-terminated", 1)
    check_error(hs + good + frame(6, b"\xff" * 11), 20 + len(good), "longer than 10 bytes", 1)
    check_error(
        hs + good + frame(12, b"\x01\x02\x03\x04\x05\x00\x00\x00\x00\x7f\x7f"),
        20 + len(good),
        "count -1 does not fit",
        1,
    )
    # a bad message of a fixed layout stops the stream even when later codes are fine
    err = check_error(hs + good + frame(2, b"\x01\x00\xff") + frame(6, b"\x01ok"), 20 + len(good), "too short", 1)
    assert err.partial.message(0).fields["text"] == "hi"


def test_feed_after_error_keeps_failing():
    dec = StreamDecoder("c")
    dec.feed(handshake())
    with pytest.raises(DecodeError):
        dec.feed(b"\x00\x00\x00\x00\x00")
    with pytest.raises(DecodeError, match="already failed"):
        dec.feed(frame(6, b"\x01"))


def test_absurd_length_is_detected_before_the_body_arrives():
    dec = StreamDecoder("c")
    dec.feed(handshake())
    with pytest.raises(DecodeError) as info:
        dec.feed(b"\x01\xff\xff\xff\x7f")
    assert info.value.offset == 20


def test_invalid_utf8_is_replaced_not_fatal():
    d = decode(handshake() + frame(1, b"\x01\x00\xffok"))
    assert d.message(0).fields["text"] == "\ufffdok"


def test_large_synthetic_stream_matches_scalar_view():
    rng = np.random.default_rng(5)
    parts = [handshake()]
    values = rng.integers(-(2**62), 2**62, 2000).tolist()
    for v in values:
        parts.append(frame(9, sleb128(v) + b"\x00" + sleb128(v % 1000) + sleb128(-v)))
    d = decode(b"".join(parts))
    assert list(d.fields[9].columns["time"]) == values
    assert list(d.fields[9].columns["value"]) == [-v for v in values]


def test_string_hash_collisions_fall_back_to_decoding_every_row():
    from unittest import mock

    from streamline_bridge.ingest import annotation_fields

    texts = [f"layer{i % 40}" for i in range(200)] + ["x" * 40, ""]  # 40-byte one takes the long path
    data = handshake() + b"".join(frame(1, b"\x01\x00" + t.encode()) for t in texts)
    with mock.patch.object(annotation_fields, "_HASH_MUL", np.uint64(0)):  # every string hashes alike
        collided = decode(data)
    assert list(collided.fields[1].columns["text"]) == texts == list(decode(data).fields[1].columns["text"])
