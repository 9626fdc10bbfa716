"""The README's other examples, run as written in a folder of their own (``fixtures`` and ``../shared``
linked in), through a ``streamline-bridge`` on PATH: power capture, marker logs and ``listen``, the
readers, and the profiling commands (pycaffe, PyTorch, ONNX Runtime where installed).

The report/compare section is run by test_readme_report.py, the annotate, PyTorch and ONNX adapter
examples by test_annotate_process.py and test_profile_frameworks.py, the Streamline session by
test_streamline_doc.py (its page). Each block is found by its section and first line: a block
changed so that it is no longer found fails here, it is not skipped.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from annotate_support import unique_prefix
from conftest import ROOT, SHARED

TOKENS = re.compile(r"^(#+) ([^\n]*)$|^```(\w*)\n(.*?)^```$", re.DOTALL | re.MULTILINE)  # headings, fenced blocks
DOC = ROOT / "docs" / "streamline.md"
# the profiling commands, shortened: every option and file as written, fewer iterations, no idle, no loops
SHORT = "--iterations 2 --warmup 0 --idle 0 --method sequence"


def block(section: str, first: str, lang: str = "") -> str:
    """The fenced block of the README section headed ``section`` whose first line starts with ``first``."""
    found, inside = [], False
    for m in TOKENS.finditer((ROOT / "README.md").read_text(encoding="utf-8")):
        if m.group(1):
            inside = m.group(2) == section
        elif inside and m.group(4).startswith(first) and lang in ("", m.group(3)):
            found.append(m.group(4))
    assert len(found) == 1, f"README section {section!r}: {len(found)} blocks starting {first!r}"
    return found[0]


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A working folder beside a ``shared`` link, with ``fixtures`` linked in; the environment to run in."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "fixtures").symlink_to(ROOT / "fixtures")
    (tmp_path / "shared").symlink_to(SHARED.resolve())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "streamline-bridge"
    tool.write_text(f'#!/bin/sh\nexec {sys.executable} -m streamline_bridge "$@"\n')  # exec: `kill %1` reaches it
    tool.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLINE_ANNOTATE_")}
    path = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), env.get("PATH", "/usr/bin:/bin")])
    env.update(PATH=path, PYTHONPATH=str(ROOT), STREAMLINE_ANNOTATE_SOCKET_PREFIX=unique_prefix())
    return work, env


def run(code: str, work: Path, env: dict[str, str], lang: str = "sh", timeout: int = 300) -> str:
    """Run a block (``sh`` with ``set -e``, or Python); its stdout. Fails with its stderr when it fails."""
    if lang == "sh":
        cmd = [
            "bash",
            "-c",
            "set -e\n" + code.replace(".venv/bin/streamline-bridge", "streamline-bridge"),
        ]
    else:
        cmd = [sys.executable, "-c", code]
    r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert r.returncode == 0, f"{code}\n--- stderr:\n{r.stderr[-3000:]}"
    return r.stdout


def test_power_capture_examples_run_as_written_twice(sandbox) -> None:
    work, env = sandbox
    out = run(block("Which sensors does this board have?", "streamline-bridge sensors  "), work, env)
    assert '"source": "ina3221"' in out  # the Orin tree, as JSON
    record = block("Record a command", "streamline-bridge record")
    python = block("From Python", "import time", "python")
    for _ in range(2):  # a second time replaces the run and the log
        assert "runs/demo" in run(record, work, env)
        out = run(python, work, env, "python")
        assert "ina3221x ['VDD_IN', 'VDD_GPU', 'VDD_CPU']" in out and "'idle_before'" in out


def test_marker_log_listen_and_reader_examples_run_as_written(sandbox) -> None:
    work, env = sandbox
    run(block("Annotating a Python program (`annotate`)", "import annotate", "python"), work, env, "python")
    section = "Recording annotations without Streamline: `listen`, marker logs, the decoder"
    run(block(section, "streamline-bridge listen", "sh"), work, env)
    assert "listen: 1 messages from 1 connection(s), written to run.sbm" in (work / "listen.txt").read_text()
    out = run(block("Looking at a marker log", "streamline-bridge inspect run.sbm  "), work, env)
    assert "2 thread(s)" in out  # the annotate example's and the listened-to client's
    out = run(block("Looking at a marker log", "streamline-bridge inspect run.sbm --markers"), work, env)
    assert "time_s,pid,tid" in out and out.endswith("\n[]\n")  # the table, the CSV, and JSON: no tid 4243 here
    out = run(block("Reading it from Python", "from streamline_bridge", "python"), work, env, "python")
    assert "conv1" in out and "Caffe" in out
    layers = block("Layer structure: `annotate.layers` (standard library only)", "import annotate", "python")
    assert "{'iterations': 1, 'fire2': 2}" in run(layers, work, env, "python")


@pytest.mark.parametrize(
    ("section", "first", "expect"),
    [
        ("Decoding raw annotation bytes", "from pathlib", "bad.bin at byte 106: unknown message code 85"),
        ("Inspect a capture", "streamline-bridge inspect", "filesystem_fake_power"),
        ("Read a capture in Python", "from streamline_bridge", "650 974937935112"),
        ("Streamline exports", "from streamline_bridge", "VDD_"),
        ("tegrastats logs", "from streamline_bridge", "VDD_"),
    ],
)
def test_reader_examples_run_as_written(sandbox, shared: Path, section: str, first: str, expect: str) -> None:
    work, env = sandbox
    code = block(section, first)
    assert expect in run(code, work, env, "sh" if first.startswith("streamline-bridge") else "python")


def test_streamline_session_commands_are_those_its_tested_page_runs() -> None:
    """The README's summary of docs/streamline.md: every command is one that test_streamline_doc.py runs."""
    page = "".join(
        b
        for info, b in re.findall(r"^```([^\n`]*)\n(.*?)^```", DOC.read_text(), re.DOTALL | re.MULTILINE)
        if info.strip().startswith("sh test")
    )
    code = block("Power rails and layers in a live Streamline session", "# infer.py")
    commands = [line.split("  #")[0].strip() for line in code.splitlines() if line.startswith("streamline-bridge")]
    assert len(commands) == 4 and all(c in page for c in commands), commands
    assert "infer.py" in DOC.read_text()


