"""SqueezeNet v1.1 as a Caffe net definition, written from the published architecture.

The layer list follows DeepScale's ``SqueezeNet_v1.1/deploy.prototxt`` (Iandola et al. 2016,
BSD-2): conv1, pool1, fire2-fire3, pool3, fire4-fire5, pool5, fire6-fire9, drop9, conv10,
global average pooling, softmax. Convolutions carry weight fillers (Xavier, and Gaussian 0.01
for conv10 as in the upstream train_val.prototxt) so that ``caffe.set_random_seed(seed)`` gives
reproducible random weights when no trained ``.caffemodel`` is supplied: timing and energy do not
depend on the weight values, classes do.
"""

from __future__ import annotations

# (name, squeeze channels, expand channels per branch, pooling layer after it or None)
FIRE_MODULES_V1_1 = (
    ("fire2", 16, 64, None),
    ("fire3", 16, 64, "pool3"),
    ("fire4", 32, 128, None),
    ("fire5", 32, 128, "pool5"),
    ("fire6", 48, 192, None),
    ("fire7", 48, 192, None),
    ("fire8", 64, 256, None),
    ("fire9", 64, 256, None),
)


def _layer(name: str, kind: str, bottoms: list[str], top: str, params: str = "") -> str:
    lines = [f'layer {{\n  name: "{name}"\n  type: "{kind}"']
    lines += [f'  bottom: "{b}"' for b in bottoms]
    lines.append(f'  top: "{top}"')
    if params:
        lines.append("  " + params.replace("\n", "\n  "))
    return "\n".join(lines) + "\n}\n"


def _conv(
    name: str, bottom: str, num_output: int, kernel: int, stride: int = 1, pad: int = 0, filler: str = 'type: "xavier"'
) -> str:
    extra = (f"\n  stride: {stride}" if stride != 1 else "") + (f"\n  pad: {pad}" if pad else "")
    params = (
        f"convolution_param {{\n  num_output: {num_output}\n  kernel_size: {kernel}{extra}\n"
        f'  weight_filler {{ {filler} }}\n  bias_filler {{ type: "constant" value: 0 }}\n}}'
    )
    return _layer(name, "Convolution", [bottom], name, params)


def _relu(name: str, blob: str) -> str:
    return _layer(name, "ReLU", [blob], blob)


def _max_pool(name: str, bottom: str) -> str:
    return _layer(name, "Pooling", [bottom], name, "pooling_param {\n  pool: MAX\n  kernel_size: 3\n  stride: 2\n}")


def squeezenet_v1_1(size: int = 224, batch: int = 1) -> str:
    """The prototxt text of SqueezeNet v1.1 for a ``batch`` x 3 x ``size`` x ``size`` input."""
    out = [
        "# SqueezeNet v1.1 (Iandola et al., arXiv:1602.07360), written by streamline-bridge\n",
        'name: "SqueezeNet_v1.1"\n',
        _layer(
            "data", "Input", [], "data", f"input_param {{ shape: {{ dim: {batch} dim: 3 dim: {size} dim: {size} }} }}"
        ),
        _conv("conv1", "data", 64, 3, stride=2),
        _relu("relu_conv1", "conv1"),
        _max_pool("pool1", "conv1"),
    ]
    blob = "pool1"
    for fire, squeeze, expand, pool in FIRE_MODULES_V1_1:
        s, e1, e3 = f"{fire}/squeeze1x1", f"{fire}/expand1x1", f"{fire}/expand3x3"
        out += [
            _conv(s, blob, squeeze, 1),
            _relu(f"{fire}/relu_squeeze1x1", s),
            _conv(e1, s, expand, 1),
            _relu(f"{fire}/relu_expand1x1", e1),
            _conv(e3, s, expand, 3, pad=1),
            _relu(f"{fire}/relu_expand3x3", e3),
            _layer(f"{fire}/concat", "Concat", [e1, e3], f"{fire}/concat"),
        ]
        blob = f"{fire}/concat"
        if pool:
            out.append(_max_pool(pool, blob))
            blob = pool
    out += [
        _layer("drop9", "Dropout", [blob], blob, "dropout_param {\n  dropout_ratio: 0.5\n}"),
        _conv("conv10", blob, 1000, 1, filler='type: "gaussian" mean: 0.0 std: 0.01'),
        _relu("relu_conv10", "conv10"),
        _layer("pool10", "Pooling", ["conv10"], "pool10", "pooling_param {\n  pool: AVE\n  global_pooling: true\n}"),
        _layer("prob", "Softmax", ["pool10"], "prob"),
    ]
    return "".join(out)
