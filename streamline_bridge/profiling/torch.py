"""``profile torch``: a PyTorch model, every leaf module in its own interval
(``annotate.frameworks.torch.TorchRunner``: forward hooks, ``torch.inference_mode``, a
``torch.cuda.synchronize()`` before every marker on a GPU), with the threads torch starts with
(``OMP_NUM_THREADS``, ``torch.set_num_threads`` in a factory) left as the user set them.

``--model`` is ``PKG.MODULE:FACTORY`` (a callable returning the model, or the model and an example
input: a tensor or a tuple of them; the current folder is searched first, as by ``python -m``), a ``torch.export`` program (``.pt2``, run unflattened so that
its modules keep their names), a whole module saved with ``torch.save``, or a TorchScript model
(``torch.jit.script``/``trace``, saved): its modules cannot be hooked, so its leaf modules' times come
from ``torch.profiler`` (``annotate.frameworks.torch.ScriptRunner``; ``--method sequence`` only). Without
``--model``: SqueezeNet v1.1 (``streamline_bridge.nets.torch_squeezenet``) with seeded random
weights, or ``--weights CAFFEMODEL`` converted layer by layer. The input: ``--input-shape``, else
the factory's example, else 1 x 3 x ``--size`` x ``--size`` (224); an image input gets the image.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import zipfile
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

OPTIONS = ("model", "weights", "size", "input_shape", "device", "mean", "mean_file", "preprocess")


def _factory(torch: Any, spec: str) -> tuple[Any, Any, str]:
    """(model, example input or None, name) from ``PKG.MODULE:FACTORY``."""
    from streamline_bridge.errors import InputError

    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path:  # a module beside the user, as `python -m` would find it
        sys.path.insert(0, os.getcwd())
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InputError(None, f"--model {spec}: cannot import it ({exc})") from None
    try:
        result = factory()
    except Exception as exc:  # the user's code: any kind
        raise InputError(None, f"--model {spec}: the factory failed: {type(exc).__name__}: {exc}") from None
    model, example = result if isinstance(result, tuple) and len(result) == 2 else (result, None)
    if not isinstance(model, torch.nn.Module):
        raise InputError(None, f"--model {spec}: the factory returned {type(model).__name__}, not a torch.nn.Module")
    return model, example, attr


def _torchscript(path: str) -> bool:
    """Whether ``path`` is a TorchScript archive (a zip holding the model's ``code/``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(part == "code" for name in archive.namelist() for part in name.split("/")[1:2])


def _saved(torch: Any, path: str) -> tuple[Any, Any, str, dict[str, str] | None]:
    """(module, example or None, name, module types) of a saved ``torch.export`` program (``.pt2``),
    a whole pickled module (``torch.save(model)``) or a TorchScript model."""
    from annotate.frameworks.torch import exported_types, script_types
    from streamline_bridge.errors import InputError

    name = Path(path).stem
    try:
        if path.endswith(".pt2"):
            program = torch.export.load(path)
            return torch.export.unflatten(program), program.example_inputs[0], name, exported_types(program)
        if _torchscript(path):
            model = torch.jit.load(path, map_location="cpu")
        else:
            model = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many kinds for a file it cannot read
        raise InputError(path, f"cannot load it as a torch.export program (.pt2) or a saved module: {exc}") from None
    if isinstance(model, torch.jit.ScriptModule):
        return model, None, name, script_types(model)
    if not isinstance(model, torch.nn.Module):
        raise InputError(path, f"holds a {type(model).__name__}, not a torch.nn.Module")
    return model, None, name, None


class TorchSession(Session):
    model_: Any = None
    inputs: Any = None
    types: Any = None

    script: bool = False  # a TorchScript model (annotated from the profiler)

    def runner(self, style: str, client: Any = None) -> Any:
        from annotate.frameworks.torch import ScriptRunner, TorchRunner

        if self.script:
            self.runner_ = ScriptRunner(self.model_, self.inputs, self.name, style=style, client=client)
        else:
            self.runner_ = TorchRunner(
                self.model_, self.inputs, self.name, style=style, client=client, types=self.types
            )
        return self.runner_

    def layer_texts(self) -> list[str]:
        return [layer.text for layer in self.runner_.layers]

    def finish(self, run_dir: Path) -> list[str]:
        if self.runner_ is None:
            return []
        self.runner_.remove()
        return self.runner_.finish() if self.script else []

    def probabilities(self) -> np.ndarray | None:
        out = self.runner_.output
        out = out[0] if isinstance(out, (tuple, list)) and out else out
        return class_probabilities(out.detach().float().cpu().numpy()) if hasattr(out, "detach") else None


def load(args: argparse.Namespace) -> TorchSession:
    """The model of ``args`` on ``--device`` with its input."""
    from annotate.frameworks.torch import leaf_blocks
    from streamline_bridge.errors import InputError

    torch = import_framework("torch", "torch")
    try:
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise InputError(None, f"--device {args.device}: this torch has no CUDA device")
    except RuntimeError as exc:
        raise InputError(None, f"--device {args.device}: {exc}") from None
    example, types = None, None
    if args.model is None:
        model, name = builtin_torch_model(args), BUILTIN_NAME
    elif args.weights is not None:
        raise InputError(None, "--weights is for the built-in SqueezeNet (a caffemodel); a factory loads its own")
    elif ":" in args.model and not Path(args.model).exists():
        model, example, name = _factory(torch, args.model)
    else:
        model, example, name, types = _saved(torch, _existing(args.model, "model") or "")
    script = isinstance(model, torch.jit.ScriptModule)
    if script and args.method != "sequence":
        if args.method != "auto":
            raise InputError(None, f"--method {args.method}: a TorchScript model cannot run a layer alone")
        args.method = "sequence"  # auto: as for profile onnx
    model = model.to(device).eval() if hasattr(model, "eval") else model.to(device)
    if not leaf_blocks(model, types):
        raise InputError(None, f"--model {args.model}: the model has no module to annotate (no leaf submodule)")
    shape = parse_shape(args.input_shape)
    if shape is None and example is not None and args.image is None:
        inputs = tuple(example) if isinstance(example, (tuple, list)) else (example,)
    else:
        shape = shape or [1, 3, args.size or 224, args.size or 224]
        inputs = (torch.from_numpy(input_array(args, shape)),)
    inputs = tuple(x.to(device) if hasattr(x, "to") else x for x in inputs)
    session = TorchSession(
        name,
        args.model or BUILTIN,
        list(getattr(inputs[0], "shape", [])),
        args.model is None and args.weights is None,
        {"device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__},
    )
    session.model_, session.inputs, session.types, session.script = model, inputs, types, script
    return session
