"""Annotation stream decoding speed: ``python -m bench decode [--quick]``.

One in-memory stream of mixed messages as a layer-profiling run makes them (layer text, some
coloured, ends, 64-bit counter values, batch markers), encoded with ``annotate.wire``. Measured in the
same run: the bare framing walk (the sequential floor of any decoder of this format), the full
decode (every field of every message), and decode + markers table. Goal: >= 1,000,000 messages/s
decoded (the capture reader's budget).
"""

from __future__ import annotations

from annotate import wire
from bench.run import Result, best_of
from streamline_bridge.ingest import annotation_stream

LAYERS = ("conv1", "relu_conv1", "pool1", "fire2/squeeze1x1", "fire2/expand1x1", "fire2/concat", "pool10", "prob")


def make_stream(n: int) -> bytes:
    """``n`` messages after a v5 handshake; per layer step: its text (every 4th coloured), its end, then
    a 64-bit counter value (7 steps in 8) or a batch marker."""
    t = 1_000_000_000_000
    parts = [wire.handshake(tid=4242, pid=4242, protocol=5)]
    for step in range(-(-n // 3)):
        layer = LAYERS[step % len(LAYERS)]
        parts.append(wire.text_color(t, 3, wire.GREEN, layer) if step % 4 == 0 else wire.text(t, 3, layer))
        parts.append(wire.text(t + 900, 3, ""))
        parts.append(
            wire.marker(t + 990, f"batch {step // 64}")
            if step % 8 == 7
            else wire.counter_value(t + 950, 0, 1, 3_000_000_000 + step, protocol=5)
        )
        t += 1_000
    return b"".join(parts[: n + 1])


def run(quick: bool) -> list[Result]:
    n = 100_000 if quick else 1_000_000
    repeat = 2 if quick else 3
    data = make_stream(n)
    assert len(annotation_stream.decode(data)) == n
    walk = best_of(lambda: annotation_stream.walk_frames(data, 20), repeat)
    full = best_of(lambda: annotation_stream.decode(data), repeat)
    table = best_of(lambda: annotation_stream.decode(data).markers(), repeat)
    floor = n / walk
    return [
        Result(
            "decode",
            "decode (all fields)",
            n / full,
            "msg/s",
            floor,
            "framing walk only",
            ">= 1,000,000 msg/s",
            n / full >= 1_000_000,
        ),
        Result("decode", "decode + markers table", n / table, "msg/s", floor, "framing walk only"),
        Result("decode", "stream size", len(data) / n, "bytes/msg"),
    ]
