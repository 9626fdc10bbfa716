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


@pytest.mark.parametrize("flag", ["--json", "--markers"])  # print, and a rich table
def test_a_closed_stdout_ends_the_command_quietly(flag: str) -> None:
    """`... | head`: the reader is gone before anything is written (its end closed first, so no timing)."""
    import os

    from conftest import ROOT

    read, write = os.pipe()
    os.close(read)
    try:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "streamline_bridge",
                "inspect",
                str(ROOT / "fixtures/exports/log-view-6.1.csv"),
                flag,
            ],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)
    assert r.returncode == 1 and r.stderr == ""


def test_verbose_says_what_was_read_and_quiet_says_nothing_but_warnings(capsys) -> None:
    from conftest import ROOT

    export = str(ROOT / "fixtures/exports/log-view-6.1.csv")
    assert main(["inspect", export, "-v"]) == 0
    err = capsys.readouterr().err
    assert "streamline-bridge 0." in err and f"read {export} as streamline-export in " in err
    assert main(["inspect", export]) == 0
    assert "read " not in capsys.readouterr().err
    assert main(["report", export, "-q"]) == 0  # an export alone: the time table, its note with it on stdout
    out, err = capsys.readouterr()
    assert "time per layer" in out and "time only: no power samples" in out
    assert err.startswith("warning: ") and err.count("\n") == 1  # the export's relative times, nothing else


def test_an_export_placed_by_offset_is_no_longer_said_to_be_unplaced(tmp_path, capsys) -> None:
    from conftest import ROOT
    from test_report import write_power_log

    write_power_log(tmp_path / "p.sbp")
    export = str(ROOT / "fixtures/exports/log-view-6.1.csv")
    assert main(["report", export, "--power", str(tmp_path / "p.sbp"), "--offset", "0", "-q"]) == 0
    assert "relative to the capture start" not in capsys.readouterr().err
    assert main(["report", export, "-q"]) == 0  # alone: the time table, and the times are still unplaced
    assert "relative to the capture start" in capsys.readouterr().err
