"""Waiting for what another thread or process does: poll an observable condition until it holds.

The suite's one helper for it. Tests never sleep a fixed time and hope (a flaky test is a
defect): they wait for the state they need, with a deadline generous enough for a loaded
2-core machine, and fail naming what never happened.
"""

from __future__ import annotations

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
