"""The marker conventions the energy table reads (docs/energy-table.md), declared once.

Writers (``annotate.layers``, ``annotate.frameworks``) and the reader
(``streamline_bridge.energy.intervals``) both use these names, so a convention cannot be spelled
differently on the two sides:

* a layer's text is ``name___type`` (:func:`layer_text`, :func:`split_layer_text`);
* an iteration starts with the text or bookmark ``iteration <n>`` (:func:`iteration_text`,
  :func:`iteration_number`), or any text on a channel named ``iteration`` / ``iterations``;
* bookmarks ``start`` and ``end`` only delimit (markers style);
* the isolation method's loops are intervals on the channel named ``isolate`` (:data:`ISOLATE_CHANNEL`,
  number :data:`ISOLATE_CHANNEL_ID` in group :data:`ISOLATE_GROUP`), one per layer, the text
  ``name___type``; the sequence's table leaves that channel out;
* a layer name is a path whose parts are separated by ``/`` (Caffe: ``fire2/squeeze1x1``) or ``.``
  (PyTorch module paths: ``features.3.squeeze``); its block (group) is a prefix of that path
  (:func:`name_prefix`).

Standard library only.
"""

import re
from typing import Dict, Iterable, Optional, Tuple, Union

TYPE_SEPARATOR = "___"  # name___type
ITERATION_CHANNEL = "iterations"  # the channel the adapters put iteration markers on
ITERATION_CHANNELS = ("iteration", ITERATION_CHANNEL)  # channel names whose texts start iterations
ITERATION_TEXT = re.compile(r"^\s*iteration[\s_#:=]*(\d+)\s*$", re.IGNORECASE)
START, END = "start", "end"  # bookmarks that only delimit (markers style)
DELIMITERS = (START, END)
PATH_SEPARATORS = "/."  # a layer name's parts: Caffe's fire2/squeeze1x1, PyTorch's features.3.squeeze
ISOLATE_CHANNEL = "isolate"  # the channel of the isolation phase: one interval per layer's loop
ISOLATE_CHANNEL_ID = 4000  # its number (ChannelMap hands out small ones for blocks)
ISOLATE_GROUP = 4000  # the channel group it is named in
BLOCKS_METADATA = "annotate.blocks"  # model metadata: JSON {layer name: block} (ONNX models)


def layer_text(name: str, layer_type: Optional[str]) -> str:
    """The annotation text of a layer: ``name___type``, or the name alone without a type."""
    return f"{name}{TYPE_SEPARATOR}{layer_type}" if layer_type else name


def split_layer_text(text: str) -> Tuple[str, str]:
    """``(name, type)`` of a layer's text; the type is ``""`` when the text has none."""
    name, _, layer_type = text.partition(TYPE_SEPARATOR)
    return name, layer_type


def iteration_text(n: Union[int, str]) -> str:
    """The text that starts iteration ``n`` (a number, or one as written in a marker)."""
    return f"iteration {n}"


def iteration_number(text: str) -> Optional[str]:
    """The number in an iteration text (as written), else None."""
    match = ITERATION_TEXT.match(text)
    return match.group(1) if match else None


def is_iteration_channel(channel_name: str) -> bool:
    """Whether every text on a channel of this name starts an iteration."""
    return channel_name.strip().lower() in ITERATION_CHANNELS


def is_delimiter(text: str) -> bool:
    """Whether a bookmark only delimits (``start``, ``end``)."""
    return text.strip().lower() in DELIMITERS


def name_prefix(name: str, depth: int = 1, separators: str = PATH_SEPARATORS) -> str:
    """The first ``depth`` parts of a layer name, split at any of ``separators``, with the separators
    between them kept: ``name_prefix("features.3.squeeze", 2) == "features.3"``,
    ``name_prefix("fire2/squeeze1x1") == "fire2"``. A name with ``depth`` parts or fewer is its own
    prefix, and so is a name that starts with a separator."""
    if depth < 1:
        raise ValueError(f"depth must be 1 or more, not {depth}")
    seen = 0
    for i, char in enumerate(name):
        if char in separators:
            seen += 1
            if seen == depth:
                return name[:i] if i else name
    return name


def parent_path(name: str, separators: str = PATH_SEPARATORS) -> str:
    """A layer name without its last part (``features.3.squeeze`` -> ``features.3``), ``""`` for one part."""
    cut = max(name.rfind(sep) for sep in separators)
    return name[:cut] if cut > 0 else ""


def tree_groups(names: Iterable[str], separators: str = PATH_SEPARATORS) -> Dict[str, str]:
    """``{name: group}`` from the names' tree alone (bookmarks carry no block): a layer belongs to
    its parent when that parent holds layers only (no deeper paths), else it is its own group.
    PyTorch's SqueezeNet: ``features.3.squeeze`` -> ``features.3`` (a fire module), ``features.0``
    -> ``features.0`` (``features`` also holds the fire modules), ``classifier.1`` -> ``classifier``."""
    names = list(dict.fromkeys(names))
    deep = set()  # paths with grandchildren: not a block
    for name in names:
        parent = parent_path(name, separators)
        while parent:
            parent = parent_path(parent, separators)
            if parent:
                deep.add(parent)
    out = {}
    for name in names:
        parent = parent_path(name, separators)
        out[name] = parent if parent and parent not in deep else name
    return out
