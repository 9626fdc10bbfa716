"""Decoding packed integers (signed LEB128, as in gatord's captures and the annotation wire): the readers' one decoder.

``annotate.wire.sleb128`` is the one encoder (the standard-library client writes them). Three
ways in, one encoding: :func:`decode` reads one value (exact, any caller), :func:`decode_at`
reads one value at each of many offsets with numpy, :func:`decode_run` reads back-to-back values.
A value has at most 10 bytes; the numpy decoders wrap to int64 (:func:`to_int64` does the same for one).
"""

from __future__ import annotations

import numpy as np

MAX_BYTES = 10  # a packed64
_BIT7S = np.uint64(0x8080808080808080)


class LEB128Error(ValueError):
    """Bytes that do not hold a packed integer (or, for the callers that use it too, their layout);
    ``offset`` is relative to the buffer being decoded."""

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.message = message
        self.offset = offset


def decode(buf, pos: int, end: int | None = None) -> tuple[int, int]:
    """One value at ``buf[pos]``, not reading at or past ``end`` (default: the end of ``buf``): (value, next position).

    Raises :class:`LEB128Error` when the value runs past ``end`` or is longer than 10 bytes.
    """
    if end is None:
        end = len(buf)
    if pos >= end:
        raise LEB128Error("packed integer runs past the end", pos)
    b = buf[pos]
    if b < 0x80:
        return (b - 0x80 if b & 0x40 else b), pos + 1
    start, result, shift = pos, b & 0x7F, 7
    pos += 1
    while True:
        if pos - start >= MAX_BYTES:
            raise LEB128Error(f"packed integer longer than {MAX_BYTES} bytes", start)
        if pos >= end:
            raise LEB128Error("packed integer runs past the end", pos)
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            break
    if b & 0x40:
        result -= 1 << shift
    return result, pos


def to_int64(value: int) -> int:
    """``value`` wrapped to a signed 64-bit integer, as the numpy decoders give it."""
    return ((value + (1 << 63)) & ((1 << 64) - 1)) - (1 << 63)


def fits_int64(value: int) -> bool:
    return -(1 << 63) <= value < (1 << 63)


def u64_at(arr: np.ndarray) -> np.ndarray:
    """A view of ``arr`` whose element ``i`` is the little-endian u64 of ``arr[i:i + 8]``."""
    return np.ndarray((len(arr) - 7,), dtype="<u8", buffer=arr, strides=(1,))


def decode_at(arr: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The value at every offset ``p`` of ``arr``: (int64 values, byte counts, ok = ended within 10 bytes).

    ``arr`` must extend at least 10 bytes past any offset (pad it). Values of up to 8 bytes
    (timestamps, ids) are decoded from one 64-bit read each: the first byte without bit 7 ends the
    value, the 7-bit groups below it are packed down; longer ones (and too-long garbage) go byte by byte.
    """
    first = arr[p]
    if not (first >= 0x80).any():  # every value is one byte
        val = first.astype(np.int64)
        val -= (first & 0x40).astype(np.int64) << 1  # 0x40..0x7f are -64..-1
        return val, np.ones(len(p), np.int64), np.ones(len(p), bool)
    w = u64_at(arr)[p]
    ends = ~w & _BIT7S
    low = ends & (~ends + np.uint64(1))  # bit 7 of the last byte (0: no end within 8 bytes)
    w &= (low << np.uint64(1)) - np.uint64(1)  # drop the bytes after it
    # byte count from the float exponent of ``low`` (= 2 ** (8 n - 1)); 1 where there is no end
    n = np.maximum((low.astype(np.float64).view(np.int64) >> 52) - 1022 >> 3, 1)
    val = w & np.uint64(0x7F)
    for i in range(1, int(n.max())):
        val |= ((w >> np.uint64(8 * i)) & np.uint64(0x7F)) << np.uint64(7 * i)
    neg = (w & (low >> np.uint64(1))) != 0
    val |= np.where(neg, ~((np.uint64(1) << (7 * n).astype(np.uint64)) - np.uint64(1)), np.uint64(0))
    ok = np.ones(len(p), bool)
    longer = np.flatnonzero(low == 0)
    if len(longer):
        val[longer], n[longer], ok[longer] = _bytewise(arr, p[longer])
    return val.view(np.int64), n, ok


def _bytewise(arr: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`decode_at` one byte position at a time (any length): (uint64 bit patterns, byte counts, ok)."""
    b = arr[p]
    val = (b & 0x7F).astype(np.uint64)
    last = b
    cont = b >= 0x80
    n = np.ones(len(p), np.int64)
    k = 1
    while k < MAX_BYTES and cont.any():
        b = arr[p + k]
        val |= np.where(cont, (b & 0x7F).astype(np.uint64) << np.uint64(7 * k), np.uint64(0))
        last = np.where(cont, b, last)
        n += cont
        cont &= b >= 0x80
        k += 1
    neg = ((last & 0x40) != 0) & (n < MAX_BYTES)
    if neg.any():
        shift = (7 * np.minimum(n, 9)).astype(np.uint64)
        val |= np.where(neg, ~((np.uint64(1) << shift) - np.uint64(1)), np.uint64(0))
    return val, n, ~cont


def decode_run(b: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``b`` (uint8) as back-to-back values: (int64 values, index of each value's last byte).

    ``None`` when ``b`` does not end on a whole value or a value needs 10 bytes (left to :func:`decode`).
    """
    term = b < 0x80
    if not len(b) or not term[-1]:
        return None
    vend = np.flatnonzero(term)
    vstart = np.empty_like(vend)
    vstart[0] = 0
    vstart[1:] = vend[:-1] + 1
    nbytes = vend - vstart + 1
    if (nbytes >= MAX_BYTES).any():
        return None
    k = np.arange(len(b), dtype=np.int64) - np.repeat(vstart, nbytes)
    contrib = (b & 0x7F).astype(np.uint64) << (7 * k).astype(np.uint64)
    val = np.bitwise_or.reduceat(contrib, vstart)
    neg = (b[vend] & 0x40) != 0
    sign = ~((np.uint64(1) << (7 * nbytes).astype(np.uint64)) - np.uint64(1))
    val |= np.where(neg, sign, np.uint64(0))
    return val.view(np.int64), vend
