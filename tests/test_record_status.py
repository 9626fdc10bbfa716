"""record's live status line: on stderr only when it is a terminal, and never while the command runs."""

from __future__ import annotations

import sys

from streamline_bridge.commands import record


class _Sampler:
    """What the status line reads of a running sampler."""

    def __init__(self) -> None:
        self.latest = {"mw": {"VDD_IN": 1500.0}, "samples": 3}


def test_live_status_only_on_a_terminal_and_never_while_the_command_runs(monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    status = record._Status(_Sampler())
    assert status._live is None  # stderr is not a terminal: phase lines only
    status.close()
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    status = record._Status(_Sampler())
    try:
        assert status._live.is_started
        status.enter("idle before (1 s)")
        assert status._live.is_started
        status.enter("running cmd", live=False)  # the command's own lines must not interleave with it
        assert not status._live.is_started
        status.update()  # the sampler loop keeps calling it: nothing is drawn
        assert not status._live.is_started
        status.enter("idle after (1 s)")
        assert status._live.is_started
    finally:
        status.close()
    assert not status._live.is_started
