"""The README's report, compare, inspect and sensors examples run as written (shell blocks, in order)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

from conftest import ROOT

SECTION = re.compile(r"^### From a run folder$(.*?)^### Performance$", re.DOTALL | re.MULTILINE)


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```$", text, re.DOTALL | re.MULTILINE)


def test_readme_report_section_runs_as_written(tmp_path: Path, shared: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = SECTION.search(readme).group(1)
    python = [b for b in blocks(section, "python") if b.startswith("# layers.py")]
    (tmp_path / "layers.py").write_text(python[0])
    shell = "\n".join(b for b in blocks(section, "sh") if "streamline-bridge" in b and "capture.apc" not in b)
    script = (
        'set -e\nstreamline-bridge() { python -m streamline_bridge "$@"; }\n'
        f"cp {tmp_path / 'layers.py'} layers.py\ntrap 'rm -f layers.py' EXIT\n{shell}\n"
    )
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", PYTHONPATH=str(ROOT))
    r = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=300
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "VDD_IN: energy per layer" in r.stdout and "B - A per layer" in r.stdout
    assert "time per layer" in r.stdout and "time only: no power samples" in r.stdout
    assert len(pd.read_csv("/tmp/demo-stdout.csv")) == 4 * 3
    assert json.loads(Path("/tmp/demo-meta.json").read_text())["by"] == "layer"
    diff = pd.read_csv("/tmp/diff.csv")
    assert (diff["energy_mj_diff"] == 0).all() and not diff["energy_mj_significant"].any()  # a run against itself
    code = "\n".join(b for b in blocks(section, "python") if not b.startswith("# layers.py"))
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=120
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "('csv', ('.csv',), None)" in r.stdout and "energy_mj_diff_ci" in r.stdout
    assert Path("/tmp/t.meta.json").is_file()


def test_readme_sensors_board_example_runs_as_written() -> None:
    readme = (ROOT / "README.md").read_text()
    [line] = [x for b in blocks(readme, "sh") for x in b.splitlines() if "sensors --board" in x]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = line.replace("streamline-bridge", f"{sys.executable} -m streamline_bridge", 1)
    r = subprocess.run(["bash", "-c", cmd], cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=60)
    comment = next(x for b in blocks(readme, "sh") for x in b.splitlines() if x.startswith("# board: Jetson-AGX"))
    assert r.returncode == 0 and r.stdout.startswith(comment[2:].rstrip(". "))
