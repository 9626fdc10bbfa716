"""The client across process boundaries: fork, SIGKILL, SIGTERM/SIGINT, an uncaught exception.

Each case runs a small script in a fresh interpreter (so the pytest process is never forked or
signalled) and checks the bytes that reached the fake gatord or the marker log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from annotate_support import FakeGatord, unique_prefix, walk_marker_log
from helpers import wait_until

ROOT = Path(__file__).resolve().parents[1]
PYTHON = os.environ.get("ANNOTATE_TEST_PYTHON", sys.executable)  # the scripts' interpreter: any Python 3.6+


def spawn(script: str, *args: str, cwd: Path | None = None) -> subprocess.Popen:
    """The script in a fresh interpreter; its stdin is a pipe the test holds as ``stdin_w``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for k in list(env):
        if k.startswith("STREAMLINE_ANNOTATE_"):
            del env[k]
    p = subprocess.Popen(
        [PYTHON, "-c", textwrap.dedent(script), *args],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )
    p.stdin_w, p.stdin = p.stdin, None  # communicate() leaves it alone; closing it is the test's signal
    return p


def texts(stream) -> list[str]:
    """The labels of the marker messages of a stream (time field skipped)."""
    from annotate_support import sleb

    return [body[sleb(body, 0)[1] :].decode() for code, body in stream.messages if code == 0x06]


FORK = """
    import os, sys, annotate
    annotate.setup(file=sys.argv[2], address_prefix=sys.argv[1], flush_interval=60)
    annotate.marker("parent before")
    annotate.flush()
    annotate.marker("unflushed at fork")
    pid = os.fork()
    if pid == 0:
        annotate.marker("child")
        annotate.shutdown()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    annotate.marker("parent after")
    print(pid, os.getpid(), status, flush=True)
"""


def test_fork_child_gets_its_own_connection_and_stream(tmp_path):
    g = FakeGatord(unique_prefix())
    log = tmp_path / "fork.sbm"
    try:
        p = spawn(FORK, g.prefix, str(log))
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        child, parent, status = map(int, out.split())
        assert status == 0
        # gatord's threads may still be accepting or reading what the exited processes sent
        wait_until(lambda: len(g.closed) == 2 and all(e.is_set() for e in g.closed), 20, "both connections read to EOF")
        g_streams = {(s.pid, s.tid): s for s in g.streams()}
    finally:
        g.stop()
    assert set(g_streams) == {(parent, parent), (child, child)}
    assert texts(g_streams[(parent, parent)]) == ["parent before", "unflushed at fork", "parent after"]
    assert texts(g_streams[(child, child)]) == ["child"]  # none of the parent's buffered messages
    f_streams = walk_marker_log(log).streams()
    assert {k: texts(s) for k, s in f_streams.items()} == {k: texts(s) for k, s in g_streams.items()}


SIGKILL_WRITER = """
    import sys, annotate
    annotate.setup(file=sys.argv[1], gatord=False, flush_interval=0.05)
    i = 0
    while True:
        annotate.marker(f"m{i}")
        if i % 500 == 499:
            annotate.flush()
            print(i, flush=True)
        i += 1
"""


def test_sigkill_keeps_everything_up_to_the_last_flush(tmp_path):
    log = tmp_path / "kill.sbm"
    p = spawn(SIGKILL_WRITER, str(log))
    flushed = -1
    try:
        while flushed < 4999:
            line = p.stdout.readline()
            assert line, p.stderr.read()
            flushed = int(line)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(10)
    assert p.returncode == -signal.SIGKILL
    m = walk_marker_log(log)  # every record whole, every messages record holds whole messages
    assert m.end == m.size
    (s,) = m.streams().values()
    got = texts(s)
    assert len(got) > flushed
    assert got == [f"m{i}" for i in range(len(got))]
    # and the project's reader agrees
    marker_log = pytest.importorskip("streamline_bridge.ingest.marker_log")
    rec = marker_log.read(log)
    assert not rec.meta.partial
    assert list(rec.markers["text"]) == got


