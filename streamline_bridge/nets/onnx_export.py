"""A PyTorch model exported to ONNX with its nodes named after the modules they come from.

The TorchScript-based exporter names a node after its module scope (``/features/features.3/squeeze/Conv``);
:func:`module_name` turns that into the module's qualified name (``features.3.squeeze``), the name
the PyTorch adapter gives the same layer, so that both frameworks' tables name layers alike. The
blocks the PyTorch adapter would use (``annotate.frameworks.torch.leaf_blocks``) go into the
model's metadata under :data:`annotate.conventions.BLOCKS_METADATA`, where the ONNX adapter reads them.
"""

from __future__ import annotations

import json
import os
from typing import Any


def module_name(node_name: str, op_type: str) -> str:
    """The qualified module name of an exported node (``/features/features.3/squeeze/Conv`` ->
    ``features.3.squeeze``); a node outside any module is named after its operator."""
    parts = node_name.strip("/").split("/")
    if parts and parts[-1].startswith(op_type):
        parts = parts[:-1]
    qualified = ""
    for part in parts:
        if qualified and part.startswith(qualified + "."):
            qualified = part  # a child of a Sequential is scoped by its qualified name already
        else:
            qualified = f"{qualified}.{part}" if qualified else part
    return qualified or op_type


def export(
    model: Any, example: tuple[Any, ...], path: str | os.PathLike[str], input_names: list[str] | None = None
) -> None:
    """Write ``model`` (run on ``example``) to ``path`` as ONNX, nodes named by :func:`module_name`,
    a repeated name numbered (``features.3_2``), the blocks in the metadata."""
    import onnx
    import torch

    from annotate.conventions import BLOCKS_METADATA
    from annotate.frameworks.torch import CONTAINERS, leaf_blocks

    torch.onnx.export(model, example, str(path), dynamo=False, input_names=input_names)
    proto = onnx.load(str(path))
    leaves = {name: block for name, (_, block) in leaf_blocks(model).items()}
    kinds = {name: type(module).__name__ for name, module in model.named_modules()}
    blocks: dict[str, str] = {}
    for node in proto.graph.node:
        base = module_name(node.name, node.op_type)
        name, k = base, 1
        while name in blocks:
            k += 1
            name = f"{base}_{k}"
        node.name = name
        blocks[name] = leaves.get(base) or (base if kinds.get(base) not in (None, *CONTAINERS) else name)
    entry = proto.metadata_props.add()
    entry.key, entry.value = BLOCKS_METADATA, json.dumps(blocks)
    onnx.save(proto, str(path))
