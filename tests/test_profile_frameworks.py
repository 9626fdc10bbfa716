"""``profile torch`` and ``profile onnx`` end to end on a fake Jetson TX1 sensor tree (the run folder,
the table, ``report --by group`` one row per fire module), and the ONNX adapter's placement of the
profiler's node times on the marker clock, checked against a profile written here."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from annotate import Client
from conftest import ROOT
from fake_sysfs import TX1_BASES
from streamline_bridge import ingest
from streamline_bridge.cli import main
from streamline_bridge.energy.intervals import find_intervals

RAILS = list(TX1_BASES)
FIRES = [f"features.{i}" for i in (3, 4, 6, 7, 9, 10, 11, 12)]
GROUPS = [
    "features.0",
    "features.1",
    "features.2",
    *FIRES[:2],
    "features.5",
    *FIRES[2:4],
    "features.8",
    *FIRES[4:],
    "classifier.0",
    "classifier.1",
    "classifier.2",
    "classifier.3",
]
TINY_LAYERS = ["0___Linear", "1___ReLU", "2___Linear"]  # tiny_model's
SHORT = ["--iterations", "2", "--warmup", "0", "--idle", "0.1"]  # quick runs, power on both sides
FAST = [
    "--iterations",
    "2",
    "--warmup",
    "1",
    "--idle",
    "0.1",
    "--size",
    "32",
    "--method",
    "sequence",
]  # tests of the sequence


def tiny_model():
    """A factory for ``--model test_profile_frameworks:tiny_model``: the model and an example input."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    return model, torch.ones(2, 8)


def _groups(run: Path, tmp_path: Path) -> list[str]:
    out = tmp_path / "groups.json"
    assert main(["report", str(run), "--by", "group", "-o", str(out)]) == 0
    rows = pd.DataFrame(json.loads(out.read_text()))
    return rows[rows["rail"] == RAILS[0]]["name"].tolist()


def test_profile_torch_builtin_squeezenet(tx1: str, tmp_path: Path, capsys) -> None:
    pytest.importorskip("torch")
    run = tmp_path / "run"
    assert main(["profile", "torch", "-o", str(run), *FAST, "--sysfs-root", tx1]) == 0
    out, err = capsys.readouterr()
    assert "random weights (seed 0)" in err and f"{RAILS[0]}: energy per layer, 2 iteration(s)" in out
    m = json.loads((run / "manifest.json").read_text())
    assert m["complete"] and m["profile"]["framework"] == "torch" and m["profile"]["input"] == [1, 3, 32, 32]
    assert m["profile"]["device"] == "cpu" and m["profile"]["threads"] >= 1
    assert m["command"][:3] == ["streamline-bridge", "profile", "torch"] and "--device" in m["command"]
    layers = [t.split("___") for t in m["profile"]["layers"]]
    assert len(layers) == 3 + 8 * 6 + 2 + 4 and layers[3] == ["features.3.squeeze", "Conv2d"]
    table = pd.read_csv(run / "table.csv")
    assert table["name"].unique().tolist() == [n for n, _ in layers] and (table["n"] == 2).all()
    texts = ingest.read(run).markers
    texts = texts[texts["kind"] == "text"]
    assert len(texts[texts["text"] == "features.0___Conv2d"]) == 2  # warm-up is not annotated
    assert _groups(run, tmp_path) == GROUPS  # one row per fire module, as Caffe's fire2..fire9


def test_profile_torch_with_the_caffe_weights_sees_the_tabby(
    tx1: str,
    shared: Path,
    tmp_path: Path,
    capsys,
) -> None:
    pytest.importorskip("torch")
    model = shared / "models/squeezenet_v1.1"
    rc = main(
        [
            "profile",
            "torch",
            "-o",
            str(tmp_path / "run"),
            "--weights",
            str(model / "squeezenet_v1.1.fp16-reconstructed.caffemodel"),
            "--size",
            "227",
            "--image",
            str(shared / "data/images/cat.jpg"),
            "--labels",
            str(shared / "data/synset_words.txt"),
            "--iterations",
            "1",
            "--warmup",
            "0",
            "--idle",
            "0.1",
            "--sysfs-root",
            tx1,
        ]
    )
    out, err = capsys.readouterr()
    assert rc == 0, err
    top = out.split("top-5 classes:\n", 1)[1].splitlines()[0].split(None, 2)  # a result: on stdout
    assert top[1:] == ["281", "tabby, tabby cat"] and float(top[0]) == pytest.approx(0.2774, abs=2e-3)
    assert "meaningless" not in out + err


