"""PyTorch: one annotation per leaf module and per iteration, from forward hooks.

    import annotate, torch
    from annotate.frameworks.torch import annotate_modules

    annotate.setup(file="run.sbm")
    model = torchvision.models.squeezenet1_1().eval()
    with annotate_modules(model, "squeezenet") as marks, torch.inference_mode():
        for i in range(20):
            with marks.iteration():
                model(x)

Every leaf module (one without children) gets a forward pre-hook that starts its annotation and
a forward hook that stops it; the text is ``<qualified name>___<class name>`` (``features.0___Conv2d``).
Its block (channel, and the energy table's group) is the module it belongs to: the nearest
enclosing module that is not a plain container (``Sequential``, ``ModuleList``, ``ModuleDict``)
nor the model itself, else the leaf alone (SqueezeNet's ``features.3.squeeze`` is in the fire
module ``features.3``, ``features.0`` in its own block). On a GPU, ``torch.cuda.synchronize()`` runs before
each annotation so that it marks when the work really started and finished. Work done outside
leaf modules (``torch.flatten`` in a ``forward``) belongs to no channel annotation, and to the
previous layer with bookmarks. The hooks are removed when the ``with`` block ends (or by
:meth:`ModuleMarks.remove`); while :attr:`ModuleMarks.active` is false they send nothing.
:class:`TorchRunner` runs a model the way ``profile torch`` does (the interface of
``annotate.frameworks.caffe.CaffeRunner``); :class:`ScriptRunner` runs a TorchScript model, whose
modules cannot be hooked, from ``torch.profiler``'s operator times. ``torch`` is imported only when
a model is annotated.
"""

import contextlib
from typing import Any, Callable, Collection, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from annotate.client import Client
from annotate.conventions import layer_text
from annotate.frameworks import Layer, LayerMarks, run_isolated
from annotate.layers import color_for
from annotate.wire import now

CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")  # modules that only hold others


def _on_gpu(model: Any) -> bool:
    return any(p.is_cuda for p in model.parameters()) or any(b.is_cuda for b in model.buffers())


def leaf_blocks(model: Any, types: Optional[Mapping[str, str]] = None) -> Dict[str, Tuple[str, str]]:
    """``{leaf name: (class name, block)}`` in registration order: a leaf's block is its nearest
    enclosing module that is neither a plain container (:data:`CONTAINERS`) nor ``model``, else the
    leaf. ``types``: class names by module name where the modules' own are not the model's (an
    unflattened ``torch.export`` program: :func:`exported_types`)."""
    kinds = {name: type(module).__name__ for name, module in model.named_modules()}
    kinds.update(types or {})
    out: Dict[str, Tuple[str, str]] = {}
    for name, module in model.named_modules():
        if not name or next(iter(module.children()), None) is not None:
            continue
        block, parent = name, name.rpartition(".")[0]
        while parent:
            if kinds[parent] not in CONTAINERS:
                block = parent
                break
            parent = parent.rpartition(".")[0]
        out[name] = (kinds[name], block)
    return out


def exported_types(program: Any) -> Dict[str, str]:
    """``{module name: class name}`` of the modules an ``ExportedProgram``'s nodes came from
    (their ``nn_module_stack``), for :func:`leaf_blocks` on ``torch.export.unflatten(program)``."""
    out: Dict[str, str] = {}
    for node in program.graph.nodes:
        for path, qualified_type in node.meta.get("nn_module_stack", {}).values():
            out[path] = str(getattr(qualified_type, "__name__", qualified_type)).rpartition(".")[2]
    return out


class ModuleMarks:
    """The hooks annotating one model's leaf modules; :meth:`iteration` brackets one inference.

    ``sync`` runs before every annotation (default: ``torch.cuda.synchronize`` for a model on a GPU,
    nothing on the CPU), so that each marks when the device's work really started and finished."""

    def __init__(
        self,
        model: Any,
        network: str = "torch",
        style: str = "channels",
        client: Optional[Client] = None,
        types: Optional[Mapping[str, str]] = None,
        sync: Optional[Callable[[], None]] = None,
        hooks: bool = True,
    ) -> None:
        self.marks = LayerMarks(network, style=style, client=client, separator=".")
        self.count = 0
        self.active = True  # the hooks send their annotations
        if sync is None and _on_gpu(model):
            import torch

            sync = torch.cuda.synchronize
        self.sync = sync
        self._handles: List[Any] = []
        modules = dict(model.named_modules())
        self.layers: Tuple[Layer, ...] = tuple(
            self._hook(modules[name], self.marks.layer(name, kind, block), hooks)
            for name, (kind, block) in leaf_blocks(model, types).items()
        )

    def _hook(self, module: Any, layer: Layer, hooks: bool = True) -> Layer:
        if not hooks:  # a TorchScript model: its layers are annotated from the profiler (ScriptRunner)
            return layer
        sync = self.sync

        def pre(mod: Any, inputs: Any) -> None:
            if self.active:
                if sync is not None:
                    sync()
                layer.start()

        def post(mod: Any, inputs: Any, output: Any) -> None:
            if self.active:
                if sync is not None:
                    sync()
                layer.stop()

        self._handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
        return layer

    @contextlib.contextmanager
    def iteration(self) -> Iterator[int]:
        """``with marks.iteration():`` one inference, numbered from 0; yields its number."""
        n = self.count
        if self.sync is not None:
            self.sync()
        self.marks.iteration_start(n)
        try:
            yield n
        finally:
            if self.sync is not None:
                self.sync()
            self.marks.iteration_stop()
            self.count += 1

    def remove(self) -> None:
        """Take every hook off the model."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


@contextlib.contextmanager
def annotate_modules(
    model: Any,
    network: str = "torch",
    style: str = "channels",
    client: Optional[Client] = None,
    types: Optional[Mapping[str, str]] = None,
) -> Iterator[ModuleMarks]:
    """Annotate ``model``'s leaf modules for the duration of the ``with`` block."""
    marks = ModuleMarks(model, network, style, client, types)
    try:
        yield marks
    finally:
        marks.remove()


