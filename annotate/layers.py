"""Network structure on Streamline's timeline: stable colours per layer type, one channel per block.

Shared by the framework adapters (``annotate.frameworks``) so that every network reads the same
way in the Log view and the Timeline: a channel group per network, a channel per block (the part
of a layer name before ``/``: SqueezeNet's ``fire2/squeeze1x1`` is in block ``fire2``), and a
colour per layer type that never changes between runs or processes.

    from annotate.layers import ChannelMap
    layers = ChannelMap("squeezenet", group=1)
    for i in range(iterations):
        with layers.iteration(i):
            with layers.region("fire2/squeeze1x1", "Convolution"):
                ...

Texts follow docs/energy-table.md: ``name___type`` per layer (so ``report`` knows the type), and
``iteration <n>`` on a channel named ``iterations``.

Standard library only.
"""

import re
import threading
import zlib
from typing import Dict, Optional

from annotate.client import Client, Region
from annotate.conventions import ITERATION_CHANNEL, iteration_text, layer_text, name_prefix
from annotate.wire import Text, rgb

# One colour per kind of layer (the "tab10" palette): (kind, RGB).
PALETTE: Dict[str, int] = {
    "convolution": rgb(0x1F, 0x77, 0xB4),  # blue
    "pooling": rgb(0xFF, 0x7F, 0x0E),  # orange
    "relu": rgb(0x2C, 0xA0, 0x2C),  # green
    "concat": rgb(0x94, 0x67, 0xBD),  # purple
    "softmax": rgb(0xD6, 0x27, 0x28),  # red
    "dropout": rgb(0x7F, 0x7F, 0x7F),  # grey
    "innerproduct": rgb(0x8C, 0x56, 0x4B),  # brown
    "batchnorm": rgb(0xE3, 0x77, 0xC2),  # pink
    "lrn": rgb(0xBC, 0xBD, 0x22),  # olive
    "eltwise": rgb(0x17, 0xBE, 0xCF),  # cyan
}

# Framework spellings (lower case, letters and digits only) of each kind.
KINDS: Dict[str, str] = {
    "convolution": "convolution",
    "conv": "convolution",
    "conv1d": "convolution",
    "conv2d": "convolution",
    "conv3d": "convolution",
    "deconvolution": "convolution",
    "convtranspose2d": "convolution",
    "pooling": "pooling",
    "pool": "pooling",
    "maxpool2d": "pooling",
    "avgpool2d": "pooling",
    "adaptiveavgpool2d": "pooling",
    "adaptivemaxpool2d": "pooling",
    "maxpool1d": "pooling",
    "avgpool1d": "pooling",
    "relu": "relu",
    "relu6": "relu",
    "leakyrelu": "relu",
    "prelu": "relu",
    "concat": "concat",
    "cat": "concat",
    "softmax": "softmax",
    "logsoftmax": "softmax",
    "softmaxwithloss": "softmax",
    "dropout": "dropout",
    "innerproduct": "innerproduct",
    "linear": "innerproduct",
    "fullyconnected": "innerproduct",
    "batchnorm": "batchnorm",
    "batchnorm1d": "batchnorm",
    "batchnorm2d": "batchnorm",
    "scale": "batchnorm",
    "lrn": "lrn",
    "localresponsenorm": "lrn",
    "eltwise": "eltwise",
    "add": "eltwise",
}


def layer_kind(layer_type: str) -> str:
    """The palette kind of a framework's layer type (``"Conv2d"`` → ``"convolution"``), else the
    type in lower case with only letters and digits."""
    key = re.sub(r"[^0-9a-z]", "", layer_type.lower())
    return KINDS.get(key, key)


def color_for(layer_type: str) -> int:
    """The colour (``annotate.rgb`` constant) of a layer type: the palette's for known kinds, else
    one derived from the CRC-32 of the kind, so that it is the same in every run and process."""
    kind = layer_kind(layer_type)
    if kind in PALETTE:
        return PALETTE[kind]
    h = zlib.crc32(kind.encode("utf-8"))
    # mid-range channels: readable on Streamline's light and dark backgrounds
    return rgb(0x40 + (h & 0xFF) // 2, 0x40 + (h >> 8 & 0xFF) // 2, 0x40 + (h >> 16 & 0xFF) // 2)


def group_of(layer_name: str, separator: str = "/") -> str:
    """The block a layer belongs to: its name up to the first ``separator``, else the whole name."""
    return name_prefix(layer_name, 1, separator)


ITERATIONS = ITERATION_CHANNEL  # the channel the energy table reads iteration markers from


class ChannelMap:
    """Channels of one network: a channel per block name in one named group.

    ``channel(block)`` allocates channel numbers from ``first_channel`` in order of first use and
    sends ``name_group`` and ``name_channel`` once per thread (Streamline keeps channel names per
    thread). ``client`` defaults to the module-level client of :mod:`annotate`. ``typed``: layer
    texts are ``name___type`` (the energy table's convention), else the name alone.
    """

    def __init__(
        self,
        network: Text,
        group: int = 1,
        first_channel: int = 1,
        client: Optional[Client] = None,
        separator: str = "/",
        typed: bool = True,
    ) -> None:
        if client is None:
            import annotate

            client = annotate.default_client()
        self.client = client
        self.network = network
        self.group = group
        self.separator = separator
        self.typed = typed
        self._next = first_channel
        self._channels: Dict[str, int] = {}
        self._lock = threading.Lock()
        self._tls = threading.local()  # .named: channels named in this thread (-1 = the group)

    @property
    def channels(self) -> Dict[str, int]:
        """``{block: channel}`` allocated so far."""
        return dict(self._channels)

    def channel(self, block: str) -> int:
        """The channel of ``block`` (allocated and named in this thread on first use)."""
        ch = self._channels.get(block)
        if ch is None:
            with self._lock:
                ch = self._channels.get(block)
                if ch is None:
                    ch = self._channels[block] = self._next
                    self._next += 1
        named = getattr(self._tls, "named", None)
        if named is None:
            named = self._tls.named = set()
        if ch not in named:
            if not named:
                self.client.name_group(self.group, self.network)
            self.client.name_channel(ch, self.group, block)
            named.add(ch)
        return ch

    def region(self, layer_name: Text, layer_type: str) -> Region:
        """``with layers.region(name, type):`` the layer's text on its block's channel, in its type's colour."""
        name = layer_name.decode("utf-8", "replace") if isinstance(layer_name, bytes) else layer_name
        text = layer_text(name, layer_type if self.typed else None)
        return self.client.region(text, self.channel(group_of(name, self.separator)), color_for(layer_type))

    def iteration(self, n: int) -> Region:
        """``with layers.iteration(n):`` text ``iteration <n>`` on the ``iterations`` channel."""
        return self.client.region(iteration_text(n), self.channel(ITERATIONS))
