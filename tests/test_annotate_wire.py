"""The encoders against recorded bytes: Arm's library (v4 recordings) and the spec's v5 examples."""

from __future__ import annotations

import pytest

from annotate import wire
from annotate_support import TIMED_CODES, parse_stream, sleb

IMG = bytes.fromhex("89504e470d0a1a0a")


def v4_main_calls(t, tid: int) -> list[bytes]:
    """Steps 1-17 and 20-31 of vectors/README.md, encoded with protocol 4; ``t(i)`` = i-th recorded time."""
    return [
        wire.name_group(t(0), 1, "Caffe"),
        wire.name_channel(t(1), 3, 1, "layers"),
        wire.text_color(t(2), 3, wire.GREEN, "conv1"),
        wire.text(t(3), 3, None),
        wire.text(t(4), 3, "pool1"),
        wire.text(t(5), 3, ""),
        wire.text(t(6), 0, "hello"),
        wire.text(t(7), 0, None),
        wire.text_color(t(8), 0, wire.RED, "red text"),
        wire.marker(t(9), None),
        wire.marker(t(10), "epoch 1"),
        wire.marker_color(t(11), wire.YELLOW, None),
        wire.marker_color(t(12), wire.BLUE, "blue marker"),
        wire.counter(1, "Power", "GPU rail"),
        wire.counter(2, "Images", "processed", counter_class=wire.DELTA, display=wire.ACCUMULATE),
        wire.counter_value(t(13), 0, 1, 1234, protocol=4),
        wire.counter_value(t(14), 0, 2, 3000000000, protocol=4),
        wire.counter(
            3,
            "Engine",
            "State",
            counter_class=wire.ACTIVITY,
            display=wire.AVERAGE,
            units="",
            rendering_type=wire.BAR,
            activities=("Load", "Run"),
            activity_colors=(wire.RED, wire.GREEN),
            cores=1,
            color=wire.COLOR_CYCLE,
            description="demo activity counter",
        ),
        wire.activity_switch(t(15), 0, 3, 2, tid),
        wire.cam_view_name(0x1234, "Pipeline"),
        wire.cam_track(0x1234, 1, -1, "Stage A"),
        wire.cam_track(0x1234, 2, 1, "Stage B"),
        wire.cam_job(0x1234, 100, "job100", 1, 2000000000, 500000, wire.COLOR_T1),
        wire.cam_job(0x1234, 101, "job101", 2, 2000600000, 250000, wire.CYAN, -1, [100]),
        wire.cam_job(0x1234, 102, "job102", 1, 2001000000, 100000, wire.PURPLE, -1, [100, 101]),
        wire.cam_job_start(0x1234, 103, "job103", 2, 2002000000, wire.WHITE),
        wire.cam_job_set_dependencies(0x1234, 103, 2002000001, -1, [102]),
        wire.cam_job_stop(0x1234, 103, 2002500000),
        wire.visual(t(16), "frame0", IMG),
    ]


def test_v4_main_stream_byte_for_byte(vectors):
    recorded = (vectors / "annotate" / "annotate-v4-main.bin").read_bytes()
    rec = parse_stream(recorded)
    times = rec.times()
    assert len(times) == 17
    ours = wire.handshake(rec.tid, rec.pid, protocol=4) + b"".join(v4_main_calls(times.__getitem__, rec.tid))
    assert ours.hex(" ") == recorded.hex(" ")
    # every message code the recording has is covered by the replay
    assert {code for code, _ in rec.messages} == set(range(0x01, 0x11))


def test_v4_worker_stream_byte_for_byte(vectors):
    recorded = (vectors / "annotate" / "annotate-v4-worker.bin").read_bytes()
    rec = parse_stream(recorded)
    t = rec.times()
    ours = wire.handshake(rec.tid, rec.pid, protocol=4) + wire.text(t[0], 7, "worker") + wire.text(t[1], 7, None)
    assert ours == recorded
    assert rec.tid != rec.pid


def h(s: str) -> bytes:
    return bytes.fromhex(s.replace(" ", ""))


