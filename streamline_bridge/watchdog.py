"""Ends a command's whole process tree when the process that started it dies, even by SIGKILL.

    python -m streamline_bridge.watchdog PID    (stdin: a pipe from the starter)

``record`` starts it beside its command, in a session of its own (a signal to record's process
group does not reach it), holding the write end of its stdin. While the command runs it follows
the command's descendants in /proc, so it knows the children the command forks, also those that
outlive their parent or start a session of their own. When its stdin ends without the line
``done`` (the starter died), every process of the tree still alive gets SIGTERM, and SIGKILL
``GRACE_S`` later if it is still there (a command that ignores SIGTERM). It leaves by itself
once the tree is gone. Linux (/proc) only; processes are told apart from a reused pid by their
start time.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

GRACE_S = 2.0  # between SIGTERM and SIGKILL
POLL_S = 0.5  # how often the tree is followed (a scan of /proc: about 2 ms for 80 processes here)
DONE = b"done\n"


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a living process; None when it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in (b"Z", b"X") else (int(fields[1]), int(fields[19]))


def follow(known: dict[int, int]) -> dict[int, int]:
    """``known`` (pid -> start time) less the processes gone, plus the living descendants of the others."""
    procs = {int(n): st for n in os.listdir("/proc") if n.isdigit() and (st := _stat(int(n))) is not None}
    alive = {pid: start for pid, start in known.items() if pid in procs and procs[pid][1] == start}
    grew = True
    while grew:
        new = {pid: start for pid, (ppid, start) in procs.items() if ppid in alive and pid not in alive}
        alive.update(new)
        grew = bool(new)
    return alive


def _signal(known: dict[int, int], signum: int) -> None:
    for pid in known:
        try:
            os.kill(pid, signum)
        except OSError:
            pass


def end_tree(known: dict[int, int], grace_s: float = GRACE_S) -> None:
    """SIGTERM to every process of the tree, SIGKILL ``grace_s`` later to what is left (and to
    what it started meanwhile)."""
    known = follow(known)
    _signal(known, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while known and time.monotonic() < deadline:
        time.sleep(0.05)
        known = follow(known)
    _signal(known, signal.SIGKILL)


def watch(pid: int, fd: int) -> None:
    """Follow ``pid``'s tree until ``fd`` gives ``DONE`` (the starter is fine) or ends (it died:
    the tree is ended), or until the tree is gone."""
    first = _stat(pid)
    known = {pid: first[1]} if first is not None else {}
    said = b""
    while known:
        ready, _, _ = select.select([fd], [], [], POLL_S)
        known = follow(known)
        if ready:
            data = os.read(fd, 64)
            said += data
            if DONE in said:
                return
            if not data:
                end_tree(known)
                return


def start(pid: int) -> subprocess.Popen[bytes]:
    """The watchdog of ``pid``, started; write :data:`DONE` to its stdin when ``pid`` has ended
    normally (:func:`release`)."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", "streamline_bridge.watchdog", str(pid)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )


def release(dog: subprocess.Popen[bytes]) -> None:
    """Tell the watchdog all is well and wait for it to leave."""
    assert dog.stdin is not None
    try:
        dog.stdin.write(DONE)
        dog.stdin.close()
    except OSError:  # it left already: the tree was gone
        pass
    try:
        dog.wait(10)
    except subprocess.TimeoutExpired:
        dog.kill()
        dog.wait()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C at the terminal is for the command and record
    watch(int(sys.argv[1]), sys.stdin.fileno())
