"""The SqueezeNet v1.1 definition we write matches DeepScale's deploy.prototxt layer for layer."""

from __future__ import annotations

import re

from streamline_bridge.nets.squeezenet import squeezenet_v1_1

# fields that define the computation; fillers and the input shape are ours by design
FIELDS = (
    "name",
    "type",
    "bottom",
    "top",
    "num_output",
    "kernel_size",
    "stride",
    "pad",
    "pool",
    "global_pooling",
    "dropout_ratio",
)


def _layers(prototxt: str) -> list[dict[str, list[str]]]:
    blocks = re.split(r"^layer \{$", prototxt, flags=re.M)[1:]
    out = []
    for block in blocks:
        fields: dict[str, list[str]] = {}
        for key, value in re.findall(r"^\s*(\w+):\s*(\S+)\s*$", block, flags=re.M):
            if key in FIELDS:
                fields.setdefault(key, []).append(value.strip('"'))
        out.append(fields)
    return out


def test_squeezenet_v1_1_matches_upstream_deploy(shared):
    upstream = _layers((shared / "models/squeezenet_v1.1/deploy.prototxt").read_text())
    ours = _layers(squeezenet_v1_1())
    assert len(ours) == len(upstream) == 67
    assert ours == upstream


def test_input_shape_follows_arguments():
    text = squeezenet_v1_1(size=227, batch=4)
    assert "shape: { dim: 4 dim: 3 dim: 227 dim: 227 }" in text
    assert text.count('type: "xavier"') == 25 and text.count('type: "gaussian"') == 1
