"""The polled counter frames of a gatord data file: BLOCK_COUNTER (type 5) and COUNTER (type 4).

Layouts: ``apc-capture-format.md`` §6.1 and §6.5. BLOCK_COUNTER frames are decoded all at once
with numpy (:func:`~streamline_bridge.ingest.leb128.decode_run`); a construct parse of each record
header costs ~30 µs against ~0.6 µs (``python -m bench ingest``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from streamline_bridge.ingest import leb128
from streamline_bridge.ingest.apc_frames import FrameError, sleb

# --- polled counters: BLOCK_COUNTER (5) and COUNTER (4) -------------------------------------------


@dataclass
class CounterColumns:
    """Counter samples as parallel columns; ``t_rel_ns`` is relative to the capture start."""

    t_rel_ns: list[int] = field(default_factory=list)
    core: list[int] = field(default_factory=list)
    tid: list[int] = field(default_factory=list)
    key: list[int] = field(default_factory=list)
    value: list[int] = field(default_factory=list)
    errors: list[FrameError] = field(default_factory=list)  # offsets are into the walked buffer
    backwards: list[int] = field(default_factory=list)  # offsets of frames whose time went back
    blocks: list[dict[str, np.ndarray]] = field(default_factory=list)  # columns decoded in bulk

    def arrays(self) -> dict[str, np.ndarray]:
        """All samples (bulk blocks first, then the per-frame ones) as int64 arrays."""
        names = ("t_rel_ns", "core", "tid", "key", "value")
        parts = self.blocks + [{n: np.asarray(getattr(self, n), dtype=np.int64) for n in names}]
        return {n: np.concatenate([p[n] for p in parts]) for n in names}


def block_counters(buf, frames: list[int], out: CounterColumns) -> None:
    """Append the samples of the BLOCK_COUNTER frames ``frames`` (flat start/end list) to ``out``.

    Pairs ``(key, value)``: key 0 sets the time (and resets tid to 0 and core to the frame's
    core), 1 the tid, 2 the core; keys >= 3 are samples (§6.1). All frames are decoded at once
    with numpy (:func:`_block_counters_bulk`); when any frame is damaged they are decoded one by one
    instead (:func:`_block_counters_each`), which keeps the samples before the damage and reports
    it in ``out.errors``.
    """
    bulk = _block_counters_bulk(buf, frames)
    if bulk is None:
        _block_counters_each(buf, frames, out)
    else:
        columns, backwards = bulk
        out.blocks.append(columns)
        out.backwards.extend(backwards)


def _block_counters_bulk(buf, frames: list[int]) -> tuple[dict[str, np.ndarray], list[int]] | None:
    """Every BLOCK_COUNTER frame decoded together; ``None`` if any frame is not well formed."""
    if not frames:
        return {n: np.zeros(0, np.int64) for n in ("t_rel_ns", "core", "tid", "key", "value")}, []
    se = np.asarray(frames, dtype=np.int64).reshape(-1, 2)
    starts, lens = se[:, 0] + 1, se[:, 1] - se[:, 0] - 1  # after the one-byte type
    if (lens <= 0).any():
        return None
    nf, total = len(lens), int(lens.sum())
    first_byte = np.zeros(nf, np.int64)
    first_byte[1:] = np.cumsum(lens)[:-1]
    b = np.frombuffer(buf, np.uint8)[np.repeat(starts - first_byte, lens) + np.arange(total)]
    frame_of_byte = np.repeat(np.arange(nf), lens)
    if not (b[first_byte + lens - 1] < 0x80).all():  # every frame ends on a whole value
        return None
    decoded = leb128.decode_run(b)
    if decoded is None:
        return None
    vals, vend = decoded
    vframe = frame_of_byte[vend]
    counts = np.bincount(vframe, minlength=nf)
    if ((counts - 1) % 2).any():  # core, then whole pairs
        return None
    first = np.zeros(nf, np.int64)
    first[1:] = np.cumsum(counts)[:-1]
    frame_core = vals[first]
    rest = np.ones(len(vals), bool)
    rest[first] = False
    pairs = vals[rest]
    keys, values, pframe = pairs[0::2], pairs[1::2], vframe[rest][0::2]
    if (keys < 0).any():
        return None
    idx = np.arange(len(keys))
    pfirst = (first - np.arange(nf)) // 2  # index of each frame's first pair (values before it, less the cores)
    last0 = np.maximum.accumulate(np.where(keys == 0, idx, -1))
    sample = keys >= 3
    if (sample & (last0 < pfirst[pframe])).any():  # a sample before its frame's timestamp
        return None
    last1 = np.maximum.accumulate(np.where(keys == 1, idx, -1))
    last2 = np.maximum.accumulate(np.where(keys == 2, idx, -1))
    sel = np.flatnonzero(sample)
    l0, l1, l2 = last0[sel], last1[sel], last2[sel]
    columns = {
        "t_rel_ns": values[l0],
        "core": np.where(l2 > l0, values[np.maximum(l2, 0)], frame_core[pframe[sel]]),
        "tid": np.where(l1 > l0, values[np.maximum(l1, 0)], 0),
        "key": keys[sel],
        "value": values[sel],
    }
    stamps = np.flatnonzero(keys == 0)
    back = stamps[1:][np.diff(values[stamps]) < 0]
    return columns, (se[pframe[back], 0]).tolist()


def _block_counters_each(buf, frames: list[int], out: CounterColumns) -> None:
    """The frames one by one with :func:`sleb` (precise error offsets)."""
    ts_, core_, tid_, key_, val_ = (
        out.t_rel_ns.append,
        out.core.append,
        out.tid.append,
        out.key.append,
        out.value.append,
    )
    last = -(1 << 63)
    for i in range(0, len(frames), 2):
        s, e = frames[i], frames[i + 1]
        try:
            frame_core, pos = sleb(buf, s + 1)
            ts = None
            cur_core = frame_core
            tid = 0
            while pos < e:
                k, pos = sleb(buf, pos)
                v, pos = sleb(buf, pos)
                if pos > e:
                    raise FrameError("counter pair runs past the end of its frame", e)
                if k >= 3:
                    if ts is None:
                        raise FrameError(f"counter key {k:#x} before any timestamp", pos)
                    ts_(ts)
                    core_(cur_core)
                    tid_(tid)
                    key_(k)
                    val_(v)
                elif k == 0:
                    ts = v
                    if v < last:
                        out.backwards.append(s)
                    last = v
                    tid = 0
                    cur_core = frame_core
                elif k == 1:
                    tid = v
                elif k == 2:
                    cur_core = v
                else:
                    raise FrameError(f"negative counter key {k}", pos)
        except FrameError as exc:
            out.errors.append(FrameError(f"BLOCK_COUNTER frame at {s}: {exc}", exc.offset))


def counter_messages(buf, frames: list[int], out: CounterColumns) -> None:
    """Append the samples of COUNTER frames (``time, core, key, value`` repeated, §6.5) to ``out``."""
    last = -(1 << 63)
    for i in range(0, len(frames), 2):
        s, e = frames[i], frames[i + 1]
        pos = s + 1
        try:
            while pos < e:
                t, pos = sleb(buf, pos)
                c, pos = sleb(buf, pos)
                k, pos = sleb(buf, pos)
                v, pos = sleb(buf, pos)
                if pos > e:
                    raise FrameError("counter message runs past the end of its frame", e)
                if t < last:
                    out.backwards.append(s)
                last = t
                out.t_rel_ns.append(t)
                out.core.append(c)
                out.tid.append(0)
                out.key.append(k)
                out.value.append(v)
        except FrameError as exc:
            out.errors.append(FrameError(f"COUNTER frame at {s}: {exc}", exc.offset))
