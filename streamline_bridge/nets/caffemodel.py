"""The weights in a ``.caffemodel`` file, read without Caffe: ``{layer name: [blob arrays]}``.

A ``.caffemodel`` is a protocol-buffers ``NetParameter`` (caffe.proto). Only what holds weights is
read: the layers (field 100 ``layer``, or the old field 2 ``layers``), each layer's name and its
``BlobProto`` blobs, each blob's shape (``shape.dim``, or the old num/channels/height/width) and
its values (``data`` as float32, or ``double_data``). Everything else is skipped by wire type.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
NET_LAYER, NET_V1_LAYERS = 100, 2  # NetParameter
LAYER_NAME, LAYER_BLOBS = 1, 7  # LayerParameter
V1_NAME, V1_BLOBS = 4, 6  # V1LayerParameter
BLOB_NCHW = (1, 2, 3, 4)  # BlobProto num, channels, height, width (legacy shape)
BLOB_DATA, BLOB_SHAPE, BLOB_DOUBLE = 5, 7, 8
SHAPE_DIM = 1  # BlobShape


class CaffemodelError(ValueError):
    """The bytes are not a readable NetParameter."""


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise CaffemodelError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def fields(buf: memoryview) -> Iterator[tuple[int, int, object]]:
    """``(field number, wire type, value)`` of one message: an int for varints, the bytes (a
    memoryview) for length-delimited and fixed-size fields."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
            yield number, wire, value
            continue
        if wire == _LEN:
            size, pos = _varint(buf, pos)
        elif wire in (_I64, _I32):
            size = 8 if wire == _I64 else 4
        else:
            raise CaffemodelError(f"unsupported wire type {wire} (field {number})")
        if pos + size > len(buf):
            raise CaffemodelError(f"field {number} runs past the end")
        yield number, wire, buf[pos : pos + size]
        pos += size


def _ints(wire: int, value: object) -> list[int]:
    """A repeated integer field's values (packed or not)."""
    if wire == _VARINT:
        return [int(value)]  # type: ignore[call-overload]
    out, pos, view = [], 0, value
    assert isinstance(view, memoryview)
    while pos < len(view):
        number, pos = _varint(view, pos)
        out.append(number)
    return out


def _blob(buf: memoryview) -> np.ndarray:
    shape: list[int] = []
    legacy: dict[int, int] = {}
    chunks: list[np.ndarray] = []
    for number, wire, value in fields(buf):
        if number == BLOB_SHAPE and isinstance(value, memoryview):
            shape = [d for n, w, v in fields(value) if n == SHAPE_DIM for d in _ints(w, v)]
        elif number in BLOB_NCHW and wire == _VARINT:
            legacy[number] = int(value)  # type: ignore[call-overload]
        elif number in (BLOB_DATA, BLOB_DOUBLE) and isinstance(value, memoryview):
            dtype = "<f4" if number == BLOB_DATA else "<f8"
            chunks.append(np.frombuffer(value, dtype=dtype).astype(np.float32))
    data = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if not shape:
        shape = [legacy.get(n, 1) for n in BLOB_NCHW] if legacy else [data.size]
    if int(np.prod(shape)) != data.size:
        raise CaffemodelError(f"a blob of shape {shape} has {data.size} values")
    return data.reshape(shape)


def read_blobs(path: str | os.PathLike[str]) -> dict[str, list[np.ndarray]]:
    """``{layer name: [blob arrays]}`` of every layer of a ``.caffemodel`` that has blobs."""
    with open(path, "rb") as f:
        buf = memoryview(f.read())
    out: dict[str, list[np.ndarray]] = {}
    for number, _, value in fields(buf):
        if number not in (NET_LAYER, NET_V1_LAYERS) or not isinstance(value, memoryview):
            continue
        name_field, blobs_field = (LAYER_NAME, LAYER_BLOBS) if number == NET_LAYER else (V1_NAME, V1_BLOBS)
        name, blobs = "", []
        for n, _, v in fields(value):
            if n == name_field and isinstance(v, memoryview):
                name = bytes(v).decode("utf-8", "replace")
            elif n == blobs_field and isinstance(v, memoryview):
                blobs.append(_blob(v))
        if blobs:
            out[name] = blobs
    return out
