"""The CLI's plumbing: sub-commands, one-line errors, exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from streamline_bridge.cli import main


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "inspect" in out


def test_missing_file_is_one_line_and_nonzero(tmp_path, capsys):
    rc = main(["inspect", str(tmp_path / "nope.sbm")])
    err = capsys.readouterr().err
    assert rc == 3  # EXIT_DAMAGED: the file is unusable
    assert err.count("\n") == 1 and "nope.sbm" in err and "no such file" in err
    assert "Traceback" not in err


def test_unrecognised_file_names_it(tmp_path, capsys):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01garbage")
    assert main(["inspect", str(junk)]) == 3
    err = capsys.readouterr().err
    assert "junk.bin" in err and "not a recognised recording" in err


def test_python_dash_m_works():
    r = subprocess.run([sys.executable, "-m", "streamline_bridge", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("streamline-bridge ")
