"""``annotate.layers``: stable colours per layer type, block names, one channel per block named once per thread."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from annotate import Client, rgb
from annotate.layers import PALETTE, ChannelMap, color_for, group_of, layer_kind
from conftest import ROOT
from streamline_bridge.ingest import marker_log


def test_framework_spellings_share_their_kind_and_colour() -> None:
    assert layer_kind("Convolution") == layer_kind("Conv2d") == layer_kind("conv") == "convolution"
    assert layer_kind("MaxPool2d") == layer_kind("Pooling") == "pooling"
    assert layer_kind("InnerProduct") == layer_kind("Linear") == "innerproduct"
    assert layer_kind("BatchNorm2d") == "batchnorm" and layer_kind("ReLU") == "relu"
    assert color_for("Conv2d") == color_for("Convolution") == rgb(0x1F, 0x77, 0xB4)
    assert color_for("Concat") == color_for("cat") != color_for("ReLU")
    assert len(set(PALETTE.values())) == len(PALETTE)  # every kind its own colour


def test_an_unknown_type_gets_the_same_colour_in_another_process() -> None:
    here = color_for("GroupNorm")
    assert here not in PALETTE.values() and here & 0xFF == 0x1B  # an RGB colour constant
    assert color_for("groupnorm") == color_for("Group-Norm") == here
    there = subprocess.run(
        [sys.executable, "-c", "from annotate.layers import color_for; print(color_for('GroupNorm'))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin"},
    ).stdout
    assert int(there) == here
    assert color_for("Crop") != color_for("GroupNorm")


def test_group_of_takes_the_block_before_the_first_slash() -> None:
    assert group_of("fire2/squeeze1x1") == "fire2"
    assert group_of("fire9/expand3x3/relu") == "fire9"
    assert group_of("conv1") == "conv1"
    assert group_of("/odd") == "/odd"  # no block before the slash: the whole name
    assert group_of("features.3.squeeze", separator=".") == "features"


def test_channel_map_names_group_and_channels_once_per_thread(tmp_path: Path) -> None:
    log = tmp_path / "m.sbm"
    client = Client(file=log, gatord=False, flush_interval=0)
    layers = ChannelMap("squeezenet", group=2, first_channel=10, client=client)

    def net() -> None:
        with layers.iteration(7):
            for name, kind in (
                ("conv1", "Convolution"),
                ("fire2/squeeze1x1", "Convolution"),
                ("fire2/relu_squeeze1x1", "ReLU"),
                ("fire2/concat", "Concat"),
                ("pool10", "Pooling"),
            ):
                with layers.region(name, kind):
                    pass

    net()
    net()
    worker = threading.Thread(target=net)
    worker.start()
    worker.join()
    client.close()
    assert layers.channels == {"iterations": 10, "conv1": 11, "fire2": 12, "pool10": 13}

    rec = marker_log.read(log)
    m = rec.markers
    for _tid, part in m.groupby("tid"):
        names = part[part["kind"] == "name_channel"]
        assert names["text"].tolist() == ["iterations", "conv1", "fire2", "pool10"]  # once per thread
        assert names["channel"].tolist() == [10, 11, 12, 13] and (names["group"] == 2).all()
        assert part[part["kind"] == "name_group"]["text"].tolist() == ["squeezenet"]
        texts = part[part["kind"] == "text"]
        assert len(texts) in (12, 6)  # the main thread ran the net twice, the worker once
        assert texts["text"].tolist()[:3] == ["iteration 7", "conv1___Convolution", "fire2/squeeze1x1___Convolution"]
        assert texts["channel_name"].tolist()[:6] == ["iterations", "conv1", "fire2", "fire2", "fire2", "pool10"]
        assert (texts["group_name"] == "squeezenet").all()
        fire = texts[texts["text"] == "fire2/concat___Concat"]
        assert (fire["color"] == color_for("Concat")).all() and (fire["channel"] == 12).all()
    assert m["tid"].nunique() == 2 and (m["kind"] == "text").sum() == 18
