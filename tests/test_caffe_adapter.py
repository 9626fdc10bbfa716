"""The Caffe adapter on the real SqueezeNet v1.1 (fp16-rounded weights) and Caffe's cat.jpg: the
classes, one interval per prototxt layer per iteration read back through ingest, whole net = layer
by layer."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from annotate import Client
from streamline_bridge import ingest
from streamline_bridge.energy.intervals import find_intervals
from streamline_bridge.nets import imagenet

pytestmark = pytest.mark.caffe
caffe = pytest.importorskip("caffe", reason="pycaffe not built (scripts/build-pycaffe.sh .venv/bin/python)")

from annotate.frameworks.caffe import CaffeRunner, net_layers  # noqa: E402

MODEL = "models/squeezenet_v1.1"
ITERATIONS = 3


def prototxt_layers(path: Path) -> list[tuple[str, str]]:
    """(name, type) of every layer of a prototxt, read with a regular expression (not with Caffe)."""
    return re.findall(r'layer\s*\{\s*name:\s*"([^"]+)"\s*type:\s*"([^"]+)"', path.read_text())


@pytest.fixture(scope="module")
def cat_net(shared: Path):
    """The deploy net at batch 1, 227x227, holding the preprocessed cat."""
    model = shared / MODEL
    net = caffe.Net(
        str(model / "deploy.prototxt"), caffe.TEST, weights=str(model / "squeezenet_v1.1.fp16-reconstructed.caffemodel")
    )
    net.blobs["data"].reshape(1, 3, 227, 227)
    net.reshape()
    net.blobs["data"].data[0] = imagenet.preprocess(imagenet.load_image(shared / "data/images/cat.jpg"), 227, 227)
    return net


def run_annotated(net, tmp_path: Path, style: str, whole: bool = False):
    log = tmp_path / f"{style}.sbm"
    client = Client(file=log, gatord=False)
    runner = CaffeRunner(net, "squeezenet", style=style, client=client)
    runner.warm_up(1)
    for _ in range(ITERATIONS):
        runner.forward_whole() if whole else runner.forward_layers()
    client.close()
    return ingest.read(log)


def test_top1_is_tabby_layer_by_layer(cat_net, shared: Path) -> None:
    labels = imagenet.read_labels(shared / "data/synset_words.txt")
    runner = CaffeRunner(cat_net, client=Client(gatord=False))
    cat_net.blobs["prob"].data[...] = 0
    runner.warm_up(1)
    top = imagenet.top_k(cat_net.blobs["prob"].data[0], labels)
    assert top[0][2] == "tabby, tabby cat" and top[0][0] == 281
    assert {t[2] for t in top[:2]} == {"tabby, tabby cat", "tiger cat"}


def test_whole_net_and_layer_by_layer_give_the_same_output(cat_net) -> None:
    runner = CaffeRunner(cat_net, client=Client(gatord=False))
    runner.warm_up(1, layer_by_layer=False)
    whole = cat_net.blobs["prob"].data.copy()
    cat_net.blobs["prob"].data[...] = 0
    runner.warm_up(1, layer_by_layer=True)
    assert whole.shape == (1, 1000, 1, 1) and whole.sum() == pytest.approx(1.0, rel=1e-4)
    np.testing.assert_allclose(cat_net.blobs["prob"].data, whole, rtol=1e-5, atol=1e-7)


def test_split_layers_run_inside_the_layer_before_them(cat_net) -> None:
    names = list(cat_net._layer_names)
    spans = {name: (first, last) for first, last, name, _ in net_layers(cat_net)}
    relu = spans["fire2/relu_squeeze1x1"]
    assert relu[1] == relu[0] + 1 and cat_net.layers[relu[1]].type == "Split"
    covered = sorted(i for first, last in spans.values() for i in range(first, last + 1))
    assert covered == list(range(1, len(names)))  # every layer but the Input runs exactly once


@pytest.mark.parametrize("style", ["channels", "markers"])
def test_every_prototxt_layer_has_its_interval_in_every_iteration(
    cat_net, shared: Path, tmp_path: Path, style: str
) -> None:
    expected = [(n, t) for n, t in prototxt_layers(shared / MODEL / "deploy.prototxt") if t != "Input"]
    assert len(expected) == 66
    rec = run_annotated(cat_net, tmp_path, style)
    iv = find_intervals(rec.markers, style="auto")
    assert iv.style == style and iv.iteration_source == "markers" and iv.warnings == []
    assert iv.iterations["label"].tolist() == [f"iteration {i}" for i in range(ITERATIONS)]
    layers = iv.layers
    for i in range(ITERATIONS):
        part = layers[layers["iteration"] == i]
        assert list(zip(part["name"], part["layer_type"])) == expected
        start, end = part["start_ns"].to_numpy(), part["end_ns"].to_numpy()
        assert np.all(end > start) and np.all(start[1:] >= end[:-1])  # in order, not overlapping
    if style == "channels":
        texts = rec.markers[rec.markers["kind"] == "text"]
        fire2 = texts[texts["text"] == "fire2/expand3x3___Convolution"]
        assert set(fire2["channel_name"]) == {"fire2"} and set(fire2["group_name"]) == {"squeezenet"}


def test_whole_net_mode_is_one_interval_per_forward(cat_net, tmp_path: Path) -> None:
    rec = run_annotated(cat_net, tmp_path, "channels", whole=True)
    iv = find_intervals(rec.markers)
    assert iv.layers["name"].tolist() == ["squeezenet"] * ITERATIONS
    assert iv.layers["layer_type"].tolist() == ["Net"] * ITERATIONS
    assert iv.layers["iteration"].tolist() == list(range(ITERATIONS))
