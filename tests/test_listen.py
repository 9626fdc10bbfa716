"""``streamline-bridge listen``: a real listener process, raw client sockets sending the recorded vectors.

Every wait is on a condition with a timeout (a line printed, a byte received, a file holding what
was sent), never a sleep.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest

from helpers import wait_until
from streamline_bridge.ingest import marker_log
from streamline_bridge.ingest.annotation_stream import decode

TIMEOUT = 20.0


class Running:
    """A listener subprocess on private socket names."""

    def __init__(self, out: Path, *extra: str):
        self.prefix = f"sb-test-{uuid.uuid4().hex[:12]}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamline_bridge",
                "listen",
                "-o",
                str(out),
                "--socket-prefix",
                self.prefix,
                "--flush-ms",
                "20",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.first_line = self.proc.stdout.readline()  # printed once the sockets are bound
        assert self.first_line.startswith("listening on"), self.proc.stderr.read()

    def connect(self, control: bool = False) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        s.connect(f"\0{self.prefix}{'-parent' if control else ''}".encode())
        return s

    def stop(self) -> tuple[int, str, str]:
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=TIMEOUT)
        return self.proc.returncode, out, err


@pytest.fixture(scope="module")
def streams(vectors):
    return {n: (vectors / "annotate" / f"annotate-v4-{n}.bin").read_bytes() for n in ("main", "worker")}


def send_interleaved(socks_and_data, seed: int) -> None:
    """Send each connection's bytes in random-size chunks, connections taking turns at random."""
    rng = random.Random(seed)
    left = [(s, memoryview(d)) for s, d in socks_and_data]
    while left:
        i = rng.randrange(len(left))
        s, d = left[i]
        n = rng.randint(1, 64)
        s.sendall(d[:n])
        if len(d) <= n:
            s.close()
            left.pop(i)
        else:
            left[i] = (s, d[n:])


def test_many_connections_garbage_dropped(tmp_path, streams):
    out = tmp_path / "listen.sbm"
    lst = Running(out)
    control = lst.connect(control=True)
    assert control.recv(1) == b"\x00"  # "capture started"
    good = [streams["main"], streams["worker"], streams["main"]]
    cut = streams["worker"][:38] + streams["worker"][38:45]  # ends inside its second message
    bad_after_handshake = streams["worker"][:38] + b"\x55" + bytes(30)
    garbage = b"GET / HTTP/1.0\r\n\r\n"
    payloads = good + [cut, bad_after_handshake, garbage]
    socks = [lst.connect() for _ in payloads]
    send_interleaved(list(zip(socks, payloads)), seed=7)

    def all_closed():
        if not out.exists():
            return None
        rec = marker_log.read(out)
        return rec if sum(e["closed"] for e in rec.meta.extra["streams"]) == 5 else None

    rec = wait_until(all_closed, TIMEOUT, "5 closed streams in the log")  # written while running (flush interval)
    rc, stdout, stderr = lst.stop()
    assert rc == 0
    assert "messages from 6 connection(s), 2 dropped for bad bytes" in stdout
    warnings = [line for line in stderr.splitlines() if "warning" in line]
    assert len(warnings) == 3, stderr
    assert any("at byte 0: not an annotation stream" in w and "connection dropped" in w for w in warnings)
    assert any("at byte 38: unknown message code 85" in w and "connection dropped" in w for w in warnings)
    assert any("at byte 38: stream ends inside a message" in w for w in warnings)
    assert all(f"(pid {os.getpid()})" in w for w in warnings)

    rec = marker_log.read(out)
    assert not rec.meta.partial and rec.meta.issues == [] and rec.meta.extra["writer"] == "listen"
    check_streams(rec, streams)
    assert sorted(e["messages"] for e in rec.meta.extra["streams"]) == [1, 1, 2, 29, 29]


def check_streams(rec, streams) -> None:
    """Every stream in the log holds the leading messages of the vector with its tid, decoded alike."""
    for e in rec.meta.extra["streams"]:
        got = rec.markers[rec.markers["stream"] == e["stream"]].reset_index(drop=True)
        vector = streams["main" if e["tid"] == 12507 else "worker"]
        want = decode(vector).markers(stream=e["stream"], clock_base_ns=rec.meta.clock_base_ns)
        assert len(got) == e["messages"]
        pd.testing.assert_frame_equal(got, want.iloc[: len(got)])


