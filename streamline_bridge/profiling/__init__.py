"""The networks ``streamline-bridge profile`` runs, one module per framework, behind one interface.

:data:`FRAMEWORKS` names them; ``framework(name)`` is the module of one (:mod:`.caffe`,
:mod:`.torch`, :mod:`.onnx`): its ``OPTIONS`` are the framework options of ``profile`` it takes,
its ``load(args)`` imports the framework, loads the net and its input and returns a
:class:`Session`. ``session.runner(style)`` (after ``annotate.setup``: it names its channels at
once) returns the runner the measurement drives: ``warm_up(n, layer_by_layer)``,
``forward_layers()``, ``forward_whole()`` (the ``annotate.frameworks`` runners). Adding a framework
is one module here and its name in :data:`FRAMEWORKS`.

The input is the same for every framework: an image (``--image``, else a synthetic one)
preprocessed as Caffe's ImageNet models expect it, or as torchvision's (:func:`image_input`).
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

FRAMEWORKS = ("caffe", "torch", "onnx")
BUILTIN = "SqueezeNet v1.1 (streamline_bridge.nets, 224x224)"
BUILTIN_NAME = "SqueezeNet_v1.1"


def framework(name: str) -> ModuleType:
    """The module of framework ``name`` (one of :data:`FRAMEWORKS`)."""
    return importlib.import_module(f"streamline_bridge.profiling.{name}")


@dataclass
class Session:
    """A loaded net with its input, ready to run. Subclasses make the runner and read the output."""

    name: str  # the network's name (its channel group)
    model: str  # what was loaded, for the manifest
    input_shape: list[int]
    random_weights: bool
    info: dict[str, Any] = field(default_factory=dict)  # framework details for the manifest
    runner_: Any = None

    def runner(self, style: str, client: Any = None) -> Any:
        """The annotated runner, sending to ``client`` (default: ``annotate``'s, after ``annotate.setup``)."""
        raise NotImplementedError

    def layer_texts(self) -> list[str]:
        """The layers' annotation texts (``name___type``), in execution order."""
        raise NotImplementedError

    def finish(self, run_dir: Path) -> list[str]:
        """After the last iteration (or an interruption, or a runner that could not be made),
        before annotations shut down (files it keeps go into ``run_dir``); returns warnings."""
        return []

    def probabilities(self) -> np.ndarray | None:
        """Class probabilities of the last forward (batch item 0), None when the output is not a
        vector of class scores; scores that are not probabilities get a softmax."""
        return None


def import_framework(module: str, extra: str) -> ModuleType:
    """``import module``; InputError saying how to install it (``streamline-bridge[extra]``) when it cannot be."""
    from streamline_bridge.errors import InputError

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise InputError(
            None, f"{module} cannot be imported ({exc}): pip install 'streamline-bridge[{extra}]'"
        ) from None


def builtin_torch_model(args: argparse.Namespace) -> Any:
    """The project's PyTorch SqueezeNet v1.1: seeded random weights, or ``--weights`` converted from
    Caffe (InputError naming the file when they do not fit)."""
    from streamline_bridge.errors import InputError
    from streamline_bridge.nets.torch_squeezenet import squeezenet1_1

    try:
        return squeezenet1_1(args.seed, _existing(args.weights, "weights"))
    except ValueError as exc:  # CaffemodelError too
        raise InputError(args.weights, f"not SqueezeNet v1.1 weights: {exc}") from None


def _existing(path: str | None, what: str) -> str | None:
    from streamline_bridge.errors import InputError

    if path is not None and not Path(path).is_file():
        raise InputError(path, f"no such {what} file")
    return path


def mean(args: argparse.Namespace) -> Any:
    """The mean to subtract: ``--mean-file``'s 3 x H x W array, else ``--mean``'s three values."""
    from streamline_bridge.errors import InputError

    if args.mean_file:
        try:
            value = np.load(args.mean_file, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(args.mean_file, f"cannot read the mean array (a .npy file expected): {exc}") from None
        if value.ndim != 3 or value.shape[0] != 3:
            raise InputError(args.mean_file, f"the mean array has shape {value.shape}: expected 3 x H x W (BGR)")
        return value
    try:
        values = [float(v) for v in args.mean.split(",")]
    except ValueError:
        values = []
    if len(values) != 3:
        raise InputError(None, f"--mean {args.mean!r}: expected three numbers B,G,R")
    return values


def image_input(args: argparse.Namespace, height: int, width: int) -> np.ndarray:
    """The preprocessed image (``--image``, else the synthetic one of ``--seed``): 3 x H x W float32,
    as Caffe's ImageNet models expect it, or ``--preprocess torchvision``'s way."""
    from streamline_bridge.nets import imagenet

    rgb = imagenet.load_image(args.image) if args.image else imagenet.synthetic_image(max(height, width), args.seed)
    if getattr(args, "preprocess", None) == "torchvision":
        return imagenet.preprocess_torchvision(rgb, height, width)
    return imagenet.preprocess(rgb, height, width, mean(args))


def input_array(args: argparse.Namespace, shape: list[int] | tuple[int, ...]) -> np.ndarray:
    """The input of ``shape``: the image in every batch item for N x 3 x H x W, else seeded
    standard-normal values (with ``--image``: InputError, the input is not an image)."""
    from streamline_bridge.errors import InputError

    shape = [int(d) for d in shape]
    if len(shape) == 4 and shape[1] == 3:
        return np.broadcast_to(image_input(args, shape[2], shape[3]), shape).astype(np.float32)
    if args.image:
        raise InputError(args.image, f"the model's input {shape} is not an image (N x 3 x H x W)")
    return np.random.default_rng(args.seed).standard_normal(shape).astype(np.float32)


def parse_shape(text: str | None) -> list[int] | None:
    """``--input-shape 1,3,224,224``."""
    from streamline_bridge.errors import InputError

    if text is None:
        return None
    try:
        shape = [int(d) for d in text.replace("x", ",").split(",")]
    except ValueError:
        shape = []
    if not shape or any(d < 1 for d in shape):
        raise InputError(None, f"--input-shape {text!r}: expected sizes like 1,3,224,224")
    return shape


def class_probabilities(output: Any) -> np.ndarray | None:
    """Batch item 0 of a N x classes output as probabilities (a softmax unless they already are)."""
    scores = np.asarray(output, dtype=np.float64)
    if scores.ndim < 1 or scores.size == 0:
        return None
    first = scores.reshape(scores.shape[0], -1)[0] if scores.ndim > 1 else scores
    if first.size < 2:
        return None
    if first.min() >= 0 and abs(first.sum() - 1) < 1e-3:
        return first
    e = np.exp(first - first.max())
    return e / e.sum()