def test_profile_torch_factory_and_exported_program(tx1: str, tmp_path: Path, capsys) -> None:
    torch = pytest.importorskip("torch")
    run = tmp_path / "factory"
    rc = main(
        ["profile", "torch", "--model", "test_profile_frameworks:tiny_model", "-o", str(run), *SHORT]
        + ["--sysfs-root", tx1]
    )
    assert rc == 0, capsys.readouterr().err
    m = json.loads((run / "manifest.json").read_text())
    expected = TINY_LAYERS
    assert (
        m["profile"]["layers"] == expected and m["profile"]["input"] == [2, 8] and m["profile"]["net"] == "tiny_model"
    )
    model, example = tiny_model()
    program = tmp_path / "tiny.pt2"
    torch.export.save(torch.export.export(model, (example,)), str(program))
    run = tmp_path / "exported"
    assert main(["profile", "torch", str(program), "-o", str(run), *SHORT, "--sysfs-root", tx1]) == 0
    m = json.loads((run / "manifest.json").read_text())
    assert m["profile"]["layers"] == expected and m["profile"]["net"] == "tiny"  # names and types kept
    assert len(ingest.read(run).markers.query("kind == 'text' and text == '1___ReLU'")) == 2
    capsys.readouterr()


def test_profile_onnx_builtin_squeezenet(tx1: str, tmp_path: Path, capsys) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    run = tmp_path / "run"
    assert main(["profile", "onnx", "-o", str(run), *FAST, "--sysfs-root", tx1]) == 0
    out, err = capsys.readouterr()
    assert f"{RAILS[0]}: energy per layer, 2 iteration(s)" in out
    m = json.loads((run / "manifest.json").read_text())
    assert m["profile"]["providers"] == ["CPUExecutionProvider"] and m["profile"]["optimization"] == "basic"
    assert (run / "model.onnx").is_file() and len(list(run.glob("onnxruntime_profile*.json"))) == 1
    layers = [t.split("___") for t in m["profile"]["layers"]]
    assert ["features.3.squeeze", "Conv"] in layers and ["features.3", "Concat"] in layers
    iv = find_intervals(ingest.read(run).markers)
    assert iv.warnings == [] and iv.iterations["iteration"].tolist() == [0, 1]
    for i, span in iv.iterations.iterrows():  # every node inside its own run's iteration
        part = iv.layers[iv.layers["iteration"] == i]
        assert len(part) == len(layers) and part["start_ns"].min() >= span["start_ns"]
        assert part["end_ns"].max() <= span["end_ns"]
    assert _groups(run, tmp_path) == [g for g in GROUPS if g != "classifier.0"] + ["Flatten"]  # no Dropout node


def test_framework_options_are_checked_before_anything_runs(tmp_path: Path, capsys) -> None:
    run = str(tmp_path / "run")
    assert main(["profile", "caffe", "-o", run, "--device", "cuda"]) == 2
    assert "--device is not an option of profile caffe" in capsys.readouterr().err
    assert main(["profile", "torch", "-o", run, "--providers", "CPUExecutionProvider"]) == 2
    assert "--providers is not an option of profile torch" in capsys.readouterr().err
    assert main(["profile", "onnx", str(tmp_path / "none.onnx"), "-o", run]) == 3  # a file: EXIT_DAMAGED
    assert "none.onnx: no such model file" in capsys.readouterr().err
    assert main(["profile", "torch", "-o", run, "--model", "no_such_module:f"]) == 2
    err = capsys.readouterr().err
    assert "--model no_such_module:f: cannot import it" in err and len(err.strip().splitlines()) == 1
    assert main(["profile", "torch", "-o", run, "--input-shape", "1,x"]) == 2
    assert "--input-shape" in capsys.readouterr().err
    assert main(["profile", "caffe", "-o", run, "--preprocess", "torchvision"]) == 2
    assert "--preprocess is not an option of profile caffe" in capsys.readouterr().err
    assert main(["profile", "onnx", "-o", run, "--preprocess", "torchvision", "--mean", "1,2,3"]) == 2
    assert "not torchvision's" in capsys.readouterr().err
    assert not Path(run).exists()