def test_stop_takes_what_was_already_sent(tmp_path, streams):
    """SIGTERM right after the clients finished: the listener drains its backlog and sockets first."""
    out = tmp_path / "drain.sbm"
    lst = Running(out, "--flush-ms", "100000")
    socks = [lst.connect() for _ in range(4)]
    send_interleaved([(s, streams["main" if i % 2 else "worker"]) for i, s in enumerate(socks)], seed=3)
    rc, stdout, stderr = lst.stop()
    assert rc == 0 and "warning" not in stderr
    assert "62 messages from 4 connection(s), written to" in stdout
    rec = marker_log.read(out)
    assert len(rec.markers) == 62 and not rec.meta.partial
    assert sorted(e["messages"] for e in rec.meta.extra["streams"]) == [2, 2, 29, 29]
    check_streams(rec, streams)


def test_tcp(tmp_path, streams):
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    out = tmp_path / "tcp.sbm"
    lst = Running(out, "--tcp", "--tcp-ports", f"{ports[0]},{ports[1]}")
    assert f"127.0.0.1:{ports[0]}/{ports[1]}" in lst.first_line
    with socket.create_connection(("127.0.0.1", ports[0]), timeout=TIMEOUT) as control:
        assert control.recv(1) == b"\x00"
        with socket.create_connection(("127.0.0.1", ports[1]), timeout=TIMEOUT) as data:
            data.sendall(streams["worker"])
        rc, stdout, _ = lst.stop()
    assert rc == 0 and "2 messages from 1 connection(s)" in stdout
    assert list(marker_log.read(out).markers["text"]) == ["worker", ""]


def test_address_in_use_is_one_clear_error(tmp_path):
    lst = Running(tmp_path / "a.sbm")
    try:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "streamline_bridge",
                "listen",
                "-o",
                str(tmp_path / "b.sbm"),
                "--socket-prefix",
                lst.prefix,
            ],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    finally:
        rc, stdout, _ = lst.stop()
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert f"cannot listen on unix abstract @{lst.prefix}-parent" in r.stderr and "another listener" in r.stderr
    assert rc == 0 and "0 messages from 0 connection(s)" in stdout


def test_large_message_in_small_pieces(tmp_path):
    from annotate import wire

    image = bytes(range(256)) * 4096  # 1 MiB: arrives over many reads
    stream = wire.handshake(5, 6) + wire.visual(123, "frame", image) + wire.text(124, 0, "after")
    out = tmp_path / "big.sbm"
    lst = Running(out)
    s = lst.connect()
    for i in range(0, len(stream), 4096):
        s.sendall(stream[i : i + 4096])
    s.close()
    rc, stdout, stderr = lst.stop()
    assert rc == 0 and "warning" not in stderr and "2 messages from 1 connection(s)" in stdout
    rec = marker_log.read(out)
    assert list(rec.markers["kind"]) == ["visual", "text"] and rec.meta.extra["streams"][0]["bytes"] == len(stream)


