"""docs/streamline.md, run: every ``sh test`` block in order, in one shell, against the headless listener.

The board is faked: a moving INA3221 sysfs tree (tests/fake_sysfs.py) that ``record`` is pointed at
(a ``streamline-bridge`` wrapper first on PATH adds ``--sysfs-root``), private socket names
(``STREAMLINE_ANNOTATE_SOCKET_PREFIX``, read by the listener and every client), and the listener's
marker log as ``$CAPTURE``. ``python file=NAME`` blocks are written to NAME first.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from annotate_support import unique_prefix
from conftest import FIXTURES, ROOT
from fake_sysfs import FakeSensor
from streamline_bridge.ingest import marker_log
from streamline_bridge.power.log import read_log
from streamline_bridge.power.streamline_feed import rail_key

DOC = ROOT / "docs" / "streamline.md"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
IIO = "bus/i2c/drivers/ina3221x/1-0040/iio_device"


def blocks() -> list[tuple[str, str]]:
    """(info string, body) of every fenced block of the page."""
    return [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer(DOC.read_text(encoding="utf-8"))]


def test_every_command_block_is_run_here_or_marked_for_the_board() -> None:
    infos = [info for info, _ in blocks()]
    assert infos.count("sh test") >= 5
    assert all(i in ("sh test", "sh test-tcp", "sh board") or i.startswith("python file=") for i in infos), infos
    for info, body in blocks():
        if info == "sh board":  # what a test cannot do: start gatord, name a real capture, a shell setting
            assert all(
                re.match(r"(sudo gatord|gatord|export STREAMLINE_ANNOTATE_TCP=1|CAPTURE=)", line)
                for line in body.splitlines()
                if line.strip()
            ), body


def run_blocks(tmp_path: Path, kind: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """Run the page's ``sh KIND`` blocks in one shell in a fresh folder, on a moving fake TX1 sensor."""
    work = tmp_path / "work"
    work.mkdir()
    for info, body in blocks():
        if info.startswith("python file="):
            (work / info.split("=", 1)[1]).write_text(body)
    script = "set -e\n" + "".join(body for info, body in blocks() if info == kind)
    wrapper = tmp_path / "bin" / "streamline-bridge"
    wrapper.parent.mkdir()
    wrapper.write_text(
        f'#!/bin/sh\nif [ "$1" = record ]; then shift; set -- record --sysfs-root "$FAKE_SYSFS" "$@"; fi\n'
        f'exec {sys.executable} -m streamline_bridge "$@"\n'
    )
    wrapper.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLINE_ANNOTATE_")}
    env.update(
        PATH=os.pathsep.join([str(wrapper.parent), str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
        PYTHONPATH=str(ROOT),
        STREAMLINE_ANNOTATE_SOCKET_PREFIX=unique_prefix(),
        FAKE_SYSFS=str(tmp_path / "sys"),
        CAPTURE="session.sbm",
    )
    functions = {f"{IIO}/in_power{i}_input": (lambda k, b=b: b + k % 50) for i, b in enumerate((2000, 100, 300))}
    with FakeSensor(FIXTURES / "sysfs/tx1-l4t28", tmp_path / "sys", 0.007, functions):
        done = subprocess.run(
            ["bash", "-c", script], check=False, cwd=work, env=env, capture_output=True, text=True, timeout=300
        )
    if kind == "sh test-tcp" and "cannot listen on tcp 127.0.0.1:8082/8083: Address already in use" in done.stderr:
        pytest.skip("gatord's TCP ports are in use (a gatord, or this test running twice at once)")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    return work, done


def values_of(session: Path, run: Path) -> None:
    """The listener's log holds every counter value the run's sampler sent, a third per rail."""
    m = marker_log.read(session).markers
    log = read_log(run / "power.sbp")
    sent = log.trailer["streamline"]["values_sent"]
    mine = m[(m["kind"] == "counter_value") & (m["pid"] == log.meta["pid"])]
    assert len(mine) == sent > 0
    assert (mine["key"] == rail_key("VDD_GPU")).sum() == sent // 3


def test_the_walk_through_runs_against_the_listener(tmp_path: Path) -> None:
    work, done = run_blocks(tmp_path, "sh test")
    assert "power: annotation counters at" in done.stderr
    assert "power: ina3221x: VDD_IN, VDD_GPU, VDD_CPU" in done.stderr
    sent = read_log(work / "run" / "power.sbp").trailer["streamline"]["values_sent"]
    assert "run: exit status 0, " in done.stderr and f"; {sent} counter values sent to Streamline" in done.stderr

    rec = marker_log.read(work / "session.sbm")
    m = rec.markers
    defs = m[m["kind"] == "counter_def"]
    assert set(defs["text"]) == {"VDD_IN", "VDD_GPU", "VDD_CPU"}
    for run in ("run", "run-100hz"):
        values_of(work / "session.sbm", work / run)
    texts = m[m["kind"] == "text"]["text"]
    assert (texts == "fire2/concat___Concat").sum() == 10 and (texts == "iteration 4").sum() == 2
    assert list(rec.meta.rails) == ["VDD_IN", "VDD_GPU", "VDD_CPU"]
    assert (work / "table.csv").is_file()


def test_the_tcp_section_runs_against_a_tcp_listener(tmp_path: Path) -> None:
    work, done = run_blocks(tmp_path, "sh test-tcp")
    assert "power: annotation counters at" in done.stderr
    values_of(work / "session-tcp.sbm", work / "run-tcp")
    texts = marker_log.read(work / "session-tcp.sbm").markers["text"]
    assert (texts == "prob___Softmax").sum() == 5
