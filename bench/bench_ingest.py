"""Capture ingestion speed: a large synthetic gatord capture read by ``ingest.apc``.

The capture (built here with ``tests/apc_writer.py``'s frame layouts) is mostly PERF_DATA to
skip, plus annotation messages on 8 connections (cut into 4 KiB EXTERNAL chunks that split
messages, as gatord's reads do) and hwmon-style block counters, in a temp folder (``/dev/shm``
when it has room) that is deleted afterwards. Figures, next to the floor measured in the same
run (reading the file into memory):

* whole read: MB/s (goal >= 200 MB/s) and annotation messages/s (goal >= 1,000,000/s);
* the stages: record walk, EXTERNAL reassembly, annotation decode + markers table.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from bench.run import Result, best_of, scratch_dir
from streamline_bridge.ingest import annotation_stream, apc, apc_annotation_frames
from streamline_bridge.ingest import apc_frames as fr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

BASE = 5_000_000_000_000
CONNECTIONS = 8
CHUNK = 4096


def _record(type_: int, body: bytes, core: int | None = None) -> bytes:
    data = fr.sleb_encode(type_) + (b"" if core is None else fr.sleb_encode(core)) + body
    return len(data).to_bytes(4, "little") + data


def _streams(messages: int) -> list[bytes]:
    """One annotation stream per connection: layer texts and ends on channel 1, some markers."""
    from annotate import wire

    per = messages // CONNECTIONS
    out = []
    for c in range(CONNECTIONS):
        parts = [
            wire.handshake(1000 + c, 1000, 5),
            wire.name_group(BASE, 1, "net"),
            wire.name_channel(BASE, 1, 1, "layers"),
        ]
        t = BASE + 1_000_000 + c
        for i in range(per - 2):
            t += 1000
            if i % 50 == 49:
                parts.append(wire.marker(t, f"iteration {i // 50}"))
            elif i % 2:
                parts.append(wire.text(t, 1, ""))
            else:
                parts.append(wire.text_color(t, 1, wire.GREEN, f"fire{i % 9}/expand3x3"))
        out.append(b"".join(parts))
    return out


def generate(folder: Path, perf_mb: int, messages: int, samples: int) -> dict[str, int]:
    """Write the capture; returns its size and contents."""
    from apc_writer import CaptureWriter

    w = CaptureWriter(protocol=950)
    for k, name in ((4, "VDD_IN"), (6, "VDD_GPU"), (8, "VDD_CPU"), (10, "VDD_SOC")):
        w.counter_key(k, f"hwmon_ina3221_{k}", title="Power", name=name, units="W", multiplier="0.000001")
    w.write(folder)  # the XML files; the data file is streamed below
    head = CaptureWriter()
    head.summary(monotonic_raw=BASE, monotonic=BASE + 1000)
    streams = _streams(messages)
    chunks = [[s[i : i + CHUNK] for i in range(0, len(s), CHUNK)] for s in streams]
    n_chunks = sum(len(c) for c in chunks)
    perf_payload = os.urandom(256 * 1024)
    perf_frame = _record(fr.PERF_DATA, len(perf_payload).to_bytes(4, "little") + perf_payload, 0)
    n_perf = perf_mb * 1024 * 1024 // len(perf_frame)
    ticks = samples // 4
    steps = max(n_perf, n_chunks, ticks)
    with open(folder / "0000000000", "wb", buffering=1 << 22) as fh:
        fh.write(head.data())
        for i in range(steps):
            if i * n_perf // steps != (i + 1) * n_perf // steps:
                fh.write(perf_frame)
            for c in range(CONNECTIONS):
                lo, hi = i * len(chunks[c]) // steps, (i + 1) * len(chunks[c]) // steps
                for j in range(lo, hi):
                    fh.write(_record(fr.EXTERNAL, fr.sleb_encode(30 + c) + chunks[c][j]))
            for j in range(i * ticks // steps, (i + 1) * ticks // steps):
                body = (
                    fr.sleb_encode(0)
                    + fr.sleb_encode(j * 1_000_000)
                    + b"".join(fr.sleb_encode(k) + fr.sleb_encode(1_000_000 + 1000 * k + j % 97) for k in (4, 6, 8, 10))
                )
                fh.write(_record(fr.BLOCK_COUNTER, body, 0))
        for c in range(CONNECTIONS):
            fh.write(_record(fr.EXTERNAL, fr.sleb_encode(-1) + fr.sleb_encode(30 + c)))
    return {
        "bytes": (folder / "0000000000").stat().st_size,
        "messages": CONNECTIONS * (messages // CONNECTIONS),
        "samples": 4 * ticks,
    }


def _small_records(raw: bytes, w: fr.Walk, n: int) -> bytes:
    """The first ``n`` EXTERNAL and BLOCK_COUNTER records of the capture, back to back."""
    spans = sorted(
        zip(
            w.frames[fr.EXTERNAL][0::2] + w.frames[fr.BLOCK_COUNTER][0::2],
            w.frames[fr.EXTERNAL][1::2] + w.frames[fr.BLOCK_COUNTER][1::2],
        )
    )[:n]
    return b"".join(raw[s - 4 : e] for s, e in spans)


def _construct_walk(buf: bytes) -> int:
    """The record walk done with construct (record header + packed frame type per record)."""
    from construct import Struct

    header = Struct("length" / fr.RecordHeader, "type" / fr.Packed)
    pos = count = 0
    while pos < len(buf):
        rec = header.parse(buf[pos : pos + 16])
        pos += 4 + rec.length
        count += 1
    return count


def run(quick: bool) -> list[Result]:
    perf_mb, messages, samples = (50, 100_000, 10_000) if quick else (520, 1_000_000, 100_000)
    folder = scratch_dir("bench_ingest_", perf_mb << 20) / "big.apc"
    try:
        info = generate(folder, perf_mb, messages, samples)
        data_file = folder / "0000000000"
        mb = info["bytes"] / 1e6

        def floor() -> None:
            buf = bytearray(1 << 24)
            with open(data_file, "rb", buffering=0) as fh:
                while fh.readinto(buf):
                    pass

        t_floor = best_of(floor, 3)
        t_read = best_of(lambda: apc.read_capture(folder), 2)
        rec = apc.read_capture(folder).recording
        assert len(rec.markers) == info["messages"], (len(rec.markers), info["messages"])
        assert len(rec.power) == info["samples"] and not rec.meta.partial

        raw = data_file.read_bytes()
        t_walk = best_of(lambda: fr.walk(raw), 3)
        w = fr.walk(raw)
        t_ext = best_of(
            lambda: [s.data for s in apc_annotation_frames.external_streams(raw, w.frames[fr.EXTERNAL]).streams], 3
        )
        streams = [s.data for s in apc_annotation_frames.external_streams(raw, w.frames[fr.EXTERNAL]).streams]
        small = _small_records(raw, w, 50_000)
        n_small = _construct_walk(small)
        t_fast = best_of(lambda: fr.walk(small), 3) / n_small * 1e6
        t_construct = best_of(lambda: _construct_walk(small), 1) / n_small * 1e6
        t_dec = best_of(lambda: [annotation_stream.decode(s) for s in streams], 2)
        t_mark = best_of(
            lambda: [annotation_stream.decode(s).markers(stream=i, clock_base_ns=BASE) for i, s in enumerate(streams)],
            2,
        )
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)
    n = info["messages"]
    size = f"{mb:,.0f} MB, {n:,} messages, {info['samples']:,} samples"
    return [
        Result(
            "ingest",
            f"apc read MB/s ({size})",
            mb / t_read,
            "MB/s",
            mb / t_floor,
            "read file (floor)",
            ">= 200 MB/s",
            mb / t_read >= 200,
        ),
        Result(
            "ingest",
            "apc read annotation messages/s (whole read)",
            n / t_read,
            "msg/s",
            None,
            "",
            ">= 1,000,000/s",
            n / t_read >= 1_000_000,
        ),
        Result("ingest", "record walk MB/s", mb / t_walk, "MB/s", mb / t_floor, "read file (floor)"),
        Result(
            "ingest",
            f"record walk µs/record ({n_small:,} EXTERNAL/BLOCK_COUNTER records)",
            t_fast,
            "µs",
            t_construct,
            "construct parse per record",
        ),
        Result("ingest", "EXTERNAL reassembly MB/s of chunks", sum(map(len, streams)) / 1e6 / t_ext, "MB/s"),
        Result(
            "ingest", "annotation decode msg/s", n / t_dec, "msg/s", None, "", ">= 1,000,000/s", n / t_dec >= 1_000_000
        ),
        Result("ingest", "annotation decode + markers table msg/s", n / t_mark, "msg/s"),
    ]