EXIT = """
    import signal, sys, threading, time, annotate
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "sigterm-app-handler":
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(3))
    annotate.setup(file=path, gatord=False, flush_interval=60)
    worker_done = threading.Event()
    def worker():
        for i in range(100):
            annotate.marker(f"w{i}")
        worker_done.set()
        time.sleep(60)
    threading.Thread(target=worker, daemon=True).start()
    worker_done.wait()
    for i in range(100):
        annotate.marker(f"m{i}")
    if mode == "exception":
        raise RuntimeError("the application failed")
    print("ready", flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize(
    "mode, sig, returncode",
    [
        ("sigterm", signal.SIGTERM, -signal.SIGTERM),
        ("sigterm-app-handler", signal.SIGTERM, 3),
        ("sigint", signal.SIGINT, -signal.SIGINT),  # KeyboardInterrupt, then re-raised
        ("exception", None, 1),
    ],
)
def test_exit_paths_flush_everything(tmp_path, mode, sig, returncode):
    log = tmp_path / f"{mode}.sbm"
    p = spawn(EXIT, mode, str(log))
    if sig is not None:
        assert p.stdout.readline() == "ready\n", p.stderr.read()
        p.send_signal(sig)
    _, err = p.communicate(timeout=30)
    assert p.returncode == returncode, err
    m = walk_marker_log(log)
    streams = m.streams()
    assert sorted(texts(s) for s in streams.values()) == [[f"m{i}" for i in range(100)], [f"w{i}" for i in range(100)]]
    assert [k for k, _, _ in m.records].count(3) == 2  # both streams closed


def test_readme_example_runs_and_writes_its_marker_log(tmp_path):
    section = (ROOT / "README.md").read_text().split("## Annotating a Python program", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    p = spawn(code, cwd=tmp_path)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    (s,) = walk_marker_log(tmp_path / "run.sbm").streams().values()
    codes = [code for code, _ in s.messages]
    assert codes[:2] == [0x04, 0x03]
    assert codes.count(0x07) == 2 and codes.count(0x08) == 2 and codes.count(0x09) == 4
    # 2 coloured texts; 2 plain ones (preprocess) + 2 prepared (relu1); 4 ends of regions + 2 prepared
    assert codes.count(0x02) == 2 and codes.count(0x01) == 4 + 6


MULTIPROCESSING = """
    import multiprocessing, sys, annotate
    def work(i):
        for j in range(50):
            annotate.marker(f"child {i} {j}")
    if __name__ == "__main__":
        annotate.setup(file=sys.argv[1], gatord=False, flush_interval=60)
        annotate.marker("parent")
        ps = [multiprocessing.get_context("fork").Process(target=work, args=(i,)) for i in range(3)]
        for p in ps:
            p.start()
        for p in ps:
            p.join()
        print(*(p.pid for p in ps), flush=True)
"""


def test_multiprocessing_children_flush_before_os_exit(tmp_path):
    log = tmp_path / "mp.sbm"
    p = spawn(MULTIPROCESSING, str(log))
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    children = list(map(int, out.split()))
    streams = {pid: texts(s) for (pid, tid), s in walk_marker_log(log).streams().items()}
    assert {pid: streams[pid] for pid in children} == {
        pid: [f"child {i} {j}" for j in range(50)] for i, pid in enumerate(children)
    }
    assert len(streams) == 4


RUNNING_THREADS = """
    import mmap, os, struct, sys, threading, annotate
    mode, path, counts = sys.argv[1], sys.argv[2], sys.argv[3]
    n = 4
    if mode == "sigterm-env":  # set up from the environment at the first call, made by a thread
        os.environ.update(STREAMLINE_ANNOTATE_FILE=path, STREAMLINE_ANNOTATE_GATORD="0")
    else:
        annotate.setup(file=path, gatord=False, flush_interval=0.05)
    fd = os.open(counts, os.O_RDWR)
    done = mmap.mmap(fd, 8 * n)  # per thread: how many calls have returned (survives the process)
    started = threading.Barrier(n + 1)
    def work(k):
        started.wait()
        i = 0
        while True:
            annotate.marker(f"{k}:{i}")
            i += 1
            struct.pack_into("<q", done, 8 * k, i)
    for k in range(n):
        threading.Thread(target=work, args=(k,), daemon=not mode.startswith("sigterm")).start()
    started.wait()
    print("ready", flush=True)
    sys.stdin.readline()  # the test closes stdin for "exception"; a signal interrupts this
    raise RuntimeError("the application failed")