BURST = """
import sys, threading
from annotate import Client
prefix, n_clients, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
clients = [Client(address_prefix=prefix, flush_interval=60, retry_interval=0.2, send_timeout=30) for _ in range(n_clients)]
start = threading.Barrier(n_clients)
def work(k):
    c = clients[k]
    start.wait()
    c.setup()  # all at once: control and data connections in one burst
    for i in range(n):
        c.marker(f"{k}:{i}")
    c.close()  # waits (up to send_timeout) until every byte is taken
threads = [threading.Thread(target=work, args=(k,)) for k in range(n_clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


def test_a_burst_of_200_clients_is_delivered_whole(tmp_path):
    out = tmp_path / "burst.sbm"
    lst = Running(out)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLINE_ANNOTATE_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    r = subprocess.run(
        [sys.executable, "-c", BURST, lst.prefix, "200", "20"], env=env, capture_output=True, text=True, timeout=120
    )
    rc, stdout, stderr = lst.stop()
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert rc == 0 and "warning" not in stderr, stderr
    assert "4000 messages from 200 connection(s)" in stdout
    rec = marker_log.read(out)
    by_stream = rec.markers.groupby("stream")["text"].apply(list)
    assert sorted(by_stream, key=lambda t: int(t[0].split(":")[0])) == [
        [f"{k}:{i}" for i in range(20)] for k in range(200)
    ]


def test_a_burst_while_the_listener_is_stopped_waits_in_the_backlog(tmp_path, streams):
    """200 connects while the listener cannot accept (SIGSTOP): all fit in its backlog, none is refused."""
    if int(Path("/proc/sys/net/core/somaxconn").read_text()) < 200:
        pytest.skip("net.core.somaxconn caps every backlog below 200 here")
    out = tmp_path / "backlog.sbm"
    lst = Running(out)
    lst.proc.send_signal(signal.SIGSTOP)
    try:
        socks = []
        for _ in range(200):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect(f"\0{lst.prefix}".encode())  # BlockingIOError (EAGAIN) if the backlog were full
            socks.append(s)
    finally:
        lst.proc.send_signal(signal.SIGCONT)
    for s in socks:
        s.setblocking(True)
        s.sendall(streams["worker"])
        s.close()
    wait_until(lambda: out.exists() and len(marker_log.read(out).meta.extra["streams"]) == 200, TIMEOUT, "200 streams")
    rc, stdout, stderr = lst.stop()
    assert rc == 0 and "400 messages from 200 connection(s)" in stdout and "warning" not in stderr


class Warnings:
    """The listener's stderr, collected line by line while it runs (``lst.stop()`` then finds it empty)."""

    def __init__(self, lst: Running):
        import threading

        self.lines: list[str] = []
        self._t = threading.Thread(target=lambda: self.lines.extend(iter(lst.proc.stderr.readline, "")), daemon=True)
        self._t.start()

    def wait(self, text: str, count: int = 1) -> list[str]:
        return wait_until(
            lambda: len(found := [w for w in self.lines if text in w]) >= count and found, TIMEOUT, repr(text)
        )


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def unread(s: socket.socket) -> int:
    """Bytes sent on ``s`` that the listener has not read yet (SIOCOUTQ)."""
    import fcntl
    import struct
    import termios

    return struct.unpack("i", fcntl.ioctl(s, termios.TIOCOUTQ, b"\0" * 4))[0]


def send_unfinished(s: socket.socket, body: int) -> None:
    """A handshake, then a visual message announced at 31 MiB of which ``body`` MiB come."""
    import struct

    from annotate import wire

    s.sendall(wire.handshake(5, 6) + b"\x05" + struct.pack("<I", 31 << 20))
    piece = bytes(1 << 20)
    try:
        for _ in range(body):
            s.sendall(piece)
    except (BrokenPipeError, ConnectionResetError):  # dropped by the listener
        pass


def test_unfinished_messages_are_capped_per_connection_and_in_total_and_memory_returned(tmp_path):
    out = tmp_path / "caps.sbm"
    lst = Running(out, "--max-message", "8", "--max-memory", "16")
    warnings = Warnings(lst)
    base = memory_kib(lst.proc.pid, "VmRSS")
    me = f"(pid {os.getpid()})"
    # one connection passes the per-connection cap
    over = lst.connect()
    send_unfinished(over, 20)
    (w,) = warnings.wait("message over 8 MiB; message and connection dropped")
    assert me in w and "connection 1" in w
    over.close()
    # two hold 7 MiB each; a third passes the total
    holders = [lst.connect() for _ in range(2)]
    for s in holders:
        send_unfinished(s, 7)
    wait_until(lambda: all(unread(s) == 0 for s in holders), TIMEOUT, "the listener to read the held bytes")
    third = lst.connect()
    send_unfinished(third, 7)
    (w,) = warnings.wait("unfinished messages over 16 MiB in all connections; message and connection dropped")
    assert "connection 4" in w and me in w
    peak = memory_kib(lst.proc.pid, "VmHWM")
    assert peak - base < 40 * 1024, f"listener grew by {(peak - base) // 1024} MiB with 16 MiB held at most"
    for s in holders + [third]:
        s.close()
    warnings.wait("the incomplete message is not written", 2)
    wait_until(
        lambda: memory_kib(lst.proc.pid, "VmRSS") - base < 6 * 1024, TIMEOUT, "the held memory to be handed back"
    )
    # and the listener goes on
    ok = lst.connect()
    ok.sendall(wire_worker())
    ok.close()
    rc, stdout, _ = lst.stop()
    assert rc == 0 and "2 messages from 5 connection(s), 2 dropped for size, written to" in stdout
    assert list(marker_log.read(out).markers["text"]) == ["worker", ""]


def wire_worker() -> bytes:
    from annotate import wire

    return wire.handshake(7, 8) + wire.text(1, 0, "worker") + wire.text(2, 0, None)


