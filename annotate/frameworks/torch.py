"""PyTorch: one annotation per leaf module and per iteration, from forward hooks.

    import annotate, torch
    from annotate.frameworks.torch import annotate_modules

    annotate.setup(file="run.sbm")
    model = torchvision.models.squeezenet1_1().eval()
    with annotate_modules(model, "squeezenet") as marks, torch.no_grad():
        for i in range(20):
            with marks.iteration():
                model(x)

Every leaf module (one without children) gets a forward pre-hook that starts its annotation and
a forward hook that stops it; the text is ``<qualified name>___<class name>`` (``features.0___Conv2d``),
the block is the name before the first ``.``. On a GPU, ``torch.cuda.synchronize()`` runs before
each annotation so that it marks when the work really started and finished. Work done outside
leaf modules (``torch.flatten`` in a ``forward``) belongs to no channel annotation, and to the
previous layer with bookmarks. The hooks are removed when the ``with`` block ends (or by
:meth:`ModuleMarks.remove`). ``torch`` is imported only when a model on a GPU is annotated.
"""

import contextlib
from typing import Any, Collection, Dict, Iterator, List, Optional, Tuple

from annotate.client import Client
from annotate.frameworks import LayerMarks, run_isolated
from annotate.layers import color_for


def _on_gpu(model: Any) -> bool:
    return any(p.is_cuda for p in model.parameters()) or any(b.is_cuda for b in model.buffers())


class ModuleMarks:
    """The hooks annotating one model's leaf modules; :meth:`iteration` brackets one inference."""

    def __init__(self, model: Any, network: str = "torch", style: str = "channels",
                 client: Optional[Client] = None) -> None:
        self.marks = LayerMarks(network, style=style, client=client, separator=".")
        self.count = 0
        sync = None
        if _on_gpu(model):
            import torch

            sync = torch.cuda.synchronize
        self._sync = sync
        self._handles: List[Any] = []
        for name, module in model.named_modules():
            if name and next(iter(module.children()), None) is None:
                self._hook(module, self.marks.layer(name, type(module).__name__))

    def _hook(self, module: Any, layer: Any) -> None:
        marks, sync = self.marks, self._sync

        def pre(mod: Any, inputs: Any) -> None:
            if sync is not None:
                sync()
            marks.start(layer)

        def post(mod: Any, inputs: Any, output: Any) -> None:
            if sync is not None:
                sync()
            marks.stop(layer)

        self._handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]

    @contextlib.contextmanager
    def iteration(self) -> Iterator[int]:
        """``with marks.iteration():`` one inference, numbered from 0; yields its number."""
        n = self.count
        if self._sync is not None:
            self._sync()
        self.marks.iteration_start(n)
        try:
            yield n
        finally:
            if self._sync is not None:
                self._sync()
            self.marks.iteration_stop()
            self.count += 1

    def remove(self) -> None:
        """Take every hook off the model."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


@contextlib.contextmanager
def annotate_modules(model: Any, network: str = "torch", style: str = "channels",
                     client: Optional[Client] = None) -> Iterator[ModuleMarks]:
    """Annotate ``model``'s leaf modules for the duration of the ``with`` block."""
    marks = ModuleMarks(model, network, style, client)
    try:
        yield marks
    finally:
        marks.remove()


def isolate_modules(model: Any, inputs: Tuple[Any, ...], seconds: float, names: Optional[Collection[str]] = None,
                    client: Optional[Client] = None) -> Dict[str, int]:
    """The isolation method: each leaf module (or those in ``names``) alone in a loop for ``seconds``,
    on the inputs it gets in one forward of ``model(*inputs)`` (:func:`annotate.frameworks.run_isolated`);
    returns the runs per module name. Call it outside :func:`annotate_modules` (its hooks would
    annotate every run) and under ``torch.no_grad()``."""
    seen: Dict[str, Tuple[Any, Any]] = {}  # name -> (module, its inputs), in execution order

    def keeper(name: str) -> Any:
        def keep(mod: Any, args: Any) -> None:
            seen.setdefault(name, (mod, args))
        return keep

    handles = []
    for name, module in model.named_modules():
        if name and next(iter(module.children()), None) is None and (names is None or name in names):
            handles.append(module.register_forward_pre_hook(keeper(name)))
    try:
        model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    sync = None
    if _on_gpu(model):
        import torch

        sync = torch.cuda.synchronize
    runs = {}
    for name, (module, args) in seen.items():
        kind = type(module).__name__

        def work(module: Any = module, args: Any = args) -> None:
            module(*args)
            if sync is not None:
                sync()

        runs[name] = run_isolated(f"{name}___{kind}", work, seconds, client, color_for(kind))
    return runs
