"""``streamline-bridge profile caffe`` end to end on a fake Jetson TX1 sensor tree: the run folder,
the printed table and classes, the files it writes, and ``report`` on the folder afterwards."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import FIXTURES
from fake_sysfs import TX1_BASES
from streamline_bridge import ingest
from streamline_bridge.cli import main

BASES = TX1_BASES
RAILS = list(BASES)
MODEL = "models/squeezenet_v1.1"


def prototxt_names(path: Path) -> list[str]:
    return [
        n
        for n, t in re.findall(r'layer\s*\{\s*name:\s*"([^"]+)"\s*type:\s*"([^"]+)"', path.read_text())
        if t != "Input"
    ]


@pytest.mark.caffe
def test_profile_the_real_squeezenet_on_the_cat(tx1: str, shared: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("caffe", reason="pycaffe not built (scripts/build-pycaffe.sh .venv/bin/python)")
    run = tmp_path / "run"
    model = shared / MODEL
    rc = main(
        [
            "profile",
            "caffe",
            "-o",
            str(run),
            "--model",
            str(model / "deploy.prototxt"),
            "--weights",
            str(model / "squeezenet_v1.1.fp16-reconstructed.caffemodel"),
            "--image",
            str(shared / "data/images/cat.jpg"),
            "--labels",
            str(shared / "data/synset_words.txt"),
            "--iterations",
            "2",
            "--warmup",
            "1",
            "--idle",
            "0.2",
            "--sysfs-root",
            tx1,
        ]
    )
    out, err = capsys.readouterr()
    assert rc == 0, err
    top5 = [line.split(None, 2) for line in out.split("top-5 classes:\n", 1)[1].splitlines()[:5]]  # a result: stdout
    assert top5[0][1:] == ["281", "tabby, tabby cat"] and float(top5[0][0]) == pytest.approx(0.2774, abs=2e-3)
    assert "meaningless" not in err and "synthetic" not in err and "ESTIMATED" not in err
    names = prototxt_names(model / "deploy.prototxt")
    for rail in RAILS:
        assert f"{rail}: energy per layer, 2 iteration(s)" in out
    assert all(name in out for name in names)

    m = json.loads((run / "manifest.json").read_text())
    assert m["complete"] and m["exit_code"] == 0 and m["power"]["source"] == "ina3221x"
    assert m["board"]["start"]["kernel"] and m["board"]["end"]["time_ns"] > m["board"]["start"]["time_ns"]
    assert m["profile"]["input"] == [1, 3, 227, 227] and m["profile"]["net"] == "squeezenet_v1.1"
    assert [t.split("___")[0] for t in m["profile"]["layers"]] == names
    rec = ingest.read(run)
    assert rec.meta.format == "run-dir" and not rec.meta.partial
    t1, t2 = m["phases"]["run"]
    texts = rec.markers[rec.markers["kind"] == "text"]
    assert texts["time_ns"].astype("int64").between(t1, t2).all()
    sequence = texts[texts["channel_name"] != "isolate"]  # --method auto may loop unresolved layers after
    assert len(sequence[sequence["text"] == "conv1___Convolution"]) == 2  # warm-up is not annotated
    named = sequence[sequence["text"].str.startswith("fire3/")]
    assert set(named["channel_name"]) == {"fire3"} and set(named["group_name"]) == {"squeezenet_v1.1"}

    table = pd.read_csv(run / "table.csv")
    assert table["name"].unique().tolist() == names and table["rail"].unique().tolist() == RAILS
    assert (table.loc[table["method"] != "isolate", "n"] == 2).all() and (table["energy_mj"] > 0).all()
    assert len(pd.read_json(run / "table.json")) == len(names) * 3
    assert json.loads((run / "table.meta.json").read_text())["iterations_used"] == 2
    assert (run / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    trace = json.loads((run / "trace.json").read_text())
    assert sum(e.get("ph") == "X" and e["cat"] != "phase" for e in trace["traceEvents"]) == len(names) * 2


@pytest.mark.caffe
def test_profile_builtin_squeezenet_with_bookmarks_then_report(tx1: str, tmp_path: Path, capsys) -> None:
    pytest.importorskip("caffe", reason="pycaffe not built (scripts/build-pycaffe.sh .venv/bin/python)")
    from streamline_bridge.nets.squeezenet import squeezenet_v1_1

    run = tmp_path / "run"
    rc = main(
        [
            "profile",
            "caffe",
            "-o",
            str(run),
            "--size",
            "64",
            "--style",
            "markers",
            "--iterations",
            "3",
            "--warmup",
            "0",
            "--idle",
            "0.2",
            "--sysfs-root",
            tx1,
        ]
    )
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "random weights (seed 0)" in err and "synthetic input image" in err and "top-5" not in err
    m = json.loads((run / "manifest.json").read_text())
    assert m["profile"]["input"] == [1, 3, 64, 64] and m["profile"]["style"] == "markers"
    assert "--size" in m["command"] and m["command"][:3] == ["streamline-bridge", "profile", "caffe"]
    bookmarks = ingest.read(run).markers
    assert (bookmarks["kind"] == "marker").sum() == 3 * (66 + 2)  # iteration, 66 layers, end

    out = tmp_path / "report.json"
    assert main(["report", str(run), "-o", str(out)]) == 0
    meta = json.loads((tmp_path / "report.meta.json").read_text())
    assert meta["style"] == "markers" and meta["iterations_used"] == 3
    rows = pd.read_json(out)
    names = [n for n, t in re.findall(r'name: "([^"]+)"\n  type: "([^"]+)"', squeezenet_v1_1(64)) if t != "Input"]
    assert rows["name"].unique().tolist() == names
    for rail in RAILS:
        part = rows[rows["rail"] == rail]
        in_sequence = part[part["method"] != "isolate"]  # isolation rows count their batches
        assert len(part) == len(names) and (part["energy_mj"] > 0).all() and (in_sequence["n"] == 3).all()
        assert (part["energy_mj"] / part["time_ms"] > BASES[rail] * 1e-3).all()  # at least the base power


@pytest.mark.caffe
def test_whole_net_mode_is_one_row_per_rail(tx1: str, tmp_path: Path, capsys) -> None:
    pytest.importorskip("caffe", reason="pycaffe not built (scripts/build-pycaffe.sh .venv/bin/python)")
    run = tmp_path / "run"
    rc = main(
        [
            "profile",
            "caffe",
            "-o",
            str(run),
            "--whole-net",
            "--size",
            "32",
            "--iterations",
            "2",
            "--warmup",
            "0",
            "--idle",
            "0.1",
            "--sysfs-root",
            tx1,
        ]
    )  # idle: power on both sides of the runs
    assert rc == 0, capsys.readouterr().err
    rows = json.loads((run / "table.json").read_text())
    assert [(r["name"], r["layer_type"], r["rail"]) for r in rows] == [
        ("SqueezeNet_v1.1", "Net", rail) for rail in RAILS
    ]
    assert all(r["n"] == 2 and r["energy_mj"] > 0 for r in rows)


def test_without_pycaffe_one_message_says_how_to_build_it(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "caffe", None)  # import caffe -> ImportError
    rc = main(["profile", "caffe", "-o", str(tmp_path / "run"), "--sysfs-root", str(FIXTURES / "sysfs/tx1-l4t28")])
    err = capsys.readouterr().err
    assert rc == 2 and "scripts/build-pycaffe.sh .venv/bin/python" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_bad_options_are_refused_before_anything_runs(tmp_path: Path, capsys) -> None:
    run = str(tmp_path / "run")
    assert main(["profile", "caffe", "-o", run, "--iterations", "0"]) == 2
    assert "--iterations" in capsys.readouterr().err
    assert main(["profile", "caffe", "-o", run, "--image", str(tmp_path / "nope.jpg")]) == 3  # a file: EXIT_DAMAGED
    assert "nope.jpg: no such image file" in capsys.readouterr().err
    assert main(["profile", "caffe", "-o", run, "--mean", "104,117"]) == 2
    assert "expected three numbers B,G,R" in capsys.readouterr().err
    assert not Path(run).exists()
