"""``profile caffe``: a ``caffe.Net`` (``--model`` PROTOTXT, ``--weights`` CAFFEMODEL) in CPU mode,
layer by layer through ``annotate.frameworks.caffe.CaffeRunner``. Without ``--model``: SqueezeNet
v1.1 (``streamline_bridge.nets.squeezenet``) at ``--size`` (224), with ``caffe.set_random_seed(seed)``
random weights unless ``--weights`` is given."""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from streamline_bridge.profiling import BUILTIN, BUILTIN_NAME, Session, _existing, image_input

OPTIONS = ("model", "weights", "size", "mean", "mean_file")  # the framework-specific options it takes


def import_caffe() -> Any:
    """pycaffe in CPU mode, quiet; InputError saying how to build it when it cannot be imported."""
    from streamline_bridge.errors import InputError

    os.environ.setdefault("GLOG_minloglevel", "2")  # Caffe's start-up log lines, before glog starts
    try:
        import caffe
    except ImportError as exc:
        raise InputError(
            None,
            f"pycaffe cannot be imported ({exc}): build it with "
            "'scripts/build-pycaffe.sh .venv/bin/python' (or run scripts/bootstrap.sh)",
        ) from None
    caffe.set_mode_cpu()
    return caffe


def _net_name(prototxt: str) -> str:
    """The prototxt's top-level ``name``, else its folder's name for a ``deploy.prototxt``, else its stem."""
    path = Path(prototxt)
    match = re.search(r'^name\s*:\s*"([^"]+)"', path.read_text(encoding="utf-8", errors="replace"), re.M)
    if match:
        return match.group(1)
    return path.resolve().parent.name if path.stem == "deploy" else path.stem


def load_net(caffe: Any, args: argparse.Namespace) -> tuple[Any, str]:
    """The ``caffe.Net`` to profile, reshaped to batch 1 (and ``--size``), and its name."""
    from annotate.frameworks.caffe import net_layers
    from streamline_bridge.errors import InputError
    from streamline_bridge.nets.squeezenet import squeezenet_v1_1

    weights = _existing(args.weights, "weights")
    if weights is None:
        caffe.set_random_seed(args.seed)
    if args.model is None:
        with tempfile.TemporaryDirectory() as tmp:
            prototxt = Path(tmp, "squeezenet_v1.1.prototxt")
            prototxt.write_text(squeezenet_v1_1(size=args.size or 224))
            net, name = caffe.Net(str(prototxt), caffe.TEST, weights=weights), BUILTIN_NAME
    else:
        net, name = caffe.Net(_existing(args.model, "model"), caffe.TEST, weights=weights), _net_name(args.model)
    if len(net.inputs) != 1 or len(net.blobs[net.inputs[0]].data.shape) != 4:
        raise InputError(args.model, "the net must have one 4-D input blob (N x C x H x W)")
    blob = net.blobs[net.inputs[0]]
    _, channels, height, width = blob.data.shape
    if channels != 3:
        raise InputError(args.model, f"the input has {channels} channels: an image input has 3")
    height, width = (args.size, args.size) if args.size else (height, width)
    blob.reshape(1, 3, height, width)
    net.reshape()
    if not net_layers(net):
        raise InputError(args.model, "the net has no layer to run")
    return net, name


class CaffeSession(Session):
    net: Any = None

    def runner(self, style: str, client: Any = None) -> Any:
        from annotate.frameworks.caffe import CaffeRunner

        self.runner_ = CaffeRunner(self.net, self.name, style=style, client=client)
        return self.runner_

    def layer_texts(self) -> list[str]:
        return [layer.text for _, _, layer in self.runner_.layers]

    def probabilities(self) -> np.ndarray | None:
        return np.asarray(self.net.blobs[self.net.outputs[-1]].data[0]).ravel()


def load(args: argparse.Namespace) -> CaffeSession:
    """The net of ``args`` with its input blob filled."""
    caffe = import_caffe()
    net, name = load_net(caffe, args)
    blob = net.blobs[net.inputs[0]]
    blob.data[0] = image_input(args, *blob.data.shape[2:])
    session = CaffeSession(name, args.model or BUILTIN, list(blob.data.shape), args.weights is None)
    session.net = net
    return session