@pytest.mark.parametrize(
    "encode, expected",
    [
        # E0: handshake (pid = tid = 12201)
        (lambda t: wire.handshake(12201, 12201), "41 4e 4e 4f 54 41 54 45 20 35 0a a9 2f 00 00 a9 2f 00 00 00"),
        # E1 name group
        (lambda t: wire.name_group(t, 1, "Caffe"), "04 0c 00 00 00 c1 f2 92 85 a8 19 01 43 61 66 66 65"),
        # E2 name channel
        (lambda t: wire.name_channel(t, 3, 1, "layers"), "03 0e 00 00 00 cc ae 93 85 a8 19 03 01 6c 61 79 65 72 73"),
        # E3 coloured text
        (
            lambda t: wire.text_color(t, 3, wire.GREEN, "conv1"),
            "02 10 00 00 00 fd b2 93 85 a8 19 03 00 ff 00 1b 63 6f 6e 76 31",
        ),
        # E4 channel end
        (lambda t: wire.text(t, 3, None), "01 07 00 00 00 a2 b6 93 85 a8 19 03"),
        # E5 plain text
        (lambda t: wire.text(t, 0, "hello"), "01 0c 00 00 00 ed bd 93 85 a8 19 00 68 65 6c 6c 6f"),
        # E6 markers
        (lambda t: wire.marker(t, None), "06 06 00 00 00 e3 c6 93 85 a8 19"),
        (lambda t: wire.marker(t, "epoch 1"), "06 0d 00 00 00 b8 c9 93 85 a8 19 65 70 6f 63 68 20 31"),
        (
            lambda t: wire.marker_color(t, wire.BLUE, "blue marker"),
            "07 15 00 00 00 f5 ce 93 85 a8 19 00 00 ff 1b 62 6c 75 65 20 6d 61 72 6b 65 72",
        ),
        # E7 absolute counter definition
        (
            lambda t: wire.counter(1, "Power", "GPU rail"),
            "08 20 00 00 00 01 00 02 04 01 01 01 00 00 00 00 00 00 00 00 00"
            "50 6f 77 65 72 00 47 50 55 20 72 61 69 6c 00 00",
        ),
        # E8 counter values (v5: 64-bit)
        (lambda t: wire.counter_value(t, 0, 1, 1234), "09 0a 00 00 00 87 f3 93 85 a8 19 00 01 d2 09"),
        (lambda t: wire.counter_value(t, 0, 2, 3000000000), "09 0d 00 00 00 c8 f5 93 85 a8 19 00 02 80 bc c1 96 0b"),
        (lambda t: wire.counter_value(t, 0, 1, -5), "09 09 00 00 00 92 f8 93 85 a8 19 00 01 7b"),
        (lambda t: wire.counter_value(t, 0, 1, 5000), "09 09 00 00 00 80 94 eb dc 03 00 01 88 27"),
        # E9 activity counter and switch
        (
            lambda t: wire.counter(
                3,
                "Engine",
                "State",
                per_cpu=False,
                counter_class=wire.ACTIVITY,
                display=wire.AVERAGE,
                units="",
                modifier=1,
                series_composition=wire.STACKED,
                rendering_type=wire.BAR,
                activities=["Load", "Run"],
                activity_colors=[wire.RED, wire.GREEN],
                cores=1,
                color=wire.COLOR_CYCLE,
                description="demo activity counter",
            ),
            "08 44 00 00 00 03 00 03 01 01 01 03 00 00 00 02 01 00 00 00 00"
            "4c 6f 61 64 00 ff 00 00 1b 52 75 6e 00 00 ff 00 1b"
            "45 6e 67 69 6e 65 00 53 74 61 74 65 00 00" + b"demo activity counter".hex(),
        ),
        (lambda t: wire.activity_switch(t, 0, 3, 2, 12201), "0a 0c 00 00 00 ef 87 94 85 a8 19 00 03 02 a9 df 00"),
        # E10 Custom Activity Map
        (lambda t: wire.cam_view_name(0x1234, "Pipeline"), "0d 0a 00 00 00 b4 24 50 69 70 65 6c 69 6e 65"),
        (lambda t: wire.cam_track(0x1234, 1, -1, "Stage A"), "0b 0b 00 00 00 b4 24 01 7f 53 74 61 67 65 20 41"),
        (
            lambda t: wire.cam_job(0x1234, 100, "job100", 1, 2000000000, 500000, wire.COLOR_T1),
            "0c 19 00 00 00 b4 24 e4 00 01 80 a8 d6 b9 07 a0 c2 1e 00 00 00 01 7f 00 6a 6f 62 31 30 30",
        ),
        (
            lambda t: wire.cam_job(0x1234, 102, "job102", 1, 2001000000, 100000, wire.PURPLE, -1, (100, 101)),
            "0c 1d 00 00 00 b4 24 e6 00 01 c0 ac 93 ba 07 a0 8d 06 ff 00 ff 1b 7f 02 e4 00 e5 00 6a 6f 62 31 30 32",
        ),
        (
            lambda t: wire.cam_job_start(0x1234, 103, "job103", 2, 2002000000, wire.WHITE),
            "0e 14 00 00 00 b4 24 e7 00 02 80 b1 d0 ba 07 ff ff ff 1b 6a 6f 62 31 30 33",
        ),
        (
            lambda t: wire.cam_job_set_dependencies(0x1234, 103, 2002000001, -1, [102]),
            "0f 0d 00 00 00 b4 24 e7 00 81 b1 d0 ba 07 7f 01 e6 00",
        ),
        (lambda t: wire.cam_job_stop(0x1234, 103, 2002500000), "10 09 00 00 00 b4 24 e7 00 a0 f3 ee ba 07"),
        # E11 visual
        (
            lambda t: wire.visual(t, "frame0", IMG),
            "05 15 00 00 00 c8 ac 94 85 a8 19 66 72 61 6d 65 30 00 89 50 4e 47 0d 0a 1a 0a",
        ),
    ],
)
def test_spec_v5_examples(encode, expected):
    """Spec section 7 (E1-E11): the time field of each example is fed back in."""
    data = h(expected)
    t = sleb(data, 5)[0] if data[0] in TIMED_CODES and data[:8] != b"ANNOTATE" else None
    assert encode(t).hex(" ") == data.hex(" ")


