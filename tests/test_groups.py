"""The marker conventions declared once (annotate.conventions), and grouping layers by their names'
paths: ``prefix`` at ``/`` or ``.``, ``depth=N``, ``block`` (the adapters' channels) and ``auto``."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotate import Client
from annotate import conventions as cv
from annotate.frameworks import LayerMarks
from streamline_bridge import ingest
from streamline_bridge.cli import main
from streamline_bridge.energy.intervals import find_intervals

TORCH_NAMES = [
    ("features.0", "Conv2d", "features.0"),
    ("features.3.squeeze", "Conv2d", "features.3"),
    ("features.3.expand1x1", "Conv2d", "features.3"),
    ("features.3", "Concat", "features.3"),
    ("classifier.1", "Conv2d", "classifier.1"),
]


def test_layer_texts_and_iteration_texts_round_trip() -> None:
    assert cv.layer_text("fire2/squeeze1x1", "Convolution") == "fire2/squeeze1x1___Convolution"
    assert cv.split_layer_text("fire2/squeeze1x1___Convolution") == ("fire2/squeeze1x1", "Convolution")
    assert cv.layer_text("conv1", "") == "conv1" and cv.split_layer_text("conv1") == ("conv1", "")
    assert cv.split_layer_text("a___b___c") == ("a", "b___c")  # the first separator splits
    assert cv.iteration_number(cv.iteration_text(7)) == "7" and cv.iteration_number("Iteration #12") == "12"
    assert cv.iteration_number("iterations") is None and cv.iteration_number("conv1") is None
    assert cv.is_iteration_channel(" Iterations ") and cv.is_iteration_channel(cv.ITERATION_CHANNEL)
    assert not cv.is_iteration_channel("layers")
    assert cv.is_delimiter("End") and cv.is_delimiter(cv.START) and not cv.is_delimiter("endpoint")


@pytest.mark.parametrize(
    "name, depth, prefix",
    [
        ("fire2/squeeze1x1", 1, "fire2"),
        ("fire9/expand3x3/relu", 2, "fire9/expand3x3"),
        ("conv1", 1, "conv1"),
        ("features.3.squeeze", 1, "features"),
        ("features.3.squeeze", 2, "features.3"),
        ("features.3.squeeze", 3, "features.3.squeeze"),
        ("features.3.squeeze", 9, "features.3.squeeze"),
        ("features/features.3/squeeze", 2, "features/features"),
        ("/odd", 1, "/odd"),
    ],
)
def test_name_prefix_counts_parts_at_either_separator(name: str, depth: int, prefix: str) -> None:
    assert cv.name_prefix(name, depth) == prefix


def test_name_prefix_refuses_depth_zero() -> None:
    with pytest.raises(ValueError):
        cv.name_prefix("a.b", 0)


def _torch_like_log(tmp_path: Path, style: str = "channels") -> Path:
    """Two iterations of PyTorch-named layers through the adapters' LayerMarks, blocks given."""
    log = tmp_path / f"{style}.sbm"
    client = Client(file=log, gatord=False)
    marks = LayerMarks("net", style=style, client=client, separator=".")
    layers = [marks.layer(name, kind, block) for name, kind, block in TORCH_NAMES]
    for i in range(2):
        marks.iteration_start(i)
        for layer in layers:
            layer.start()
            layer.stop()
        marks.iteration_stop()
    client.close()
    return log


@pytest.mark.parametrize(
    "groups, expected",
    [
        (None, ["features.0", "features.3", "features.3", "features.3", "classifier.1"]),  # auto: the blocks
        ("block", ["features.0", "features.3", "features.3", "features.3", "classifier.1"]),
        ("prefix", ["features", "features", "features", "features", "classifier"]),
        ("depth=2", ["features.0", "features.3", "features.3", "features.3", "classifier.1"]),
        ("depth=3", ["features.0", "features.3.squeeze", "features.3.expand1x1", "features.3", "classifier.1"]),
        ("channel", ["net"] * 5),
        ({"features.0": "stem"}, ["stem", "features", "features", "features", "classifier"]),
    ],
)
def test_groups_of_torch_names(tmp_path: Path, groups, expected: list[str]) -> None:
    iv = find_intervals(ingest.read(_torch_like_log(tmp_path)).markers, groups=groups)
    assert iv.layers["group"].tolist() == expected * 2


def test_auto_groups_without_channels_follow_the_names_tree(tmp_path: Path) -> None:
    """Bookmarks carry no block: auto groups by the names' tree (a parent that holds layers only)."""
    markers = ingest.read(_torch_like_log(tmp_path, "markers")).markers
    tree = ["features.0", "features.3", "features.3", "features.3", "classifier"]
    assert find_intervals(markers).layers["group"].tolist()[:5] == tree
    assert find_intervals(markers, groups="tree").layers["group"].tolist()[:5] == tree
    assert find_intervals(markers, groups="depth=2").layers["group"].tolist()[:5] == [
        "features.0",
        "features.3",
        "features.3",
        "features.3",
        "classifier.1",
    ]


def test_tree_groups() -> None:
    names = ["features.0", "features.3.squeeze", "features.3.expand", "features.3", "classifier.1", "fc", "a/b.c"]
    assert cv.tree_groups(names) == {
        "features.0": "features.0",  # features also holds fire modules: not a block
        "features.3.squeeze": "features.3",
        "features.3.expand": "features.3",
        "features.3": "features.3",
        "classifier.1": "classifier",
        "fc": "fc",
        "a/b.c": "a/b",
    }
    assert cv.parent_path("features.3.squeeze") == "features.3" and cv.parent_path("conv1") == ""


@pytest.mark.parametrize("spec", ["depth=0", "depth=x", "depth=", "nonsense"])
def test_bad_group_specs_are_refused(tmp_path: Path, spec: str) -> None:
    with pytest.raises(ValueError):
        find_intervals(ingest.read(_torch_like_log(tmp_path)).markers, groups=spec)


def test_report_refuses_a_bad_depth_in_one_line(tmp_path: Path, capsys) -> None:
    log = _torch_like_log(tmp_path)
    assert main(["report", str(log), "--by", "group", "--groups", "depth=0"]) == 2
    err = capsys.readouterr().err
    assert "--groups depth=0" in err and "Traceback" not in err
