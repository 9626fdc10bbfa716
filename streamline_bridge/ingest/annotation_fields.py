"""Vectorised decoding of the fields of many annotation messages at once (one code at a time).

:func:`decode_fields` turns the messages the framing walk found (start offsets, codes, body
lengths) into per-code columns (:class:`CodeFields`): fixed layouts of
:data:`~streamline_bridge.ingest.annotation_messages.SPECS` are decoded with numpy
(:func:`~streamline_bridge.ingest.leb128.decode_at` over arrays of start offsets); string tails
are gathered and hashed so that each distinct string is decoded once. Variable layouts and small
batches (fewer than :data:`VECTOR_MIN` messages of a code) are decoded message by message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from streamline_bridge.ingest import leb128
from streamline_bridge.ingest.annotation_messages import (
    COLOR,
    FAULTS,
    HEADER_SIZE,
    MAX_CODE,
    SPECS,
    TAIL,
    VARINT,
    Body,
    FieldError,
    Layout,
)


@dataclass
class CodeFields:
    """The decoded fields of every message of one code, as columns."""

    index: np.ndarray  # positions of these messages in their DecodedStream
    columns: dict[str, Any]  # field -> int64 array, object array of str, or list (bytes, lists)


def object_array(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


# Fewer messages of one fixed-layout code than this are decoded one by one (numpy's per-call cost
# dominates small batches, e.g. a listener's few messages per read).
VECTOR_MIN = 32


def _tails(buf: bytes, arr: np.ndarray, p: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The strings ``buf[p:ends]`` as an object array, each distinct string decoded once.

    Tails up to 32 bytes (layer names, empty ends) go through :func:`_short_tails`; longer ones
    are sliced one by one.
    """
    lengths = np.maximum(ends - p, 0)
    long_rows = np.flatnonzero(lengths > _SHORT_TAIL)
    if len(long_rows) == 0:
        return _short_tails(buf, arr, p, lengths)
    out = np.empty(len(p), dtype=object)
    rows = np.flatnonzero(lengths <= _SHORT_TAIL)
    if len(rows):
        out[rows] = _short_tails(buf, arr, p[rows], lengths[rows])
    for i in long_rows.tolist():
        out[i] = buf[p[i] : ends[i]].decode("utf-8", "replace")
    return out


def _short_tails(buf: bytes, arr: np.ndarray, ps: np.ndarray, ls: np.ndarray) -> np.ndarray:
    """Strings of at most 32 bytes: read as up to four little-endian words masked to their length,
    hashed and factorised; the grouping is verified row by row, so a hash collision only costs the
    slow path (every row decoded)."""
    u64 = leb128.u64_at(arr)
    words = [u64[ps + 8 * j] & _LOW_BYTES[np.clip(ls - 8 * j, 0, 8)] for j in range(max(1, -(-int(ls.max()) // 8)))]
    h = ls.astype(np.uint64) * _HASH_MUL
    for w in words:
        h = (h ^ w) * _HASH_MUL
    codes, uniques = pd.factorize(h)
    rep = np.empty(len(uniques), np.int64)
    rep[codes] = np.arange(len(codes))
    back = rep[codes]
    if np.array_equal(ls, ls[back]) and all(np.array_equal(w, w[back]) for w in words):
        return object_array(
            [buf[a : a + n].decode("utf-8", "replace") for a, n in zip(ps[rep].tolist(), ls[rep].tolist())]
        )[codes]
    return object_array([buf[a : a + n].decode("utf-8", "replace") for a, n in zip(ps.tolist(), ls.tolist())])


_SHORT_TAIL = 32
_HASH_MUL = np.uint64(0x9E3779B97F4A7C15)
_LOW_BYTES = np.array([(1 << (8 * n)) - 1 for n in range(9)], np.uint64)  # masks keeping the n low bytes


def _decode_layout(
    buf: bytes, arr: np.ndarray, starts: np.ndarray, ends: np.ndarray, layout: Layout
) -> tuple[dict[str, Any], np.ndarray]:
    """Fields of messages sharing a fixed layout; also per message 0 (good) or the index of its fault in FAULTS."""
    p = starts + HEADER_SIZE
    bad = np.zeros(len(p), np.int8)
    cols: dict[str, Any] = {}
    for name, kind in layout:
        if kind == VARINT:
            cols[name], n, ok = leb128.decode_at(arr, p)
            p = p + n
            bad[(bad == 0) & ~ok] = 1
        elif kind == COLOR:
            cols[name] = (
                arr[p + 3].astype(np.int64)
                | arr[p].astype(np.int64) << 8
                | arr[p + 1].astype(np.int64) << 16
                | arr[p + 2].astype(np.int64) << 24
            )
            p = p + 4
        else:
            cols[name] = _tails(buf, arr, p, ends)
        bad[(bad == 0) & (p > ends)] = 2
    return cols, bad


def decode_fields(
    buf: bytes, arr: np.ndarray, starts: np.ndarray, codes: np.ndarray, lengths: np.ndarray
) -> tuple[dict[int, CodeFields], int, str]:
    """Per-code field columns; plus the index of the first bad message (len if none) and why it is bad."""
    ends = starts + HEADER_SIZE + lengths
    out: dict[int, CodeFields] = {}
    first_bad, why = len(starts), ""
    for code in np.flatnonzero(np.bincount(codes, minlength=MAX_CODE + 1)):
        code = int(code)
        index = np.flatnonzero(codes == code)
        spec = SPECS[code]
        layout = spec.layout
        if layout is None or len(index) < VECTOR_MIN:
            rows = []
            for i in index.tolist():
                if i > first_bad:
                    break
                try:
                    rows.append(spec.read(Body(buf, int(starts[i]) + HEADER_SIZE, int(ends[i]))))
                except FieldError as exc:
                    first_bad, why = i, str(exc)
                    break
            index = index[: len(rows)]
            columns: dict[str, Any]
            if layout is None:
                columns = {k: [r[k] for r in rows] for k in rows[0]} if rows else {}
            else:  # the same column types as the vectorised path
                columns = {
                    name: object_array([r[name] for r in rows])
                    if kind == TAIL
                    else np.array([r[name] for r in rows], np.int64)
                    for name, kind in layout
                }
        else:
            columns, bad = _decode_layout(buf, arr, starts[index], ends[index], layout)
            if bad.any():
                k = int(np.argmax(bad != 0))
                if int(index[k]) < first_bad:
                    first_bad, why = int(index[k]), FAULTS[int(bad[k])]
        out[code] = CodeFields(index, columns)
    return out, first_bad, why