class FakeSession:
    """An onnxruntime session whose profile (µs since the profiler started) is written here: runs
    at known times, two nodes each; the runner must place them at marker + (ts - run ts)."""

    RUNS = [(1_000, 300), (5_000, 400), (9_000, 500)]  # warm-up, then two annotated runs
    # (node, op, offset in its run, duration); the last has no name, as a model may leave it
    NODES = [("a/conv", "Conv", 10, 100), ("b", "Relu", 150, 40), ("c", "Softmax", 250, 20), ("", "Add", 280, 10)]

    def __init__(self, tmp_path: Path) -> None:
        self.path, self.runs = tmp_path / "profile.json", 0

    def run(self, names, feeds):
        time.sleep(self.RUNS[min(self.runs, len(self.RUNS) - 1)][1] * 1e-6)  # at least as long as its profile says
        self.runs += 1
        return [np.zeros((1, 3))]

    def end_profiling(self) -> str:
        events = [{"cat": "Session", "name": "session_initialization", "ts": 0, "dur": 900}]
        for ts, dur in self.RUNS[: self.runs]:
            events.append({"cat": "Session", "name": "model_run", "ts": ts, "dur": dur})
            events += [
                {"cat": "Node", "name": f"{node}_kernel_time", "ts": ts + off, "dur": d, "args": {"op_name": op}}
                for node, op, off, d in self.NODES
            ]
            events.append({"cat": "Node", "name": "b_fence_before", "ts": ts + 5, "dur": 0})
        self.path.write_text(json.dumps(events))
        return str(self.path)

    def get_modelmeta(self):
        class Meta:
            custom_metadata_map = {"annotate.blocks": json.dumps({"b": "a"})}

        return Meta()


@pytest.mark.parametrize("style", ["channels", "markers"])
def test_node_times_are_placed_on_the_marker_clock_run_by_run(tmp_path: Path, style: str) -> None:
    from annotate.frameworks.onnx import OnnxRunner

    session, log = FakeSession(tmp_path), tmp_path / "onnx.sbm"
    client = Client(file=log, gatord=False)
    runner = OnnxRunner(session, {"x": None}, "fake", style=style, client=client)
    runner.warm_up(1)
    runner.forward_layers()
    runner.forward_layers()
    assert runner.finish() == []
    client.close()
    iv = find_intervals(ingest.read(log).markers)
    assert iv.layers["name"].tolist() == ["a/conv", "b", "c", "Add"] * 2
    assert iv.layers["layer_type"].tolist() == ["Conv", "Relu", "Softmax", "Add"] * 2
    if style == "channels":  # blocks from the model's metadata (b), else the name's prefix
        assert iv.layers["group"].tolist() == ["a", "a", "c", "Add"] * 2
    for i, run_index in enumerate((1, 2)):  # run 0 was the warm-up
        marker_ns = runner._marked[run_index]
        part = iv.layers[iv.layers["iteration"] == i]
        assert (part["start_ns"] - marker_ns).tolist() == [off * 1000 for _, _, off, _ in FakeSession.NODES]
        if style == "channels":  # a bookmark runs to the next one: only channel texts carry the duration
            assert (part["end_ns"] - part["start_ns"]).tolist() == [d * 1000 for *_, d in FakeSession.NODES]


def test_a_profile_missing_runs_is_a_warning(tmp_path: Path) -> None:
    from annotate.frameworks.onnx import OnnxRunner

    session = FakeSession(tmp_path)
    session.RUNS = FakeSession.RUNS[:1]
    client = Client(file=tmp_path / "m.sbm", gatord=False)
    runner = OnnxRunner(session, {}, "fake", client=client)
    runner.forward_layers()
    runner.forward_layers()
    warnings = runner.finish()
    client.close()
    assert len(warnings) == 1 and "1 annotated run(s) have no node times" in warnings[0]