class TorchRunner:
    """Runs ``model(*inputs)`` under ``torch.inference_mode`` with per-leaf-module (or per-forward)
    annotations, counting iterations from 0; :attr:`output` is the last forward's output."""

    def __init__(
        self,
        model: Any,
        inputs: Sequence[Any],
        network: str = "torch",
        style: str = "channels",
        client: Optional[Client] = None,
        types: Optional[Mapping[str, str]] = None,
        sync: Optional[Callable[[], None]] = None,
        hooks: bool = True,
    ) -> None:
        import torch

        self.model, self.inputs = model, tuple(inputs)
        self.module_marks = ModuleMarks(model, network, style, client, types, sync, hooks)
        self.module_marks.active = False
        self.layers = self.module_marks.layers
        if not self.layers:
            raise ValueError("the model has no module to run")
        self.whole = self.module_marks.marks.layer(network, "Net")
        self.output: Any = None
        self._no_grad: Callable[[], Any] = torch.inference_mode

    def _forward(self) -> None:
        with self._no_grad():
            self.output = self.model(*self.inputs)

    def forward_layers(self) -> None:
        """One annotated iteration, every leaf module in its own interval."""
        marks = self.module_marks
        with marks.iteration():
            marks.active = True
            try:
                self._forward()
            finally:
                marks.active = False

    def forward_whole(self) -> None:
        """One annotated iteration, the whole forward in one interval named after the network."""
        marks = self.module_marks
        if marks.sync is not None:
            marks.sync()
        marks.marks.whole(marks.count, self.whole, self._forward, marks.sync)
        marks.count += 1

    def warm_up(self, n: int, layer_by_layer: bool = True) -> None:
        """``n`` forwards without annotations (``layer_by_layer`` has no effect: a forward is one call)."""
        for _ in range(n):
            self._forward()
        if self.module_marks.sync is not None:
            self.module_marks.sync()

    def isolate(self, seconds: float, names: Optional[Collection[str]] = None) -> Dict[str, int]:
        """Each leaf module (or those in ``names``) alone in a loop for ``seconds`` (the isolation
        method, :func:`isolate_modules`); returns the runs per module name."""
        with self._no_grad():
            return isolate_modules(self.model, self.inputs, seconds, names, self.module_marks.marks.client)

    def remove(self) -> None:
        """Take the hooks off the model."""
        self.module_marks.remove()


def isolate_modules(
    model: Any,
    inputs: Tuple[Any, ...],
    seconds: float,
    names: Optional[Collection[str]] = None,
    client: Optional[Client] = None,
) -> Dict[str, int]:
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

        runs[name] = run_isolated(layer_text(name, kind), work, seconds, client, color_for(kind))
    return runs


RUN_EVENT = "streamline-bridge iteration"  # the profiler's event around each annotated TorchScript forward


def script_types(model: Any) -> Dict[str, str]:
    """``{module name: class name}`` of a TorchScript model (its modules are all ``RecursiveScriptModule``)."""
    return {
        name: str(getattr(module, "original_name", type(module).__name__)) for name, module in model.named_modules()
    }


def _code_file(module: Any) -> str:
    """The file of a TorchScript module's class in its stack frames (``code/__torch__/pkg/mod.py``)."""
    qualified = module._c._type().qualified_name()  # __torch__.pkg.mod.Class
    return "code/" + qualified.rpartition(".")[0].replace(".", "/") + ".py"


