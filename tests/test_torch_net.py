"""SqueezeNet v1.1 in PyTorch (streamline_bridge.nets.torch_squeezenet) with the shared Caffe weights
converted layer by layer: the cat is a tabby with Caffe's probability, and every layer's output
agrees with Caffe's blob (where pycaffe is built). Also the .caffemodel reader on bytes built here."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from streamline_bridge.nets import imagenet
from streamline_bridge.nets.caffemodel import CaffemodelError, read_blobs

torch = pytest.importorskip("torch")

from streamline_bridge.nets.torch_squeezenet import CAFFE_LAYERS, SqueezeNet, squeezenet1_1  # noqa: E402

MODEL = "models/squeezenet_v1.1"
WEIGHTS = f"{MODEL}/squeezenet_v1.1.fp16-reconstructed.caffemodel"
# Per-layer agreement with Caffe: both compute in float32 with different convolution algorithms
# (im2col + GEMM, oneDNN), so sums come out in different orders: every blob within 1e-4 of its
# largest magnitude, the class probabilities within 1e-5.
RELATIVE_TOLERANCE = 1e-4
PROB_TOLERANCE = 1e-5


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        out.append((v & 0x7F) | (0x80 if v > 0x7F else 0))
        v >>= 7
        if not v:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _blob(values: np.ndarray, legacy: bool = False) -> bytes:
    if legacy:  # num/channels/height/width varints, data not packed
        dims = b"".join(_varint(n << 3) + _varint(d) for n, d in zip((1, 2, 3, 4), values.shape))
        data = b"".join(_varint(5 << 3 | 5) + struct.pack("<f", v) for v in values.ravel())
        return dims + data
    shape = _field(7, _field(1, b"".join(_varint(d) for d in values.shape)))
    return shape + _field(5, values.astype("<f4").tobytes())


def test_caffemodel_reader_on_built_bytes(tmp_path: Path) -> None:
    w = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2)
    b = np.array([0.5, -1.5], np.float32)
    conv = _field(1, b"conv1") + _field(2, b"Convolution") + _field(7, _blob(w)) + _field(7, _blob(b))
    relu = _field(1, b"relu1") + _field(2, b"ReLU")  # no blobs: not listed
    old = _field(4, b"fc") + _field(6, _blob(np.ones((1, 1, 2, 3), np.float32), legacy=True))  # V1 layer
    path = tmp_path / "m.caffemodel"
    path.write_bytes(_field(1, b"net") + _field(100, conv) + _field(100, relu) + _field(2, old))
    blobs = read_blobs(path)
    assert list(blobs) == ["conv1", "fc"]
    np.testing.assert_array_equal(blobs["conv1"][0], w)
    np.testing.assert_array_equal(blobs["conv1"][1], b)
    assert blobs["fc"][0].shape == (1, 1, 2, 3) and blobs["fc"][0].sum() == 6
    path.write_bytes(_field(100, conv)[:-3])
    with pytest.raises(CaffemodelError):
        read_blobs(path)


def test_torch_squeezenet_has_the_caffe_layers_shapes(shared: Path) -> None:
    blobs = read_blobs(shared / WEIGHTS)
    assert set(blobs) == set(CAFFE_LAYERS)  # every weighted Caffe layer has its module, and no other
    model = SqueezeNet()
    assert sum(p.numel() for p in model.parameters()) == 1_235_496  # LAYERS.md's total


def _cat(shared: Path, size: int = 227) -> np.ndarray:
    return imagenet.preprocess(imagenet.load_image(shared / "data/images/cat.jpg"), size, size)


def test_the_cat_is_a_tabby_with_caffes_probability(shared: Path) -> None:
    model = squeezenet1_1(caffemodel=shared / WEIGHTS)
    with torch.inference_mode():
        prob = torch.softmax(model(torch.from_numpy(_cat(shared))[None]), 1)[0].numpy()
    (index, p, label), *_ = imagenet.top_k(prob, imagenet.read_labels(shared / "data/synset_words.txt"))
    assert (index, label) == (281, "tabby, tabby cat")
    assert p == pytest.approx(0.2774, abs=2e-3)  # Caffe's (tests/test_profile.py)


def test_wrong_weights_are_refused_naming_the_layer(tmp_path: Path) -> None:
    path = tmp_path / "m.caffemodel"
    conv = _field(1, b"conv1") + _field(7, _blob(np.zeros((8, 3, 3, 3), np.float32)))
    path.write_bytes(_field(100, conv))
    with pytest.raises(ValueError, match="'conv1'"):
        squeezenet1_1(caffemodel=path)


# Caffe blob (after the in-place ReLUs) -> the module whose output it equals
def _blob_modules() -> dict[str, str]:
    out = {"conv1": "features.1", "pool1": "features.2", "conv10": "classifier.2", "pool10": "classifier.3"}
    for layer, module in CAFFE_LAYERS.items():
        if "/" in layer:
            fire = module.rsplit(".", 1)[0]
            out[layer] = f"{module}_activation"
            out[f"{layer.split('/')[0]}/concat"] = fire
    out.update({"pool3": "features.5", "pool5": "features.8"})
    return out


@pytest.mark.caffe
def test_every_layer_agrees_with_caffe(shared: Path) -> None:
    caffe = pytest.importorskip("caffe", reason="pycaffe not built (scripts/build-pycaffe.sh .venv/bin/python)")
    caffe.set_mode_cpu()
    net = caffe.Net(str(shared / MODEL / "deploy.prototxt"), caffe.TEST, weights=str(shared / WEIGHTS))
    net.blobs["data"].reshape(1, 3, 227, 227)
    net.reshape()
    x = _cat(shared)
    net.blobs["data"].data[0] = x
    net.forward()
    model = squeezenet1_1(caffemodel=shared / WEIGHTS)
    outputs: dict[str, np.ndarray] = {}
    modules = dict(model.named_modules())
    for blob, name in _blob_modules().items():
        modules[name].register_forward_hook(lambda m, i, o, blob=blob: outputs.__setitem__(blob, o.clone().numpy()))
    with torch.inference_mode():
        logits = model(torch.from_numpy(x)[None])
    assert len(outputs) == len(_blob_modules()) == 4 + 8 * 4 + 2
    for blob, ours in outputs.items():
        theirs = net.blobs[blob].data
        assert ours.shape == theirs.shape, blob
        assert np.abs(ours - theirs).max() <= RELATIVE_TOLERANCE * np.abs(theirs).max(), blob
    prob = torch.softmax(logits, 1).numpy().reshape(net.blobs["prob"].data.shape)
    assert np.abs(prob - net.blobs["prob"].data).max() <= PROB_TOLERANCE