def _readme_block(after: str) -> str:
    section = (ROOT / "README.md").read_text().split(after, 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_torch_and_onnx_examples_run_as_written(tmp_path: Path) -> None:
    """The README's two adapter examples, run in a fresh interpreter: 20 iterations of every layer."""
    from test_annotate_process import spawn

    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    for after, log, layers in (
        ("PyTorch, with forward hooks", "torch.sbm", 57),
        ("ONNX Runtime, every node", "onnx.sbm", 65),
    ):
        p = spawn(_readme_block(after), cwd=tmp_path)
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        iv = find_intervals(ingest.read(tmp_path / log).markers)
        assert iv.iterations["iteration"].tolist() == list(range(20)) and iv.warnings == []
        # torch: conv1 relu pool, 8 fires, 2 pools, 4 classifier modules; onnx: no Dropout node, a Flatten one
        assert len(iv.layers) == 20 * layers and iv.layers["group"].nunique() == 17


@pytest.mark.parametrize("compile", ["trace", "script"])
def test_a_torchscript_model_is_profiled_layer_by_layer(compile: str, tx1: str, tmp_path: Path, capsys) -> None:
    torch = pytest.importorskip("torch")
    from streamline_bridge.nets.torch_squeezenet import squeezenet1_1

    model = squeezenet1_1().eval()
    example = torch.zeros(1, 3, 32, 32)
    scripted = torch.jit.trace(model, example) if compile == "trace" else torch.jit.script(model)
    scripted.save(str(tmp_path / "squeezenet.pt"))
    run = tmp_path / "run"
    rc = main(["profile", "torch", str(tmp_path / "squeezenet.pt"), "-o", str(run), *FAST, "--sysfs-root", tx1])
    out, err = capsys.readouterr()
    assert rc == 0, err
    m = json.loads((run / "manifest.json").read_text())
    layers = [t.split("___") for t in m["profile"]["layers"]]
    assert len(layers) == 3 + 8 * 6 + 2 + 4 and layers[3] == ["features.3.squeeze", "Conv2d"]
    texts = ingest.read(run).markers.query("kind == 'text'")
    for text in ("features.0___Conv2d", "features.3.expand3x3_activation___ReLU", "classifier.1___Conv2d"):
        assert len(texts[texts["text"] == text]) == 2  # once per annotated iteration
    iv = find_intervals(ingest.read(run).markers)
    for i in (0, 1):  # every leaf once per iteration, in the order it ran (each ReLU told from the others)
        part = iv.layers[iv.layers["iteration"] == i]
        assert part["name"].tolist() == [n for n, _ in layers]
        assert (part["start_ns"].diff().dropna() > 0).all() and (part["end_ns"] > part["start_ns"]).all()
        assert (part["end_ns"].iloc[:-1].to_numpy() <= part["start_ns"].iloc[1:].to_numpy()).all()
    table = pd.read_csv(run / "table.csv")
    assert (table["n"] == 2).all() and table["name"].nunique() == len(layers)
    assert _groups(run, tmp_path) == GROUPS  # one row per fire module, as for the model itself


def test_torchscript_runs_no_layer_alone_and_a_saved_module_runs(tx1: str, tmp_path: Path, capsys) -> None:
    torch = pytest.importorskip("torch")
    model, _ = tiny_model()
    torch.jit.script(model).save(str(tmp_path / "scripted.pt"))
    run = tmp_path / "run"
    scripted = ["profile", "torch", str(tmp_path / "scripted.pt"), "--input-shape", "2,8", "-o", str(run)]
    assert main([*scripted, "--method", "isolate"]) == 2
    assert "a TorchScript model cannot run a layer alone" in capsys.readouterr().err and not run.exists()
    torch.save(model, tmp_path / "whole.pt")
    whole = str(tmp_path / "whole.pt")
    rc = main(["profile", "torch", whole, "--input-shape", "2,8", "-o", str(run), *SHORT, "--sysfs-root", tx1])
    assert rc == 0, capsys.readouterr().err
    assert json.loads((run / "manifest.json").read_text())["profile"]["layers"] == TINY_LAYERS


def broken_factory():
    raise RuntimeError("no such checkpoint")


@pytest.mark.parametrize("framework", ["torch", "onnx"])
def test_weights_that_do_not_fit_and_failing_factories_are_one_line(framework: str, tmp_path: Path, capsys) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime" if framework == "onnx" else "torch")
    bad = tmp_path / "bad.caffemodel"
    bad.write_bytes(b"\x0a\x03net")  # a NetParameter with a name and no layer
    run = tmp_path / "run"
    assert main(["profile", framework, "--weights", str(bad), "-o", str(run)]) == 3
    err = capsys.readouterr().err
    assert f"{bad}: not SqueezeNet v1.1 weights: layer 'conv1' has no weights" in err
    assert len(err.strip().splitlines()) == 1 and not run.exists()
    if framework == "torch":
        assert main(["profile", "torch", "--model", "test_profile_frameworks:broken_factory", "-o", str(run)]) == 2
        assert "the factory failed: RuntimeError: no such checkpoint" in capsys.readouterr().err


def test_a_factory_beside_the_user_is_found(tx1: str, tmp_path: Path, monkeypatch, capsys) -> None:
    """``streamline-bridge`` (a console script) does not search the current folder; the factory's module is there."""
    import sys

    pytest.importorskip("torch")
    (tmp_path / "my_nets_for_profile.py").write_text(
        "import torch\n\ndef make():\n    return torch.nn.Sequential(torch.nn.Linear(4, 2)), torch.ones(1, 4)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    rc = main(["profile", "torch", "--model", "my_nets_for_profile:make", "-o", "run", *SHORT, "--sysfs-root", tx1])
    assert rc == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "run/manifest.json").read_text())["profile"]["layers"] == ["0___Linear"]