class ScriptLeaves:
    """Which leaf module of a TorchScript model an operator ran in, from its TorchScript stack
    (``code/__torch__/<class file>.py(<line>): <method>`` frames, innermost first): from the model
    down, each frame's next inner one that is a child's class file enters that child. A call site
    (a module, its frame, the class file called) is given to that module's first child of that class
    not yet given, in registration order: exact for a traced model (each module a class of its own),
    and for a scripted one whose children of one class are called in the order they were registered."""

    def __init__(self, model: Any) -> None:
        self.children: Dict[str, List[Tuple[str, str]]] = {
            name: [
                (f"{name}.{child}" if name else child, _code_file(module)) for child, module in parent.named_children()
            ]
            for name, parent in model.named_modules()
        }
        self.calls: Dict[Tuple[str, str, str], str] = {}

    def leaf(self, stack: Sequence[str]) -> Optional[str]:
        """The leaf module an operator with this stack ran in, or None (work outside leaf modules)."""
        frames = list(reversed(stack))
        name = ""
        for outer, inner in zip(frames, frames[1:]):
            key = (name, outer, inner.partition("(")[0])
            if key not in self.calls:
                given = set(self.calls.values())
                free = [child for child, code in self.children[name] if code == key[2] and child not in given]
                if not free:
                    continue  # a method of the same module, or Python around the model
                self.calls[key] = free[0]
            name = self.calls[key]
        return name if name and not self.children[name] else None


def leaf_spans(
    leaves: ScriptLeaves, events: Sequence[Tuple[str, Sequence[str], int, int]]
) -> List[Tuple[str, int, int]]:
    """``[(leaf, start, end), ...]`` from one run's operator events ``(name, stack, start, end)`` (ns):
    consecutive operators of one leaf module (and those they call) are one interval; an operator
    outside every leaf ends the interval."""
    spans: List[Tuple[str, int, int]] = []
    current: Optional[str] = None
    for _, stack, start, end in sorted(events, key=lambda e: e[2]):
        leaf = leaves.leaf(stack)
        if leaf is not None and leaf == current:
            spans[-1] = (leaf, spans[-1][1], max(spans[-1][2], end))
        elif leaf is not None:
            spans.append((leaf, start, end))
            current = leaf
        elif spans and start >= spans[-1][2]:
            current = None
    return spans


class ScriptRunner(TorchRunner):
    """:class:`TorchRunner` for a TorchScript model (``torch.jit.script``/``trace``, saved and loaded),
    whose modules run inside one compiled graph and cannot be hooked: the annotated forwards run under
    ``torch.profiler`` (with TorchScript stacks), each leaf module's interval is made of its operators'
    times (:class:`ScriptLeaves`, :func:`leaf_spans`), and :meth:`finish` sends them placed on the
    marker clock run by run, as :class:`annotate.frameworks.onnx.OnnxRunner` does: the time taken
    right before each forward (after its ``iteration <n>`` marker) is matched to the profiler's event
    around it. No layer runs alone (no isolation method)."""

    def __init__(
        self,
        model: Any,
        inputs: Sequence[Any],
        network: str = "torch",
        style: str = "channels",
        client: Optional[Client] = None,
        sync: Optional[Callable[[], None]] = None,
    ) -> None:
        super().__init__(model, inputs, network, style, client, script_types(model), sync, hooks=False)
        self.leaves = ScriptLeaves(model)
        self._layers = {layer.name: layer for layer in self.layers}
        self._marked: List[Tuple[int, int]] = []  # (iteration, marker-clock ns right before its forward)
        self._profiler: Any = None

    def forward_layers(self) -> None:
        """One annotated iteration, profiled: its layers are annotated by :meth:`finish`."""
        import torch

        if self._profiler is None:
            self._profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], with_stack=True)
            self._profiler.__enter__()
        marks = self.module_marks
        with marks.iteration() as n:
            self._marked.append((n, now()))
            with torch.profiler.record_function(f"{RUN_EVENT} {n}"):
                self._forward()
                if marks.sync is not None:
                    marks.sync()

    def isolate(self, seconds: float, names: Optional[Collection[str]] = None) -> Dict[str, int]:
        """Not possible: a TorchScript model's modules run inside its graph."""
        raise ValueError("a TorchScript model cannot run a layer alone")

    def finish(self) -> List[str]:
        """End the profiler and annotate every leaf module of every :meth:`forward_layers` run at its
        time on the marker clock; returns warnings (runs the profile does not have)."""
        if self._profiler is None:
            return []
        self._profiler.__exit__(None, None, None)
        runs: Dict[str, Tuple[int, int]] = {}
        ops = []
        for event in self._profiler.profiler.kineto_results.events():
            try:
                name, stack = event.name(), event.stack()
            except UnicodeDecodeError:  # torch has been seen to hand a text back damaged: an event skipped
                continue
            span = (event.start_ns(), event.end_ns())
            if name.startswith(RUN_EVENT):
                runs[name] = span
            elif stack:
                ops.append((name, stack, *span))
        missing = 0
        for n, marker_ns in self._marked:
            run = runs.get(f"{RUN_EVENT} {n}")
            if run is None:
                missing += 1
                continue
            inside = [op for op in ops if run[0] <= op[2] <= run[1]]
            for leaf, start, end in leaf_spans(self.leaves, inside):
                layer = self._layers[leaf]
                layer.start(time=marker_ns + start - run[0])
                layer.stop(time=marker_ns + end - run[0])
        return (
            [
                f"the profiler recorded {len(self._marked) - missing} of {len(self._marked)} annotated runs: "
                f"{missing} have no layer times"
            ]
            if missing
            else []
        )
