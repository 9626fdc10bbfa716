"""The suite's general helpers (the topical ones: annotate_support, apc_writer, fake_sysfs).

:func:`wait_until`: tests never sleep a fixed time and hope (a flaky test is a defect); they
wait for the state they need, with a deadline generous enough for a loaded 2-core machine, and
fail naming what never happened. :func:`read_or_one_line_error`: bad input is reported as one
line that names the file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from streamline_bridge.errors import InputError
from streamline_bridge.model import Recording

T = TypeVar("T")
R = TypeVar("R")

TIMEOUT_S = 20.0


def wait_until(
    condition: Callable[[], T], timeout: float = TIMEOUT_S, what: str = "condition", poll_s: float = 0.005
) -> T:
    """Call ``condition`` until it returns something true and return that value.

    Raises AssertionError naming ``what`` when ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll_s)


def read_or_one_line_error(read: Callable[[Path], R], path: Path) -> R | None:
    """``read(path)``; None where it raises InputError, after checking that the error reads as one
    line naming the file. Every issue of what it read names the file too."""
    try:
        result = read(path)
    except InputError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc), str(exc)
        return None
    issues = result.meta.issues if isinstance(result, Recording) else []
    assert all(i.file == str(path) for i in issues), issues
    return result