"""


@pytest.mark.parametrize(
    "mode, sig, returncode",
    [
        ("sigterm", signal.SIGTERM, -signal.SIGTERM),  # non-daemon threads still writing when the signal comes
        ("sigterm-env", signal.SIGTERM, -signal.SIGTERM),  # the same, the client's first call from a thread
        ("sigint", signal.SIGINT, -signal.SIGINT),  # KeyboardInterrupt, daemon threads writing through exit
        ("exception", None, 1),
    ],
)
def test_no_returned_call_is_lost_when_the_process_ends_with_threads_writing(tmp_path, mode, sig, returncode):
    import struct

    log, counts = tmp_path / f"{mode}.sbm", tmp_path / "counts"
    counts.write_bytes(bytes(8 * 4))
    p = spawn(RUNNING_THREADS, mode, str(log), str(counts))
    assert p.stdout.readline() == "ready\n", p.stderr.read()

    def returned() -> list[int]:
        return list(struct.unpack("<4q", counts.read_bytes()))

    wait_until(lambda: min(returned()) >= 2000, 20, "every thread to make 2000 calls")
    if sig is None:
        p.stdin_w.close()
    else:
        p.send_signal(sig)
    _, err = p.communicate(timeout=30)
    assert p.returncode == returncode or (sig == signal.SIGINT and p.returncode == 1), err  # 1 before Python 3.8
    made = returned()  # final: the process is gone
    streams = {s.tid: texts(s) for s in walk_marker_log(log).streams().values()}
    got = sorted(streams.values(), key=lambda t: t[0] if t else "")
    assert len(got) == 4
    for k, labels in enumerate(got):
        assert labels == [f"{k}:{i}" for i in range(len(labels))]  # in order, nothing missing in between
        assert len(labels) >= made[k], f"thread {k}: {made[k]} calls returned, {len(labels)} in the log"


JOINED = """
    import sys, threading, annotate
    annotate.setup(file=sys.argv[1], gatord=False, flush_interval=60)
    go = threading.Event()
    def work(k):
        for i in range(5000):
            annotate.marker(f"{k}:{i}")
        go.wait()
        annotate.flush()  # a round after Ctrl-C: Python 3.11/3.12 already call this thread stopped
        for i in range(5000, 10000):
            annotate.marker(f"{k}:{i}")
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    threading.Thread(target=lambda: (sys.stdin.read(), go.set()), daemon=True).start()
    print("ready", flush=True)
    for t in threads:
        t.join()
"""


def test_ctrl_c_during_thread_join_loses_nothing_of_the_joined_threads(tmp_path):
    """Python 3.11/3.12 mark a thread stopped when Ctrl-C interrupts its join() (it runs on, and the
    interpreter no longer waits for it at exit): its stream must stay open and be waited for."""
    log = tmp_path / "join.sbm"
    p = spawn(JOINED, str(log))
    assert p.stdout.readline() == "ready\n", p.stderr.read()
    # the main thread is blocked in join() once it sleeps (the workers wait for stdin to close)
    wait_until(lambda: Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "S", 20, "join()")
    p.send_signal(signal.SIGINT)
    p.stdin_w.close()
    _, err = p.communicate(timeout=30)
    assert p.returncode in (-signal.SIGINT, 1) and "KeyboardInterrupt" in err, err  # (1 before Python 3.8)
    streams = sorted((texts(s) for s in walk_marker_log(log).streams().values()), key=lambda t: t[0])
    assert streams == [[f"{k}:{i}" for i in range(10000)] for k in range(4)]
