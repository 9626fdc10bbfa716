"""``profile onnx [MODEL.onnx]``: an ONNX model run by onnxruntime, every node in its own interval
from onnxruntime's own profiler (``annotate.frameworks.onnx.OnnxRunner``: each run's profiled
``model_run`` placed on the marker clock by the marker taken right before that run).

``--providers`` lists execution providers in order of preference (default: onnxruntime's
default, the CPU); ``--optimization`` is the graph optimization level (default ``basic``: every
node of the model runs, and is timed, on its own; ``extended``/``all`` fuse nodes as a deployment
would, and the profile then names the fused nodes). Without a model: SqueezeNet v1.1 exported
from the project's PyTorch model (``streamline_bridge.nets.onnx_export``; ``--weights CAFFEMODEL``
as for ``profile torch``), written into the run folder as ``model.onnx``. The input: ``--input-shape``
for dimensions the model leaves open (default: 1, and ``--size``/224 for an image's height and width).
The profiler's own file is moved into the run folder (``onnxruntime_profile*.json``) at the end.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from streamline_bridge.profiling import (
    BUILTIN,
    BUILTIN_NAME,
    Session,
    _existing,
    builtin_torch_model,
    class_probabilities,
    import_framework,
    input_array,
    parse_shape,
)

OPTIONS = ("model", "weights", "size", "input_shape", "providers", "optimization", "mean", "mean_file", "preprocess")
PROFILE_PREFIX = "onnxruntime_profile"
ISOLATES = False  # onnxruntime runs a whole graph: no node alone (--method sequence only; auto means sequence)


def export_builtin(args: argparse.Namespace, path: Path) -> None:
    """SqueezeNet v1.1 from the project's PyTorch model (random or ``--weights``) as ONNX at ``path``."""
    torch = import_framework("torch", "torch")
    import_framework("onnx", "onnx")
    from streamline_bridge.nets.onnx_export import export

    size = args.size or 224
    model = builtin_torch_model(args)
    export(model, (torch.zeros(1, 3, size, size),), path, input_names=["data"])


def _shape(declared: list[Any], given: list[int] | None, size: int | None) -> list[int]:
    """The input's shape: ``--input-shape``, else the declared one with open dimensions filled."""
    if given is not None:
        return given
    image = len(declared) == 4 and declared[1] == 3
    fill = [1, 3, size or 224, size or 224] if image else [1] * len(declared)
    return [
        d if isinstance(d, int) and d > 0 and not (size and image and i >= 2) else fill[i]
        for i, d in enumerate(declared)
    ]


class OnnxSession(Session):
    session: Any = None
    feeds: Any = None
    workdir: Any = None  # the exported model and the profiler's file until finish() moves them

    def runner(self, style: str, client: Any = None) -> Any:
        from annotate.frameworks.onnx import OnnxRunner

        self.runner_ = OnnxRunner(self.session, self.feeds, self.name, style=style, client=client)
        return self.runner_

    def layer_texts(self) -> list[str]:
        return [layer.text for layer in self.runner_.layers.values()]

    def finish(self, run_dir: Path) -> list[str]:
        import shutil

        try:
            return self.runner_.finish() if self.runner_ is not None else []
        finally:
            for path in sorted(Path(self.workdir).iterdir()):
                shutil.move(str(path), run_dir / path.name)
            Path(self.workdir).rmdir()

    def probabilities(self) -> np.ndarray | None:
        out = self.runner_.output
        return class_probabilities(out[0]) if out else None


def _model_and_session(args: argparse.Namespace, ort: Any, where: Path) -> tuple[Path, Any]:
    """The model file (the built-in exported into ``where``) and its profiled session."""
    from annotate.frameworks.onnx import profiled_session
    from streamline_bridge.errors import InputError

    if args.model is None:
        model = where / "model.onnx"
        export_builtin(args, model)
    else:
        if args.weights is not None:
            raise InputError(None, "--weights is for the built-in SqueezeNet (a caffemodel); an ONNX model has its own")
        model = Path(_existing(args.model, "model") or "")
    providers = args.providers.split(",") if args.providers else None
    unknown = [p for p in providers or () if p not in ort.get_available_providers()]
    if unknown:
        raise InputError(
            None,
            f"--providers: {', '.join(unknown)} not available "
            f"(this onnxruntime has {', '.join(ort.get_available_providers())})",
        )
    try:
        return model, profiled_session(str(model), str(where / PROFILE_PREFIX), providers, args.optimization)
    except Exception as exc:  # onnxruntime raises its own kinds for a file it cannot load
        raise InputError(str(model), f"onnxruntime cannot load it: {exc}") from None


def load(args: argparse.Namespace) -> OnnxSession:
    """An onnxruntime session of ``args``' model with its input (the exported model and the
    profiler's file in a folder of their own until :meth:`OnnxSession.finish`, removed on an error)."""
    import shutil

    from streamline_bridge.errors import InputError

    ort = import_framework("onnxruntime", "onnx")
    where = Path(tempfile.mkdtemp(prefix="streamline-bridge-onnx-"))
    try:
        model, session = _model_and_session(args, ort, where)
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise InputError(str(model), f"the model has {len(inputs)} inputs: profile onnx feeds one")
        shape = _shape(list(inputs[0].shape), parse_shape(args.input_shape), args.size)
        data = input_array(args, shape)
    except BaseException:
        shutil.rmtree(where, ignore_errors=True)
        raise
    result = OnnxSession(
        BUILTIN_NAME if args.model is None else model.stem,
        args.model or BUILTIN,
        shape,
        args.model is None and args.weights is None,
        {"providers": session.get_providers(), "optimization": args.optimization, "onnxruntime": ort.__version__},
    )
    result.session, result.feeds, result.workdir = session, {inputs[0].name: data}, where
    return result