def test_profile_torch_with_bookmarks_groups_by_the_names_tree(tx1: str, tmp_path: Path, capsys) -> None:
    """Bookmarks carry no channel: report --by group still gives one row per fire module."""
    pytest.importorskip("torch")
    run = tmp_path / "run"
    assert main(["profile", "torch", "-o", str(run), "--style", "markers", *FAST, "--sysfs-root", tx1]) == 0
    capsys.readouterr()
    assert (ingest.read(run).markers["kind"] == "text").sum() == 0
    assert _groups(run, tmp_path) == [g for g in GROUPS if not g.startswith("classifier")] + ["classifier"]


def bare_model():
    """A model that computes without submodules: nothing to hook."""
    import torch

    class Bare(torch.nn.Module):
        def forward(self, x):
            return x * 2

    return Bare(), torch.ones(1, 4)


def test_a_model_without_modules_is_refused_before_anything_runs(tmp_path: Path, capsys) -> None:
    pytest.importorskip("torch")
    run = tmp_path / "run"
    assert main(["profile", "torch", "--model", "test_profile_frameworks:bare_model", "-o", str(run)]) == 2
    assert "the model has no module to annotate" in capsys.readouterr().err and not run.exists()


def test_torch_layers_run_alone_for_the_isolation_method_and_onnx_says_it_cannot(
    tx1: str, tmp_path: Path, capsys
) -> None:
    pytest.importorskip("torch")
    run = tmp_path / "run"
    args = ["--model", "test_profile_frameworks:tiny_model", "-o", str(run), "--method", "both", *SHORT]
    assert main(["profile", "torch", *args, "--sysfs-root", tx1]) == 0, capsys.readouterr().err
    methods = pd.read_csv(run / "methods.csv")
    assert sorted(set(methods["name"].astype(str))) == ["0", "1", "2"]
    assert methods["energy_mj_isolate"].notna().all()  # every module has its isolated figure
    isolated = ingest.read(run).markers.query("channel_name == 'isolate' and kind == 'text'")["text"].tolist()
    assert isolated == TINY_LAYERS  # each module alone, in one annotation of its loop
    capsys.readouterr()
    assert main(["profile", "onnx", "-o", str(tmp_path / "onnx"), "--method", "isolate"]) == 2
    assert "--method isolate: profile onnx cannot run a layer alone" in capsys.readouterr().err