def shortened(code: str, *commands: str) -> str:
    for command in commands:
        assert command in code
        code = code.replace(command, f"{command} {SHORT}")
    return code


@pytest.mark.caffe
def test_caffe_examples_run_as_written(sandbox, shared: Path) -> None:
    pytest.importorskip("caffe")
    work, env = sandbox
    quick = block(
        "Quick start (fresh Debian machine, Python 3.11, as root for apt-get)",
        "scripts/bootstrap.sh && .venv/bin/streamline-bridge",
    )
    quick = shortened(quick.replace("scripts/bootstrap.sh && ", ""), "profile caffe")
    for _ in range(2):  # the quick start, twice in a row
        assert "energy per layer" in run(quick, work, env)
    real = block("Profiling a network layer by layer (`profile`, `annotate.frameworks`)", "S=../shared")
    out = run(shortened(real, "profile caffe"), work, env)
    assert "top-5 classes:" in out and "0.2774   281  tabby, tabby cat" in out and "fire2" in out
    own = block("In your own script", "import annotate, caffe", "python")
    run(own, work, env, "python", timeout=600)
    assert (work / "run.sbm").stat().st_size > 10_000


def test_torch_and_onnx_profile_examples_run_as_written(sandbox) -> None:
    for module in ("torch", "onnxruntime", "onnx"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")
    work, env = sandbox
    code = block("PyTorch and ONNX Runtime (`profile torch`, `profile onnx`)", ".venv/bin/streamline-bridge profile")
    out = run(shortened(code, "profile torch", "profile onnx"), work, env)
    assert "features.3" in out and (work / "runs/onnx/model.onnx").is_file()