def test_out_of_file_descriptors_refuses_and_goes_on(tmp_path):
    import resource

    out = tmp_path / "fds.sbm"
    limit = 64
    orig = subprocess.Popen
    try:  # the listener runs with a low descriptor limit
        subprocess.Popen = lambda *a, **k: orig(
            *a, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)), **k
        )
        lst = Running(out)
    finally:
        subprocess.Popen = orig
    warnings = Warnings(lst)
    socks = [lst.connect() for _ in range(limit + 40)]  # they wait in the backlog; the listener takes what it can
    warnings.wait("out of file descriptors")
    assert lst.proc.poll() is None  # still running
    for s in socks:
        s.close()
    ok = lst.connect()
    ok.sendall(wire_worker())
    ok.close()
    wait_until(
        lambda: out.exists() and len(marker_log.read(out).markers) == 2, TIMEOUT, "the new connection's messages"
    )
    rc, stdout, _ = lst.stop()
    assert rc == 0 and "2 messages from" in stdout and " refused, written to" in stdout
    assert [w for w in warnings.lines if "warning" in w and "out of file descriptors" not in w] == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another user")
@pytest.mark.parametrize("tcp", [False, True])
def test_only_this_user_and_root_may_write_unless_allowed(tmp_path, tcp):
    """The listener (root here) refuses a client of user 65534; --allow-any-user accepts it."""
    for allow in (False, True):
        out = tmp_path / f"users-{allow}.sbm"
        extra = ["--allow-any-user"] if allow else []
        if tcp:
            ports = []
            for _ in range(2):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", 0))
                    ports.append(s.getsockname()[1])
            extra += ["--tcp", "--tcp-ports", f"{ports[0]},{ports[1]}"]
            target = f"('127.0.0.1', {ports[1]})"
            family = "AF_INET"
        else:
            family = "AF_UNIX"
        lst = Running(out, *extra)
        if not tcp:
            target = repr(f"\0{lst.prefix}")
        client = (
            "import socket\n"  # (sending fails once the listener has refused it)
            f"s = socket.socket(socket.{family}, socket.SOCK_STREAM)\n"
            f"s.connect({target})\n"
            "try:\n"
            f"    s.sendall(bytes.fromhex({wire_worker().hex()!r}))\n"
            "    s.shutdown(socket.SHUT_WR)\n"
            "    s.recv(1)\n"
            "except OSError:\n"
            "    pass\n"
        )
        r = subprocess.run(
            ["/usr/bin/python3", "-c", client], user=65534, capture_output=True, text=True, timeout=TIMEOUT, cwd="/"
        )
        assert r.returncode == 0, r.stderr
        if allow:
            wait_until(
                lambda log=out: log.exists() and len(marker_log.read(log).markers) == 2,
                TIMEOUT,
                "the stranger's messages",
            )
        rc, stdout, stderr = lst.stop()
        assert rc == 0
        if allow:
            assert "2 messages from 1 connection(s), written to" in stdout and "warning" not in stderr
        else:
            assert "0 messages from 0 connection(s), 1 refused" in stdout
            (w,) = [line for line in stderr.splitlines() if "warning" in line]
            assert "refused a connection from" in w and "user 65534" in w and "--allow-any-user" in w
            assert len(marker_log.read(out).markers) == 0


def test_a_message_the_listener_keeps_refusing_is_given_up_by_the_client(tmp_path, capfd):
    """The listener drops the connection at a message over --max-message; the client resends it on new
    connections, gives it up after three, and what follows arrives."""
    from annotate import Client

    out = tmp_path / "refused.sbm"
    lst = Running(out, "--max-message", "1")
    c = Client(address_prefix=lst.prefix, flush_interval=60, retry_interval=0.05, send_timeout=20)
    c.setup()
    c.marker("before")
    c.visual(bytes(2 << 20), "too big")
    c.marker("after")
    c.flush()  # waits (up to send_timeout) for the retries
    c.close()
    wait_until(
        lambda: out.exists() and list(marker_log.read(out).markers["text"]) == ["before", "after"],
        TIMEOUT,
        "both markers at the listener",
    )
    rc, stdout, stderr = lst.stop()
    assert rc == 0 and "2 messages from 4 connection(s), 3 dropped for size" in stdout
    assert stderr.count("message over 1 MiB") == 3
    err = capfd.readouterr().err
    assert "gatord closed the connection 3 times during one" in err and "it is not sent to gatord" in err
