"""SqueezeNet v1.1 as a PyTorch module, written from the published architecture, and the shared
Caffe weights converted to it layer by layer.

The layers are those of ``streamline_bridge.nets.squeezenet`` (DeepScale's v1.1 deploy.prototxt:
conv1 3x3/2, max pools 3/2 rounding up as Caffe does, fire modules squeeze 1x1 then expand 1x1 and
3x3 concatenated, conv10, global average pooling), with the module names torchvision uses
(``features.3`` is fire2, ``features.3.squeeze`` its ``fire2/squeeze1x1``), so that torchvision
state dicts load too. The output is the 1000 logits (Caffe's ``prob`` is their softmax).

:data:`CAFFE_NAMES` maps every Caffe layer to its module (:data:`CAFFE_LAYERS` those with weights); :func:`load_caffe_weights`
copies a ``.caffemodel``'s blobs into the model (Caffe and PyTorch store convolution weights in
the same out x in x kh x kw order). Caffe's preprocessing applies (BGR, 0-255, mean subtracted:
``streamline_bridge.nets.imagenet.preprocess``).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from streamline_bridge.nets.squeezenet import FIRE_MODULES_V1_1

# a fire module's Caffe layers -> module names inside the Fire (the weighted ones first)
FIRE_PARTS = {
    "squeeze1x1": "squeeze",
    "expand1x1": "expand1x1",
    "expand3x3": "expand3x3",
    "relu_squeeze1x1": "squeeze_activation",
    "relu_expand1x1": "expand1x1_activation",
    "relu_expand3x3": "expand3x3_activation",
}
WEIGHTED_PARTS = ("squeeze1x1", "expand1x1", "expand3x3")


class Fire(nn.Module):
    """A fire module: a 1x1 squeeze, then 1x1 and 3x3 expands side by side, concatenated."""

    def __init__(self, inplanes: int, squeeze: int, expand1x1: int, expand3x3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(inplanes, squeeze, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat(
            [self.expand1x1_activation(self.expand1x1(x)), self.expand3x3_activation(self.expand3x3(x))], 1
        )


def _layout() -> tuple[list[tuple[str, Any]], dict[str, str]]:
    """The ``features`` modules in order and ``{caffe layer: module name}`` of every Caffe layer
    but the input and ``prob`` (a fire's ``concat`` is the fire module itself)."""
    mods: list[tuple[str, Any]] = [
        ("conv1", lambda: nn.Conv2d(3, 64, kernel_size=3, stride=2)),
        ("relu_conv1", lambda: nn.ReLU(inplace=True)),
        ("pool1", lambda: nn.MaxPool2d(3, 2, ceil_mode=True)),
    ]
    inplanes = 64
    for name, squeeze, expand, pool in FIRE_MODULES_V1_1:
        mods.append((name, lambda i=inplanes, s=squeeze, e=expand: Fire(i, s, e, e)))
        inplanes = 2 * expand
        if pool:
            mods.append((pool, lambda: nn.MaxPool2d(3, 2, ceil_mode=True)))
    caffe: dict[str, str] = {}
    for index, (name, _) in enumerate(mods):
        if name.startswith("fire"):
            caffe.update({f"{name}/{part}": f"features.{index}.{mod}" for part, mod in FIRE_PARTS.items()})
            caffe[f"{name}/concat"] = f"features.{index}"
        else:
            caffe[name] = f"features.{index}"
    caffe.update(
        {"drop9": "classifier.0", "conv10": "classifier.1", "relu_conv10": "classifier.2", "pool10": "classifier.3"}
    )
    return mods, caffe


CAFFE_NAMES: dict[str, str] = _layout()[1]
CAFFE_LAYERS: dict[str, str] = {
    layer: module
    for layer, module in CAFFE_NAMES.items()  # the weighted ones
    if layer in ("conv1", "conv10") or layer.split("/")[-1] in WEIGHTED_PARTS
}


class SqueezeNet(nn.Module):
    """SqueezeNet v1.1 (Iandola et al., arXiv:1602.07360)."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.features = nn.Sequential(*(make() for _, make in _layout()[0]))
        self.classifier = nn.Sequential(
            nn.Dropout(p=0.5),
            nn.Conv2d(512, num_classes, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d((1, 1)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)


def squeezenet1_1(seed: int = 0, caffemodel: str | os.PathLike[str] | None = None) -> SqueezeNet:
    """The model in eval mode: weights from ``caffemodel``, else seeded random ones."""
    torch.manual_seed(seed)
    model = SqueezeNet()
    if caffemodel is not None:
        load_caffe_weights(model, caffemodel)
    return model.eval()


def load_caffe_weights(model: SqueezeNet, caffemodel: str | os.PathLike[str]) -> None:
    """Copy every weighted layer of a SqueezeNet v1.1 ``.caffemodel`` into ``model``; ValueError
    naming the layer when one is missing or its shape differs."""
    from streamline_bridge.nets.caffemodel import read_blobs

    blobs = read_blobs(caffemodel)
    modules = dict(model.named_modules())
    with torch.no_grad():
        for layer, module_name in CAFFE_LAYERS.items():
            if layer not in blobs:
                raise ValueError(f"layer {layer!r} has no weights in the caffemodel")
            module = modules[module_name]
            for target, blob in zip((module.weight, module.bias), blobs[layer]):
                if tuple(blob.shape) != tuple(target.shape):
                    raise ValueError(
                        f"layer {layer!r}: weights of shape {blob.shape}, SqueezeNet v1.1 has {tuple(target.shape)}"
                    )
                target.copy_(torch.from_numpy(blob))
