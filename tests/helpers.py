"""The suite's general helpers (the topical ones: annotate_support, apc_writer, fake_sysfs).

:func:`wait_until`: tests never sleep a fixed time and hope (a flaky test is a defect); they
wait for the state they need, with a deadline generous enough for a loaded 2-core machine, and
fail naming what never happened. :func:`assert_one_line_error`: bad input is reported as one
line that names the file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

TIMEOUT_S = 20.0


def wait_until(condition: Callable[[], T], timeout: float = TIMEOUT_S, what: str = "condition",
               poll_s: float = 0.005) -> T:
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


def assert_one_line_error(exc: BaseException, path: str | os.PathLike[str]) -> None:
    """``exc`` reads as one line that starts with ``path``."""
    text = str(exc)
    assert text.startswith(f"{os.fspath(path)}") and "\n" not in text, text
