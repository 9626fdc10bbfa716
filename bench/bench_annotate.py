"""Cost per call of ``annotate.text`` / ``annotate.marker`` / a ``prepare_text`` result, next to a
bare ``os.write`` of the same bytes.

Cases: (a) a gatord stand-in (a separate process accepting on private abstract sockets and
discarding) connected, (b) file only (marker log, default 100 ms flush), (c) file written through
on every call (flush interval 0), (d) nothing listening and no file (calls are dropped).
Each figure is this process's CPU time (user + system, all threads: the sender's work is
included) for N calls plus the final flush, divided by N; CPU time rather than wall time so that
other load on the machine does not count. Floor: ``os.write(fd, message)`` per call to a file,
same bytes, measured in alternation with the cases (best of several rounds each).
Goal: <= 2 µs per call and within 3x of the floor (write-through, one ``os.write`` per call by
design, is shown for information).

``python -m bench annotate``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable

from annotate import Client, wire
from bench.run import Result

GOAL_US = 2.0
GOAL_RATIO = 3.0
INFORMATIVE = ("file write-through",)

_LISTENER = r"""
import socket, sys, threading
prefix = sys.argv[1].encode()
def drain(c):
    while c.recv(1 << 20):
        pass
def serve(name):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(name)
    s.listen(64)
    while True:
        c, _ = s.accept()
        threading.Thread(target=drain, args=(c,), daemon=True).start()
threading.Thread(target=serve, args=(b"\0" + prefix + b"-parent",), daemon=True).start()
serve(b"\0" + prefix)
"""


def _start_listener(prefix: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _LISTENER, prefix])
    deadline = time.monotonic() + 10
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(b"\0" + prefix.encode())
            return proc
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("benchmark listener did not start") from None
            time.sleep(0.02)
        finally:
            s.close()


def _per_call(fn: Callable[[str], None], after: Callable[[], None], n: int, label: str) -> float:
    """CPU µs per call of fn(label), including ``after()`` (the flush)."""
    t0 = time.process_time()
    for _ in range(n):
        fn(label)
    after()
    return (time.process_time() - t0) / n * 1e6


def _floor(msg: bytes, n: int, fd: int) -> float:
    write = os.write
    return _per_call(lambda _: write(fd, msg), lambda: None, n, "")


def run(quick: bool) -> list[Result]:
    n, rounds = (20_000, 2) if quick else (100_000, 5)
    label = "conv1"
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-annotate-") as tmp:
        prefix = f"bench-annotate-{uuid.uuid4().hex[:10]}"
        listener = _start_listener(prefix)
        try:
            clients = {
                "gatord listener": Client(address_prefix=prefix),
                "file only": Client(file=os.path.join(tmp, "b.sbm"), gatord=False),
                "file write-through": Client(file=os.path.join(tmp, "c.sbm"), gatord=False, flush_interval=0),
                "no gatord, no file": Client(address_prefix=prefix + "-absent"),
            }
            for c in clients.values():
                c.setup()
                c.marker("warm-up")
                c.flush()
            fd = os.open(os.path.join(tmp, "floor.bin"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            prepared = {case: c.prepare_text(label) for case, c in clients.items()}
            calls = {
                "text": lambda c, case: c.text,
                "marker": lambda c, case: c.marker,
                "prepare_text(...)": lambda c, case: lambda _, send=prepared[case]: send(),
            }
            for call, method in calls.items():
                msg = wire.marker(wire.now(), label) if call == "marker" else wire.text(wire.now(), 0, label)
                floor = float("inf")
                best = dict.fromkeys(clients, float("inf"))
                for _ in range(rounds):
                    for case, c in clients.items():
                        floor = min(floor, _floor(msg, n, fd))
                        best[case] = min(best[case], _per_call(method(c, case), c.flush, n, label))
                for case, us in best.items():
                    if case in INFORMATIVE:  # an os.write per call by design: shown, not judged
                        goal, ok = "(information)", None
                    else:
                        goal, ok = (
                            f"<= {GOAL_US} µs, <= {GOAL_RATIO}x floor",
                            us <= GOAL_US and us <= GOAL_RATIO * floor,
                        )
                    results.append(
                        Result(
                            "annotate", f"{call}(), {case}", us, "µs/call (CPU)", floor, "os.write same bytes", goal, ok
                        )
                    )
            os.close(fd)
            for c in clients.values():
                c.close()
        finally:
            listener.kill()
            listener.wait()
    return results