@pytest.mark.parametrize(
    "value, bits, expected",
    [
        (1234, 32, "d2 09"),
        (-5, 32, "7b"),
        (-1, 32, "7f"),
        (0xFFFFFFFF, 32, "7f"),
        (4660, 32, "b4 24"),
        (100, 32, "e4 00"),
        (12201, 32, "a9 df 00"),
        (3000000000, 64, "80 bc c1 96 0b"),
        (3000000000, 32, "80 bc c1 96 7b"),
        (1000000000, 64, "80 94 eb dc 03"),
        (63, 32, "3f"),
        (64, 32, "c0 00"),
        (-64, 32, "40"),
        (-65, 32, "bf 7f"),
        (2**31 - 1, 32, "ff ff ff ff 07"),
        (2**63 - 1, 64, "ff" * 8 + " ff 00"),
        (-(2**63), 64, "80" * 9 + " 7f"),
    ],
)
def test_packed_integers(value, bits, expected):
    enc = wire.packed32 if bits == 32 else wire.packed64
    assert enc(value) == h(expected)
    if bits == 32:
        assert wire.p32(value) == h(expected)


def test_timestamp_fast_path_matches_generic_encoder():
    import random

    rnd = random.Random(7)
    values = [0, 1, 63, 64, 2**14 - 1, 2**14, 2**14 + 5, 2**20, 2**28 - 1, 2**28, 2**28 + 1, 2**62, 2**63 - 1]
    values += [2**63, 2**64 - 1, -1, -(2**40)]
    values += [rnd.randrange(0, 2**63) for _ in range(2000)] + [rnd.randrange(0, 2**42) for _ in range(2000)]
    for v in values:
        assert wire.ptime(v) == wire.packed64(v), v
        assert wire.ptime(v) == wire.ptime(v)  # second call goes through the cache


def test_colours_and_rgb():
    assert wire.color_bytes(wire.RED) == h("ff 00 00 1b")
    assert wire.color_bytes(wire.GREEN) == h("00 ff 00 1b")
    assert wire.color_bytes(wire.BLUE) == h("00 00 ff 1b")
    assert wire.color_bytes(wire.COLOR_T4) == h("00 00 00 04")
    assert wire.rgb(0xFF, 0, 0) == wire.RED
    assert wire.rgb(0x55, 0x55, 0x55) == wire.DKGRAY
    assert wire.color_bytes(wire.rgb(1, 2, 3)) == h("01 02 03 1b")


def test_long_bodies_and_nul_terminated_fields():
    long = "x" * 300
    msg = wire.text(2**40, 0, long)
    assert msg[:5] == bytes([1]) + (len(msg) - 5).to_bytes(4, "little")
    assert msg.endswith(long.encode())
    # a NUL inside a NUL-terminated field is cut there, as strlen() would
    assert wire.visual(2**40, "a\0b", b"IMG").endswith(b"a\0IMG")
    assert wire.handshake(1, 2, protocol=4, dont_mangle_keys=True) == b"ANNOTATE 4\n" + h("01000000 02000000 01")
    assert wire.text(2**40, 0, "é".encode()) == wire.text(2**40, 0, "é")
    assert wire.marker(2**40, "a\udcffb").endswith(b"a?b")  # a lone surrogate does not raise
    assert wire.marker(2**40, 42).endswith(b"42")


@pytest.mark.parametrize(
    "channel, col, s",
    [
        (3, wire.GREEN, "fire2/squeeze1x1___Convolution"),
        (3, None, None),
        (0, None, ""),
        (-5, wire.RED, "é"),
        (70000, None, "x" * 300),
        (1, wire.COLOR_T4, b"raw\0bytes"),
    ],
)
def test_prepared_text_is_the_same_message(channel, col, s):
    encode = wire.text_encoder(channel, col, s)
    for t in (0, 2**14, 2**40 + 12345, 2**63 - 1):
        assert encode(t) == (wire.text(t, channel, s) if col is None else wire.text_color(t, channel, col, s))
