"""Caffe (pycaffe) layer by layer, one annotation per layer and per iteration.

    import caffe, annotate
    from annotate.frameworks.caffe import CaffeRunner

    annotate.setup(file="run.sbm")
    net = caffe.Net("deploy.prototxt", caffe.TEST, weights="model.caffemodel")
    runner = CaffeRunner(net, "squeezenet")           # style="channels" (default) or "markers"
    runner.warm_up(2)                                  # not annotated
    for _ in range(20):
        runner.forward_layers()                        # iteration <n>, then every layer in its own interval

Each layer runs alone, as ``net.forward(start=name, end=name)`` does, through the index form
``net._forward(i, i)`` (the same C++ call without ``forward``'s name look-ups and output dict), so
the annotation sits tightly around the layer's own work. The ``Input`` layer is skipped: it does
no work, the caller fills its blob; the Split layers Caffe inserts where a blob feeds several
layers run inside the interval of the layer before them (every interval is a prototxt layer). Layer types come from ``net.layers[i].type``, blocks from the
name before ``/`` (``fire2/squeeze1x1`` is in ``fire2``). :meth:`CaffeRunner.forward_whole` runs the
net in one call with one annotation per forward, for comparison.

Caffe's GPU mode runs layers asynchronously: pass ``sync`` (a function that waits for the device)
to close every annotation after the work really finished. Standard library only; pycaffe is never
imported here (the caller's ``net`` brings it).
"""

from typing import Any, Callable, Collection, Dict, List, Optional, Tuple

from annotate.client import Client
from annotate.frameworks import Layer, LayerMarks, run_isolated

NO_WORK_TYPES = ("Input",)  # layers that only hold the caller's input
PLUMBING_TYPES = ("Split",)  # layers Caffe inserts itself (a blob read by several layers)


def net_layers(net: Any) -> List[Tuple[int, int, str, str]]:
    """``(first index, last index, name, type)`` of every layer of ``net`` that does work, in execution
    order; the Split layers Caffe inserts run with the layer before them (they are not in the prototxt)."""
    out: List[Tuple[int, int, str, str]] = []
    for i, (name, layer) in enumerate(zip(net._layer_names, net.layers)):
        if layer.type in PLUMBING_TYPES and out:
            out[-1] = (out[-1][0], i, out[-1][2], out[-1][3])
        elif layer.type not in NO_WORK_TYPES:
            out.append((i, i, str(name), str(layer.type)))
    return out


class CaffeRunner:
    """Runs a ``caffe.Net`` with per-layer (or per-forward) annotations, counting iterations from 0."""

    def __init__(
        self,
        net: Any,
        network: str = "caffe",
        style: str = "channels",
        client: Optional[Client] = None,
        sync: Optional[Callable[[], None]] = None,
    ) -> None:
        self.net = net
        self.marks = LayerMarks(network, style=style, client=client, separator="/")
        self.layers: Tuple[Tuple[int, int, Layer], ...] = tuple(
            (first, last, self.marks.layer(name, kind)) for first, last, name, kind in net_layers(net)
        )
        if not self.layers:
            raise ValueError("the net has no layer to run")
        self.first, self.last = self.layers[0][0], self.layers[-1][1]
        self.whole = self.marks.layer(network, "Net")
        self.sync = sync
        self.iteration = 0

    def forward_layers(self) -> None:
        """One annotated iteration, layer by layer."""
        marks, forward, sync = self.marks, self.net._forward, self.sync
        marks.iteration_start(self.iteration)
        for first, last, layer in self.layers:
            layer.start()
            forward(first, last)
            if sync is not None:
                sync()
            layer.stop()
        marks.iteration_stop()
        self.iteration += 1

    def forward_whole(self) -> None:
        """One annotated iteration, the whole net in one call (one interval named after the network)."""
        self.marks.whole(self.iteration, self.whole, lambda: self.net._forward(self.first, self.last), self.sync)
        self.iteration += 1

    def isolate(self, seconds: float, names: Optional[Collection[str]] = None) -> Dict[str, int]:
        """Each layer (or those in ``names``) alone in a loop for ``seconds`` (the isolation method,
        :func:`annotate.frameworks.run_isolated`); returns the runs per layer name."""
        runs = {}
        for first, last, layer in self.layers:
            if names is None or layer.name in names:
                runs[layer.name] = run_isolated(
                    layer.text, self._layer_work(first, last), seconds, self.marks.client, layer.color
                )
        return runs

    def _layer_work(self, first: int, last: int) -> Callable[[], None]:
        forward, sync = self.net._forward, self.sync
        if sync is None:
            return lambda: forward(first, last)

        def work() -> None:
            forward(first, last)
            sync()

        return work

    def warm_up(self, n: int, layer_by_layer: bool = True) -> None:
        """``n`` forwards without annotations (caches, allocations, clocks settle)."""
        forward = self.net._forward
        for _ in range(n):
            if layer_by_layer:
                for first, last, _layer in self.layers:
                    forward(first, last)
            else:
                forward(self.first, self.last)
        if self.sync is not None:
            self.sync()
