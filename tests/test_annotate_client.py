"""The client in one process: API -> bytes (against Arm's recording), gatord life cycle, mirror."""

from __future__ import annotations

import socket
import threading

import pytest

import annotate
from annotate import Client, wire
from annotate_support import (
    TIMED_CODES,
    FakeGatord,
    parse_stream,
    sleb,
    unique_prefix,
    walk_marker_log,
)
from helpers import wait_until

IMG = bytes.fromhex("89504e470d0a1a0a")


@pytest.fixture
def gatord():
    g = FakeGatord(unique_prefix())
    yield g
    g.stop()


def without_time(messages: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """(code, body minus its leading time field) for every message."""
    return [(code, body[sleb(body, 0)[1] :] if code in TIMED_CODES else body) for code, body in messages]


def replay_v4_sequence(c: Client, tid: int) -> None:
    """vectors/README.md steps 1-17, 20-31 through the public API (step 21's tid given)."""
    c.name_group(1, "Caffe")
    c.name_channel(3, 1, "layers")
    c.text("conv1", channel=3, color=annotate.GREEN)
    c.end(3)
    c.text("pool1", channel=3)
    c.end(3)
    c.text("hello")
    c.end()
    c.text("red text", color=annotate.RED)
    c.marker()
    c.marker("epoch 1")
    c.marker(color=annotate.YELLOW)
    c.marker("blue marker", color=annotate.BLUE)
    c.absolute_counter(1, "Power", "GPU rail")
    c.delta_counter(2, "Images", "processed")
    c.counter_value(1, 1234)
    c.counter_value(2, 3000000000)
    c.counter(
        3,
        "Engine",
        "State",
        counter_class=annotate.ACTIVITY,
        display=annotate.AVERAGE,
        units="",
        modifier=1,
        series_composition=annotate.STACKED,
        rendering_type=annotate.BAR,
        activities=("Load", "Run"),
        activity_colors=(annotate.RED, annotate.GREEN),
        cores=1,
        color=annotate.COLOR_CYCLE,
        description="demo activity counter",
    )
    c.activity_switch(3, 2, tid, core=0)
    c.cam_view_name(0x1234, "Pipeline")
    c.cam_track(0x1234, 1, -1, "Stage A")
    c.cam_track(0x1234, 2, 1, "Stage B")
    c.cam_job(0x1234, 100, "job100", 1, 2000000000, 500000, annotate.COLOR_T1)
    c.cam_job(0x1234, 101, "job101", 2, 2000600000, 250000, annotate.CYAN, dependencies=[100])
    c.cam_job(0x1234, 102, "job102", 1, 2001000000, 100000, annotate.PURPLE, -1, [100, 101])
    c.cam_job_start(0x1234, 103, "job103", 2, 2002000000, annotate.WHITE)
    c.cam_job_set_dependencies(0x1234, 103, 2002000001, -1, [102])
    c.cam_job_stop(0x1234, 103, 2002500000)
    c.visual(IMG, "frame0")


def test_api_replay_matches_arm_recording_via_gatord_and_file(vectors, gatord, tmp_path):
    recorded = parse_stream((vectors / "annotate" / "annotate-v4-main.bin").read_bytes())
    log = tmp_path / "m.sbm"
    c = Client(file=log, protocol=4, address_prefix=gatord.prefix)
    c.setup()
    t0 = wire.now()
    replay_v4_sequence(c, recorded.tid)
    c.flush()
    wait_until(lambda: gatord.streams() and len(gatord.streams()[0].messages) == len(recorded.messages))
    c.close()
    ours = gatord.streams()[0]
    assert ours.magic == b"ANNOTATE 4\n" and ours.tid == threading.get_native_id() and ours.flag == 0
    assert without_time(ours.messages) == without_time(recorded.messages)
    assert all(t0 <= t <= wire.now() for t in ours.times())
    # the marker log holds the same stream, byte for byte
    (mirrored,) = walk_marker_log(log).streams().values()
    assert mirrored == ours


def test_threads_16x10000_all_arrive_in_order_on_their_own_connections(gatord, tmp_path):
    log = tmp_path / "t.sbm"
    c = Client(file=log, address_prefix=gatord.prefix)
    c.setup()
    n_threads, n = 16, 10_000
    tids: dict[int, int] = {}
    start = threading.Barrier(n_threads)

    def work(k: int) -> None:
        tids[k] = threading.get_native_id()
        start.wait()
        for i in range(n):
            if i % 2:
                c.marker(f"{k}:{i}")
            else:
                c.text(f"{k}:{i}", channel=k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    c.flush()  # the threads have ended: their streams are finished and their connections closed
    wait_until(lambda: len(gatord.closed) == n_threads and all(e.is_set() for e in gatord.closed), 30, "all EOFs")
    c.close()
    by_tid = {s.tid: s for s in gatord.streams()}
    mirrored = {tid: s for (pid, tid), s in walk_marker_log(log).streams().items()}
    assert set(by_tid) == set(mirrored) == set(tids.values())
    for k, tid in tids.items():
        s = by_tid[tid]
        assert s.rest == b""
        assert [code for code, _ in s.messages] == [0x06 if i % 2 else 0x01 for i in range(n)]
        texts = [body[sleb(body, 0)[1] :] for _, body in s.messages]
        expected = [f"{k}:{i}".encode() if i % 2 else wire.p32(k) + f"{k}:{i}".encode() for i in range(n)]
        assert texts == expected
        assert s.times() == sorted(s.times())
        assert mirrored[tid] == s


def test_gatord_restart_resends_definitions_first(gatord):
    c = Client(address_prefix=gatord.prefix, flush_interval=0.02, retry_interval=0.05)
    c.setup()
    c.absolute_counter(1, "Power", "GPU rail")
    c.cam_view_name(5, "View")
    c.cam_track(5, 1, -1, "Track")
    c.delta_counter(2, "Images", "processed")
    c.marker("before")
    c.flush()
    wait_until(lambda: gatord.streams() and len(gatord.streams()[0].messages) == 5)
    assert c.capturing

    gatord.stop()
    for i in range(100):  # gatord gone: calls carry on, nothing raises
        c.marker(f"during {i}")
        c.counter_value(1, i)
    wait_until(lambda: not c.capturing, what="the client to notice gatord went away")

    g2 = FakeGatord(gatord.prefix)
    try:
        wait_until(lambda: g2.controls, what="the control connection")
        c.marker("made before the capture started")  # not sent, as with Arm's library
        c.flush()
        g2.start_capture()
        wait_until(lambda: c.capturing, what="the capture start to be seen")
        c.marker("after")
        c.flush()
        wait_until(lambda: g2.streams() and len(g2.streams()[0].messages) == 5)
        (s,) = g2.streams()
        assert s.tid == threading.get_native_id()
        assert s.messages[:4] == [
            (0x08, wire.counter(2, "Images", "processed", counter_class=wire.DELTA, display=wire.ACCUMULATE)[5:]),
            (0x08, wire.counter(1, "Power", "GPU rail")[5:]),
            (0x0B, wire.cam_track(5, 1, -1, "Track")[5:]),
            (0x0D, wire.cam_view_name(5, "View")[5:]),
        ]
        assert s.messages[4][0] == 0x06 and s.messages[4][1].endswith(b"after")
    finally:
        c.close()
        g2.stop()


def test_tcp_transport_and_a_large_visual():
    image = bytes(range(256)) * 1024  # 256 KiB: four times the buffer size
    g = FakeGatord(tcp=True)
    try:
        c = Client(tcp=True, tcp_ports=g.ports)
        c.setup()
        c.marker("over tcp")
        c.visual(image, "big")
        c.flush()
        wait_until(lambda: g.streams() and len(g.streams()[0].messages) == 2)
        c.close()
        (s,) = g.streams()
        assert s.messages[0][0] == 0x06 and s.messages[0][1].endswith(b"over tcp")
        assert s.messages[1][0] == 0x05 and s.messages[1][1].endswith(b"big\0" + image)
    finally:
        g.stop()


def test_no_gatord_no_file_drops_quietly(capfd):
    c = Client(address_prefix=unique_prefix())
    c.setup()
    wait_until(lambda: not c.capturing)
    for i in range(1000):
        c.marker(f"{i}")
        c.absolute_counter(i, "t", "n")
    c.flush()
    c.close()
    err = capfd.readouterr().err
    assert err.count("annotate: no gatord") == 1


def test_write_through_file_has_each_message_at_once(tmp_path):
    log = tmp_path / "w.sbm"
    c = Client(file=log, gatord=False, flush_interval=0)
    c.setup()
    c.marker("one")
    kinds = [k for k, _, _ in walk_marker_log(log).records]
    assert kinds == [1, 2]
    c.text("two", channel=2)
    (s,) = walk_marker_log(log).streams().values()
    assert [m[1][-3:] for m in s.messages] == [b"one", b"two"]
    c.close()
    assert [k for k, _, _ in walk_marker_log(log).records] == [1, 2, 2, 3]


def test_prepared_texts_send_what_text_and_end_send(tmp_path):
    log = tmp_path / "p.sbm"
    c = Client(file=log, gatord=False)
    start, stop = c.prepare_text("conv1___Convolution", 3, wire.GREEN), c.prepare_text(None, 3)
    for _ in range(2):
        c.text("conv1___Convolution", 3, wire.GREEN)
        c.end(3)
        start()
        stop()
    c.close()
    (s,) = walk_marker_log(log).streams().values()
    sent = without_time(s.messages)
    assert len(sent) == 8 and sent[:2] == sent[2:4] == sent[4:6] == sent[6:]
    times = [sleb(body, 0)[0] for _, body in s.messages]
    assert times == sorted(times)  # each call stamped with its own time


def test_buffered_file_flush_and_thread_end(tmp_path):
    log = tmp_path / "b.sbm"
    c = Client(file=log, gatord=False, flush_interval=60)
    c.setup()
    c.marker("main")
    t = threading.Thread(target=lambda: (c.marker("worker"), c.name_group(1, "g")))
    t.start()
    t.join()
    c.flush()
    m = walk_marker_log(log)
    assert m.meta["writer"] == "annotate" and m.meta["protocol"] == 5 and m.meta["clock"] == "CLOCK_MONOTONIC_RAW"
    closed = [sid for k, sid, _ in m.records if k == 3]
    assert closed == [t.native_id]  # the ended thread's stream is closed, main's is still open
    streams = m.streams()
    assert {len(s.messages) for s in streams.values()} == {1, 2}
    c.close()
    assert sorted(sid for k, sid, _ in walk_marker_log(log).records if k == 3) == sorted(
        {t.native_id, threading.get_native_id()}
    )


def test_region_context_manager_and_decorator(tmp_path):
    log = tmp_path / "r.sbm"
    c = Client(file=log, gatord=False)
    c.setup()

    @c.region("decorated", channel=2)
    def f(x: int) -> int:
        return x + 1

    assert f(1) == 2
    with pytest.raises(RuntimeError):
        with c.region("conv1", channel=3, color=annotate.GREEN):
            raise RuntimeError("boom")
    c.close()
    (s,) = walk_marker_log(log).streams().values()
    assert without_time(s.messages) == [
        (0x01, wire.p32(2) + b"decorated"),
        (0x01, wire.p32(2)),
        (0x02, wire.p32(3) + wire.color_bytes(annotate.GREEN) + b"conv1"),
        (0x01, wire.p32(3)),
    ]


def test_environment_configuration(tmp_path, monkeypatch):
    log = tmp_path / "env.sbm"
    monkeypatch.setenv("STREAMLINE_ANNOTATE_FILE", str(log))
    monkeypatch.setenv("STREAMLINE_ANNOTATE_PROTOCOL", "4")
    monkeypatch.setenv("STREAMLINE_ANNOTATE_FLUSH_MS", "0")
    monkeypatch.setenv("STREAMLINE_ANNOTATE_SOCKET_PREFIX", unique_prefix())
    c = Client()
    c.counter_value(1, 3000000000)  # implicit setup on first use
    (s,) = walk_marker_log(log).streams().values()  # written through: no flush needed
    assert s.magic == b"ANNOTATE 4\n"
    assert s.messages[0][1].endswith(wire.packed32(3000000000))
    assert walk_marker_log(log).meta["protocol"] == 4
    c.close()


def test_existing_files(tmp_path, capfd):
    other = tmp_path / "notes.txt"
    other.write_text("not a marker log\n")
    c = Client(file=other, gatord=False)
    c.setup()
    c.marker("x")
    c.close()
    assert other.read_text() == "not a marker log\n"
    assert "not a marker log" in capfd.readouterr().err

    log = tmp_path / "shared.sbm"
    for label in ("first", "second"):
        c = Client(file=log, gatord=False)
        c.setup()
        c.marker(label)
        c.close()
    m = walk_marker_log(log)
    assert m.end == m.size
    assert [k for k, _, _ in m.records] == [1, 2, 3, 1, 2, 3]  # one header, appended to


def test_setup_rejects_unknown_protocol_and_options():
    with pytest.raises(ValueError, match="protocol 3"):
        Client(protocol=3, gatord=False).setup()
    with pytest.raises(TypeError, match="flie"):
        Client(gatord=False).setup(flie="x.sbm")


def test_a_buffer_three_quarters_full_wakes_the_sender(tmp_path):
    log = tmp_path / "wake.sbm"
    c = Client(file=log, gatord=False, flush_interval=60, buffer_size=1024, dont_mangle_keys=True)
    c.setup()
    n = 20_000  # tens of ms of calls: the sender's start-up pass (if late) falls inside the loop
    for i in range(n):
        c.marker(f"wake {i:06d}")  # 22 bytes: 3/4 of the 1 KiB buffer is crossed every ~35 calls

    def written() -> int:
        return sum(len(s.messages) for s in walk_marker_log(log).streams().values())

    # neither flush() nor the 60 s timer: only the wake-ups can have written all but the tail
    wait_until(lambda: written() >= n - 40, what="the sender to write after each wake-up")
    (s,) = walk_marker_log(log).streams().values()
    assert s.flag == 1  # dont_mangle_keys in the handshake
    c.close()


def test_a_stalled_gatord_never_blocks_a_caller():
    g = FakeGatord(unique_prefix(), stalled=True)  # accepts, never reads: sends block
    try:
        c = Client(address_prefix=g.prefix, flush_interval=60, send_timeout=60)
        c.setup()
        n = 100_000
        for i in range(n):
            c.marker(f"{i:040d}")  # 4.6 MB: far more than the socket buffers hold
        flusher = threading.Thread(target=c.flush)
        flusher.start()

        def sender_stuck() -> bool:  # the flush holds the send lock, blocked in send()
            if c._sender.lock.acquire(blocking=False):
                c._sender.lock.release()
                return False
            return flusher.is_alive()

        wait_until(sender_stuck, what="the flush to block on the stalled gatord")
        newcomer = threading.Thread(target=lambda: [c.marker("new thread"), c.absolute_counter(9, "t", "n")])
        newcomer.start()
        newcomer.join(30)
        assert not newcomer.is_alive(), "a first call from a new thread waited for gatord"
        assert flusher.is_alive()
        g.reading.set()  # gatord reads again: everything arrives
        flusher.join(60)
        c.flush()
        wait_until(lambda: sum(len(s.messages) for s in g.streams()) == n + 2, 30)
        c.close()
        main = next(s for s in g.streams() if s.tid == threading.get_native_id())
        assert len(main.messages) == n and main.messages[-1][1].endswith(f"{n - 1:040d}".encode())
    finally:
        g.stop()


def test_calls_after_shutdown_are_dropped_and_setup_revives(tmp_path):
    log = tmp_path / "late.sbm"
    c = Client(file=log, gatord=False)
    c.close()  # before any use: nothing is created
    c.marker("dropped")
    c.flush()
    assert not log.exists()
    c.setup()
    c.marker("kept")
    c.close()
    c.marker("dropped too")
    (s,) = walk_marker_log(log).streams().values()
    assert [body[-4:] for _, body in s.messages] == [b"kept"]


def test_a_capture_start_byte_while_capturing_loses_nothing():
    g = FakeGatord(unique_prefix(), greet=True)  # 0x00 as soon as the control socket connects
    try:
        c = Client(address_prefix=g.prefix, flush_interval=60)
        c.setup()
        c.absolute_counter(1, "Power", "GPU rail")
        c.marker("first")
        wait_until(lambda: g.controls, what="the control connection")
        c.flush()  # reads the 0x00
        c.marker("second")
        c.flush()
        wait_until(lambda: g.streams() and len(g.streams()[0].messages) == 3)
        c.close()
        (s,) = g.streams()  # one connection, definitions not repeated
        assert [code for code, _ in s.messages] == [0x08, 0x06, 0x06]
    finally:
        g.stop()


def test_prepared_texts_and_markers_take_an_explicit_time(tmp_path) -> None:
    """Work timed elsewhere (a runtime's profiler) is annotated at its own times, not at the call's."""
    from annotate import Client
    from streamline_bridge import ingest

    log = tmp_path / "t.sbm"
    client = Client(file=log, gatord=False)
    start, stop = client.prepare_text("node", 3), client.prepare_text(None, 3)
    start(time=5_000_000_000)
    stop(time=5_000_001_234)
    client.marker("mark", time=6_000_000_000)
    client.close()
    m = ingest.read(log).markers
    rows = m[m["kind"].isin(["text", "end", "marker"])]
    assert rows["time_ns"].astype("int64").tolist() == [5_000_000_000, 5_000_001_234, 6_000_000_000]
    assert rows["kind"].tolist() == ["text", "end", "marker"]


def sent_to(g: FakeGatord, tid: int):
    return [s for s in g.streams() if s.tid == tid]


@pytest.mark.parametrize("failure", ["EAGAIN", "ECONNREFUSED"])
def test_a_failed_data_connect_is_retried_with_the_definitions_first(failure):
    """A full backlog (EAGAIN) or no data listener yet (ECONNREFUSED) while the control connection is up:
    retried with backoff, the capture goes on (no capture-start byte comes again), nothing is lost."""
    if failure == "EAGAIN":
        g = FakeGatord(unique_prefix(), backlog=0, accepting=False)
        filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        filler.connect(b"\0" + g.prefix.encode())  # the backlog is full now
    else:
        g = FakeGatord(unique_prefix(), data=False)
    try:
        c = Client(address_prefix=g.prefix, flush_interval=0.01, retry_interval=0.05)
        c.setup()
        c.absolute_counter(1, "Power", "GPU rail")
        c.marker("first")
        link = None

        def failed_once() -> bool:
            nonlocal link
            links = [st.link for st in c._sender.snapshot()]
            link = links[0] if links else None
            return link is not None and link.backoff.delay > 0

        wait_until(failed_once, what="a failed data connect")
        assert c.capturing
        c.marker("second")
        if failure == "EAGAIN":
            g.accepting.set()
        else:
            g.open_data()
        me = threading.get_native_id()
        wait_until(lambda: sent_to(g, me) and len(sent_to(g, me)[0].messages) == 4, what="the retried connection")
        c.close()
        (s,) = sent_to(g, me)
        counter = wire.counter(1, "Power", "GPU rail")[5:]
        assert [(code, body) for code, body in s.messages[:2]] == [(0x08, counter)] * 2  # re-sent, then queued
        assert [code for code, _ in s.messages[2:]] == [0x06, 0x06]
        assert s.messages[2][1].endswith(b"first") and s.messages[3][1].endswith(b"second")
    finally:
        if failure == "EAGAIN":
            filler.close()
        g.stop()


def test_a_stalled_gatord_gets_everything_once_it_reads_again(tmp_path):
    """gatord stops reading (SIGSTOP): sends time out, the connection and the unsent bytes are kept and the
    sender's rounds carry on; nothing is lost for gatord nor the marker log, no message is cut or repeated."""
    g = FakeGatord(unique_prefix(), stalled=True)
    log = tmp_path / "stall.sbm"
    try:
        c = Client(file=log, address_prefix=g.prefix, flush_interval=0.01, send_timeout=1)
        c.setup()
        n = 50_000
        for i in range(n):
            c.marker(f"{i:030d}")  # 2.5 MB: far more than the socket buffers hold
        (st,) = c._sender.snapshot()
        wait_until(lambda: st.link.sock is not None and st.link.sent < len(st.link.pending), what="a stalled send")
        wait_until(
            lambda: sum(len(s.messages) for s in walk_marker_log(log).streams().values()) == n,
            what="the marker log written although gatord is stalled",
        )
        g.reading.set()
        wait_until(lambda: g.streams() and len(g.streams()[0].messages) == n, 30, "everything at gatord")
        c.marker("after")
        c.close()
        (s,) = g.streams()
        assert len(g.conns) == 1 and s.rest == b""
        assert [body[-30:] for _, body in s.messages[:n]] == [f"{i:030d}".encode() for i in range(n)]
        assert s.messages[n][1].endswith(b"after")
    finally:
        g.stop()


def test_a_broken_connection_resumes_at_the_message_cut_short():
    from annotate.gatord import message_start

    msgs = [wire.marker(1, "a"), wire.marker(2, "bb"), wire.text(3, 0, "ccc")]
    data = bytearray(b"".join(msgs))
    ends = [len(b"".join(msgs[: i + 1])) for i in range(3)]
    assert [message_start(data, k) for k in (0, 1, ends[0] - 1, ends[0], ends[1] + 2, ends[2])] == [
        0,
        0,
        0,
        ends[0],
        ends[1],
        ends[2],
    ]
