"""Framework adapters: per-layer annotations for a network run by Caffe or PyTorch.

Both adapters emit the energy table's conventions (docs/energy-table.md) through :class:`LayerMarks`:

* ``style="channels"``: ``iteration <n>`` on the channel named ``iterations``, each layer's text
  ``name___type`` on its block's channel (``annotate.layers.ChannelMap``: a channel per block, a
  channel group per network, a colour per layer type), ended right after the layer's work;
* ``style="markers"``: bookmarks ``iteration <n>``, then one per layer (``name___type``, coloured
  by type), then ``end`` after the last layer (the SyNERGY / reference-study style).

The isolation method (``profile --method isolate``) runs each layer alone in a loop:
:func:`run_isolated` puts the loop inside one annotation, the layer's text ``name___type``, on the
channel named ``isolate`` (``annotate.conventions.ISOLATE_CHANNEL``, far above the block
channels); nothing else is sent while it runs. The energy table leaves that channel out;
``streamline_bridge.energy.isolate`` measures the settled power inside each of its intervals.

The framework itself is imported only when an adapter is used: ``annotate`` stays standard-library
only at import time. Adapters: :mod:`annotate.frameworks.caffe`, :mod:`annotate.frameworks.torch`,
:mod:`annotate.frameworks.onnx`.
"""

import functools
import threading
import time
from typing import Callable, Dict, NamedTuple, Optional

from annotate.client import Client
from annotate.conventions import END, ISOLATE_CHANNEL, ISOLATE_CHANNEL_ID, ISOLATE_GROUP, iteration_text, layer_text
from annotate.layers import ITERATIONS, ChannelMap, color_for, group_of

STYLES = ("channels", "markers")


def run_isolated(
    text: str,
    work: Callable[[], None],
    seconds: float,
    client: Optional[Client] = None,
    color: Optional[int] = None,
    min_runs: int = 3,
) -> int:
    """Run ``work`` (one layer, alone) again and again for at least ``seconds`` and ``min_runs`` runs,
    inside one annotation ``text`` on the :data:`ISOLATE_CHANNEL` channel; returns the number of runs."""
    if client is None:
        import annotate

        client = annotate.default_client()
    client.name_group(ISOLATE_GROUP, ISOLATE_CHANNEL)
    client.name_channel(ISOLATE_CHANNEL_ID, ISOLATE_GROUP, ISOLATE_CHANNEL)
    end = time.monotonic() + seconds
    runs = 0
    client.text(text, ISOLATE_CHANNEL_ID, color)
    while runs < min_runs or time.monotonic() < end:
        work()
        runs += 1
    client.end(ISOLATE_CHANNEL_ID)
    return runs


def _nothing(time: Optional[int] = None) -> None:
    pass


class Layer(NamedTuple):
    """One layer as the adapters annotate it: its text, colour and block."""

    name: str
    type: str
    text: str  # name___type
    color: int
    block: str
    channel: int  # the block's channel (style "channels"; 0 for bookmarks)
    start: Callable[..., None]  # sends the layer's start, encoded once (LayerMarks.start); time= to stamp it
    stop: Callable[..., None]  # sends its end (nothing for a bookmark, which runs to the next); time= too


class LayerMarks:
    """Emits a network's layer and iteration annotations in one of :data:`STYLES`.

    ``client`` defaults to the module-level client of :mod:`annotate`; ``separator`` splits a
    layer name into its block (``"/"`` for Caffe's ``fire2/squeeze1x1``, ``"."`` for PyTorch).
    """

    def __init__(
        self,
        network: str,
        style: str = "channels",
        client: Optional[Client] = None,
        separator: str = "/",
        group: int = 1,
    ) -> None:
        if style not in STYLES:
            raise ValueError(f"unknown annotation style {style!r} (use {' or '.join(STYLES)})")
        if client is None:
            import annotate

            client = annotate.default_client()
        self.client = client
        self.style = style
        self.separator = separator
        self.channels = ChannelMap(network, group=group, client=client, separator=separator)
        self._blocks: Dict[str, int] = {}  # block -> channel, named in self._thread
        self._thread = threading.get_ident()

    def layer(self, name: str, layer_type: str, block: Optional[str] = None) -> Layer:
        """The annotation of one layer (compute once, emit many times); ``block``: the channel it
        goes on (default: the name before the first separator)."""
        block, color = block or group_of(name, self.separator), color_for(layer_type)
        text = layer_text(name, layer_type)
        if self.style == "channels":
            channel = self._blocks[block] = self.channels.channel(block)
            return Layer(
                name,
                layer_type,
                text,
                color,
                block,
                channel,
                self.client.prepare_text(text, channel, color),
                self.client.prepare_text(None, channel),
            )
        return Layer(
            name, layer_type, text, color, block, 0, functools.partial(self.client.marker, text, color), _nothing
        )

    @staticmethod
    def start(layer: Layer) -> None:
        """The layer begins."""
        layer.start()

    @staticmethod
    def stop(layer: Layer) -> None:
        """The layer's work has finished (a bookmark runs to the next one: nothing to send)."""
        layer.stop()

    def iteration_start(self, n: int) -> None:
        """Iteration ``n`` begins (before its first layer). Channels are named per thread
        (Streamline keeps names per thread): a new thread gets them here, once."""
        if self.style == "channels":
            thread = threading.get_ident()
            if thread != self._thread:
                for block in self._blocks:
                    self.channels.channel(block)
                self._thread = thread
            self.client.text(iteration_text(n), self.channels.channel(ITERATIONS))
        else:
            self.client.marker(iteration_text(n))

    def whole(self, n: int, layer: Layer, run: Callable[[], None], sync: Optional[Callable[[], None]] = None) -> None:
        """Iteration ``n`` as one interval ``layer`` around ``run()`` (``sync()`` before it ends):
        the whole net in one call, for comparison with the layer-by-layer intervals."""
        self.iteration_start(n)
        layer.start()
        run()
        if sync is not None:
            sync()
        layer.stop()
        self.iteration_stop()

    def iteration_stop(self) -> None:
        """The iteration's last layer has finished."""
        if self.style == "channels":
            self.client.end(self.channels.channel(ITERATIONS))
        else:
            self.client.marker(END)
