"""The PyTorch adapter: every leaf module of a small model gets its interval in every iteration, in
execution order, read back through ingest; the hooks come off again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from annotate import Client
from streamline_bridge import ingest
from streamline_bridge.energy.intervals import find_intervals

torch = pytest.importorskip("torch")

from annotate.frameworks.torch import annotate_modules  # noqa: E402

LEAVES = [
    ("features.0", "Conv2d"),
    ("features.1", "ReLU"),
    ("features.2", "MaxPool2d"),
    ("head.0", "Flatten"),
    ("head.1", "Linear"),
    ("head.2", "Softmax"),
]


def small_model():
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Module()
    model.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    model.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 4 * 4, 10), nn.Softmax(dim=1))
    model.forward = lambda x: model.head(model.features(x))
    return model.eval()


@pytest.mark.parametrize("style", ["channels", "markers"])
def test_every_leaf_module_has_its_interval_in_order(tmp_path: Path, style: str) -> None:
    model = small_model()
    log = tmp_path / "torch.sbm"
    client = Client(file=log, gatord=False)
    x = torch.ones(1, 3, 8, 8)
    with annotate_modules(model, "tiny", style=style, client=client) as marks, torch.no_grad():
        for i in range(3):
            with marks.iteration() as n:
                y = model(x)
            assert n == i
    client.close()
    assert y.shape == (1, 10)
    markers = ingest.read(log).markers
    iv = find_intervals(markers)
    assert iv.style == style and iv.iteration_source == "markers" and iv.warnings == []
    for i in range(3):
        part = iv.layers[iv.layers["iteration"] == i]
        assert list(zip(part["name"], part["layer_type"])) == LEAVES
        start, end = part["start_ns"].to_numpy(), part["end_ns"].to_numpy()
        assert np.all(end >= start) and np.all(start[1:] >= end[:-1])
    if style == "channels":  # a channel per block: here every leaf (their parents are Sequential), a group per network
        texts = markers[(markers["kind"] == "text") & ~markers["text"].str.startswith("iteration")]
        assert (texts["channel_name"] == texts["text"].str.split("___").str[0]).all()
        assert set(texts["group_name"]) == {"tiny"}
        assert iv.layers["group"].tolist()[: len(LEAVES)] == [name for name, _ in LEAVES]


def test_blocks_are_the_nearest_module_that_is_not_a_container() -> None:
    from annotate.frameworks.torch import leaf_blocks
    from streamline_bridge.nets.torch_squeezenet import SqueezeNet

    blocks = leaf_blocks(SqueezeNet())
    assert blocks["features.0"] == ("Conv2d", "features.0")  # its parent is a Sequential
    assert blocks["features.3.squeeze"] == ("Conv2d", "features.3")  # in fire module features.3
    assert blocks["features.12.expand3x3_activation"] == ("ReLU", "features.12")
    assert blocks["classifier.3"] == ("AdaptiveAvgPool2d", "classifier.3")
    assert len({b for _, b in blocks.values()}) == 3 + 8 + 2 + 4  # conv1 relu pool, 8 fires, 2 pools, classifier
    nn = torch.nn
    model = nn.Sequential(nn.Sequential(nn.ReLU()), nn.Linear(2, 2))
    assert leaf_blocks(model) == {"0.0": ("ReLU", "0.0"), "1": ("Linear", "1")}
    assert leaf_blocks(model, {"0": "Fire"})["0.0"] == ("ReLU", "0")  # types override the modules' classes


def test_hooks_are_removed_after_the_block(tmp_path: Path) -> None:
    model = small_model()
    log = tmp_path / "torch.sbm"
    client = Client(file=log, gatord=False)
    with annotate_modules(model, "tiny", client=client):
        pass
    with torch.no_grad():
        model(torch.ones(1, 3, 8, 8))
    client.close()
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert not log.exists() or not (ingest.read(log).markers["kind"] == "text").any()


@pytest.mark.parametrize("whole", [False, True])
def test_the_device_is_synchronised_before_every_marker(tmp_path: Path, whole: bool) -> None:
    """What a GPU run does (torch.cuda.synchronize before each marker), with a sync that records when it ran."""
    from annotate import now
    from annotate.frameworks.torch import TorchRunner

    synced: list[int] = []
    log = tmp_path / "sync.sbm"
    client = Client(file=log, gatord=False)
    runner = TorchRunner(
        small_model(), [torch.ones(1, 3, 8, 8)], "tiny", client=client, sync=lambda: synced.append(now())
    )
    runner.warm_up(1)
    warm = len(synced)
    for _ in range(2):
        runner.forward_whole() if whole else runner.forward_layers()
    client.close()
    m = ingest.read(log).markers
    marks = m[m["kind"].isin(["text", "end"])]["time_ns"].astype("int64").tolist()
    assert warm == 1 and len(marks) == 2 * (2 + 2 * (1 if whole else len(LEAVES)))
    events = sorted([(t, "S") for t in synced[warm:]] + [(t, "M") for t in marks])
    sequence = "".join(kind for _, kind in events)
    # a sync before every marker that follows device work: layer by layer before each one; for the
    # whole net before the iteration and net starts (consecutive, no work between) and before the ends
    assert sequence == ("SMMSMM" * 2 if whole else "SM" * (len(marks) // 2) * 2)
