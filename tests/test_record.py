"""``streamline-bridge record`` and the run folder it writes, read back through ``ingest.read``."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES, ROOT
from helpers import wait_until
from streamline_bridge import ingest
from streamline_bridge.cli import main
from streamline_bridge.power.log import read_log

TX1 = str(FIXTURES / "sysfs/tx1-l4t28")
MARKING = """
import annotate, time
annotate.name_channel(3, 1, "layers")
with annotate.region("conv1", channel=3):
    time.sleep(0.02)
annotate.marker("done")
raise SystemExit(3)
"""


def record_args(run: Path, *args: str, idle: str = "0") -> list[str]:
    """``record -o RUN --idle IDLE --sysfs-root TX1 ARGS...`` (for ``cli.main``)."""
    return ["record", "-o", str(run), "--idle", idle, "--sysfs-root", TX1, *args]


def record_command(run: Path, *args: str, idle: str = "0") -> list[str]:
    """:func:`record_args` as the command line of a process of its own."""
    return [sys.executable, "-m", "streamline_bridge", *record_args(run, *args, idle=idle)]


def test_record_writes_a_run_folder_that_reads_as_one_recording(tmp_path: Path) -> None:
    run = tmp_path / "run"
    rc = main(["record", "-o", str(run), "--idle", "0.2", "--sysfs-root", TX1, "--", sys.executable, "-c", MARKING])
    assert rc == 3
    m = json.loads((run / "manifest.json").read_text())
    assert m["format"] == "streamline-bridge run" and m["version"] == 1 and m["complete"]
    assert m["exit_code"] == 3 and m["command"][-1] == MARKING and not m["interrupted"]
    assert m["power"]["source"] == "ina3221x" and m["power"]["rails"] == ["VDD_IN", "VDD_GPU", "VDD_CPU"]
    t0, t1 = m["phases"]["idle_before"]
    assert m["phases"]["run"][0] == t1 and m["phases"]["idle_after"][0] == m["phases"]["run"][1]
    t2, t3 = m["phases"]["idle_after"]
    assert t0 < t1 < t2 < t3 and t1 - t0 >= 0.2e9 and t3 - t2 >= 0.2e9
    assert m["power"]["stats"]["samples"] > 0 and m["sampler_error"] is None

    rec = ingest.read(run)
    assert rec.meta.format == "run-dir" and not rec.meta.partial and rec.meta.issues == []
    assert rec.meta.clock_base_ns == t1
    assert rec.meta.extra["phases"] == m["phases"] and rec.meta.extra["exit_code"] == 3
    assert rec.meta.extra["idle_mw"] == {"VDD_IN": 2079.0, "VDD_GPU": 96.0, "VDD_CPU": 312.0}
    texts = rec.markers[rec.markers["kind"] == "text"]
    assert texts["text"].tolist() == ["conv1"]
    times = rec.markers["time_ns"].dropna().astype("int64")
    assert times.between(t1, t2).all() and (rec.markers["time_rel_ns"].dropna() >= 0).all()
    power_t = rec.power["time_ns"].to_numpy()
    assert power_t.min() < t1 and power_t.max() > t2  # sampled through both idle phases
    assert np.array_equal(rec.power["time_rel_ns"].to_numpy(), power_t - t1)


def test_a_command_that_cannot_start_still_leaves_a_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    rc = main(record_args(run, "--", str(tmp_path / "no-such-program")))
    assert rc == 2
    assert "no-such-program" in capsys.readouterr().err
    m = json.loads((run / "manifest.json").read_text())
    assert m["complete"] and m["exit_code"] == 127 and "No such file" in m["error"]


def test_record_refuses_an_existing_run_and_a_missing_command(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text("{}")
    assert main(["record", "-o", str(run), "--sysfs-root", TX1, "--", "true"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["record", "-o", str(tmp_path / "other"), "--sysfs-root", TX1]) == 2
    assert "no command to run" in capsys.readouterr().err


def test_no_power_source_is_one_line_and_no_command_runs(tmp_path: Path, capsys) -> None:
    flag = tmp_path / "ran"
    rc = main(
        [
            "record",
            "-o",
            str(tmp_path / "run"),
            "--source",
            "rapl",
            "--sysfs-root",
            TX1,
            "--",
            sys.executable,
            "-c",
            f"open({str(flag)!r}, 'w')",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "no RAPL zone" in err and len(err.strip().splitlines()) == 1  # EXIT_FAILURE
    assert not flag.exists() and os.listdir(tmp_path / "run") == []  # left empty: the folder can be used again


def test_interrupt_is_forwarded_and_the_manifest_still_written(tmp_path: Path) -> None:
    run = tmp_path / "run"
    started = tmp_path / "started"
    child = f"import time, pathlib; pathlib.Path({str(started)!r}).touch(); time.sleep(60)"
    rec = subprocess.Popen(
        record_command(run, "--", sys.executable, "-c", child, idle="0.1"),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not started.exists():
        assert time.monotonic() < deadline and rec.poll() is None, rec.stderr.read() if rec.stderr else ""
        time.sleep(0.02)
    rec.send_signal(signal.SIGINT)
    assert rec.wait(30) == 128 + signal.SIGINT
    m = json.loads((run / "manifest.json").read_text())
    assert m["complete"] and m["interrupted"] and m["exit_code"] == 128 + signal.SIGINT
    a, b = m["phases"]["idle_after"]
    assert b - a < 0.1e9  # no idle phase after an interrupted run


EARLY_SIGNAL = """
import os, signal, subprocess, sys
from streamline_bridge.commands import record
real_popen = subprocess.Popen


def popen_then_interrupt(*args, **kwargs):  # SIGINT (not from a terminal) the moment CMD exists
    proc = real_popen(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGINT)
    return proc


subprocess.Popen = popen_then_interrupt
cmd = ["sleep", "30"]  # dies by the signal whenever it lands (python may exit 1 if it lands during start-up)
print(*record._run_command(cmd, dict(os.environ), record._Status(None), lambda: None))
"""


def test_a_signal_as_soon_as_the_command_exists_reaches_the_command() -> None:
    r = subprocess.run(
        [sys.executable, "-c", EARLY_SIGNAL],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr  # not interrupted itself (the command left running)
    assert r.stdout.split() == [str(128 + signal.SIGINT), "True"]


AFFINITY = """
import os, pathlib, sys
pathlib.Path(sys.argv[1]).write_text(" ".join(map(str, sorted(os.sched_getaffinity(0)))))
"""


def record_process(run: Path, *args: str, preexec_fn=None) -> subprocess.CompletedProcess:
    """``record`` in its own process (--reserve-cpu changes the affinity of the process it runs in)."""
    return subprocess.run(
        record_command(run, *args),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=preexec_fn,
    )


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_reserve_cpu_keeps_the_command_off_the_samplers_cpu(tmp_path: Path) -> None:
    run, seen = tmp_path / "run", tmp_path / "affinity"
    r = record_process(run, "--reserve-cpu", "--", sys.executable, "-c", AFFINITY, str(seen))
    assert r.returncode == 0, r.stderr
    power = json.loads((run / "manifest.json").read_text())["power"]
    cpus = os.sched_getaffinity(0)
    assert power["cpu_reserved"] is True and power["cpu"] == max(cpus)
    assert list(map(int, seen.read_text().split())) == sorted(cpus - {max(cpus)})


def test_reserve_cpu_with_one_cpu_is_one_clear_error(tmp_path: Path) -> None:
    flag = tmp_path / "ran"
    r = record_process(
        tmp_path / "run",
        "--reserve-cpu",
        "--cpu",
        "0",
        "--",
        sys.executable,
        "-c",
        f"open({str(flag)!r}, 'w')",
        preexec_fn=lambda: os.sched_setaffinity(0, {0}),
    )
    assert r.returncode != 0 and not flag.exists()
    assert r.stderr.strip().splitlines() == [
        "streamline-bridge: error: cannot reserve CPU 0 for the sampler: this process may only run on CPU 0"
    ]


def test_a_run_folder_whose_record_was_killed_reads_as_partial(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["record", "-o", str(run), "--idle", "0.1", "--sysfs-root", TX1, "--", "true"]) == 0
    m = json.loads((run / "manifest.json").read_text())
    del m["phases"]
    m["complete"] = False
    (run / "manifest.json").write_text(json.dumps(m))
    rec = ingest.read(run)
    assert rec.meta.partial and "did not finish" in rec.meta.issues[0].message
    assert rec.meta.clock_base_ns == m["started_monotonic_raw_ns"] and len(rec.power) > 0
    os.remove(run / "power.sbp")
    rec = ingest.read(run)
    assert rec.power.empty and any("no power log" in i.message for i in rec.meta.issues)


def test_a_sensor_lost_during_the_run_is_marked_and_the_other_rails_go_on(tmp_path: Path, capsys) -> None:
    tree = tmp_path / "sys"
    shutil.copytree(TX1, tree)
    cpu = tree / "bus/i2c/drivers/ina3221x/1-0040/iio_device/in_power2_input"
    child = f"""
import math, os, pathlib, time
from streamline_bridge.power.log import read_log
cpu = pathlib.Path({str(cpu)!r})
cpu.write_text("")  # emptied and removed: the sampler's reads fail from now on
cpu.unlink()
log = pathlib.Path(os.environ["STREAMLINE_ANNOTATE_FILE"]).with_name("power.sbp")


def failed_for_s():  # how long the log shows VDD_CPU without a value, up to its last sample
    content = read_log(log)
    values = content.power["VDD_CPU"]
    ok = [i for i, v in enumerate(values) if not math.isnan(v)]
    first_nan = ok[-1] + 1 if ok else 0
    if first_nan >= len(values):
        return 0.0
    return (content.t_end[-1] - content.t_end[first_nan]) / 1e9


deadline = time.monotonic() + 30
while failed_for_s() <= 1.0 and time.monotonic() < deadline:  # past gone_after_s (1 s): marked failed
    time.sleep(0.05)
"""
    run = tmp_path / "run"
    rc = main(["record", "-o", str(run), "--idle", "0.1", "--sysfs-root", str(tree), "--", sys.executable, "-c", child])
    err = capsys.readouterr().err
    assert rc == 1 and "in_power2_input" in err and "VDD_CPU" in err and "other rails were recorded" in err
    m = json.loads((run / "manifest.json").read_text())
    assert m["exit_code"] == 0 and m["sampler_error"] is None
    stats = m["power"]["stats"]
    assert list(stats["failed_rails"]) == ["VDD_CPU"] and "in_power2_input" in stats["failed_rails"]["VDD_CPU"]
    a, b = m["phases"]["idle_after"]
    assert b - a >= 0.1e9  # sampling went on: the idle phase after the run was measured
    rec = ingest.read(run)
    assert [i.message for i in rec.meta.issues] == [stats["failed_rails"]["VDD_CPU"]]
    assert stats["samples"] == len(rec.power) // 3 and f"{stats['samples']} power samples" in err
    after = rec.power[rec.power["time_ns"] > a]
    assert after[after["rail"] == "VDD_IN"]["power_mw"].eq(2079.0).all() and len(after) > 0
    assert after[after["rail"] == "VDD_CPU"]["power_mw"].isna().all()


HOLD = """
import os, pathlib, sys, time
pathlib.Path(sys.argv[1]).write_text(str(os.getpid()))
while not pathlib.Path(sys.argv[2]).exists():
    time.sleep(0.02)
"""


def start_holding_record(tmp_path: Path, run: Path) -> tuple[subprocess.Popen, Path, Path]:
    """``record`` in its own process, its command started and holding until ``release`` exists."""
    started, release = tmp_path / "started", tmp_path / "release"
    rec = subprocess.Popen(
        record_command(run, "--", sys.executable, "-c", HOLD, str(started), str(release)),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: started.exists() and started.read_text() or rec.poll() is not None, what="command started")
    assert rec.poll() is None, rec.stderr.read() if rec.stderr else ""
    return rec, started, release


def test_a_second_record_into_the_same_folder_fails_at_once_and_report_says_it_is_being_recorded(
    tmp_path: Path, capsys
) -> None:
    run = tmp_path / "run"
    rec, _, release = start_holding_record(tmp_path, run)
    try:
        flag = tmp_path / "second-ran"
        assert main(record_args(run, "--", sys.executable, "-c", f"open({str(flag)!r}, 'w')")) == 2
        err = capsys.readouterr().err
        assert err.strip().splitlines() == [
            f"streamline-bridge: error: {run}: another record is writing this run folder: choose another folder"
        ]
        assert not flag.exists()
        live = ingest.read(run)
        (run_issue,) = [i for i in live.meta.issues if i.file == str(run / "manifest.json")]
        assert live.meta.partial and run_issue.message.startswith("the run is still being recorded")
        said = " ".join(i.message for i in live.meta.issues)
        assert "killed" not in said and "did not stop cleanly" not in said  # its sampler is still running
    finally:
        release.touch()
        assert rec.wait(60) == 0, rec.stderr.read() if rec.stderr else ""
    done = ingest.read(run)
    assert not done.meta.partial and done.meta.issues == []
    log = read_log(run / "power.sbp")
    assert not log.problems and np.all(np.diff(log.t_start) > 0)  # one writer: time only moves forward
    assert sorted(os.listdir(run)) == ["board.jsonl", "manifest.json", "power.sbp"]  # no markers made: no marker log


@pytest.mark.parametrize("planted", ["power.sbp", "manifest.json.tmp", "markers.sbm", "notes.txt"])
def test_a_folder_with_files_but_no_manifest_is_refused_and_left_alone(tmp_path: Path, capsys, planted) -> None:
    precious = tmp_path / "precious"
    precious.write_text("root's file\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / planted).symlink_to(precious)
    assert main(record_args(run, "--", "true")) == 2
    err = capsys.readouterr().err
    assert f"{run}: holds files but no run manifest ({planted})" in err and len(err.strip().splitlines()) == 1
    assert precious.read_text() == "root's file\n" and os.listdir(run) == [planted]


PLANT = """
import os, pathlib, sys
run = pathlib.Path(os.environ["STREAMLINE_ANNOTATE_FILE"]).parent
for name in ("manifest.json.tmp", "markers.sbm"):  # swapped for symlinks while record runs
    (run / name).unlink()
    (run / name).symlink_to(sys.argv[1])
"""


def test_symlinks_planted_during_the_run_are_never_followed(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.write_text("root's file\n")
    run = tmp_path / "run"
    assert main(record_args(run, "--", sys.executable, "-c", PLANT, str(precious))) == 0
    assert precious.read_text() == "root's file\n"
    m = json.loads((run / "manifest.json").read_text())
    assert m["complete"] and m["exit_code"] == 0 and not (run / "manifest.json").is_symlink()
    assert not (run / "manifest.json.tmp").exists()


def test_the_power_log_is_never_written_through_a_symlink(tmp_path: Path) -> None:
    from streamline_bridge.power import Sampler, SamplerError

    precious = tmp_path / "precious"
    precious.write_text("root's file\n")
    (tmp_path / "power.sbp").symlink_to(precious)
    with pytest.raises(SamplerError, match="power.sbp"):
        Sampler(tmp_path / "power.sbp", sysfs_root=TX1).start()
    assert precious.read_text() == "root's file\n"


def gone(pid: int) -> bool:
    """True once process ``pid`` has ended (a zombie has ended too)."""
    try:
        return open(f"/proc/{pid}/stat").read().split(") ")[1][0] in "ZX"
    except FileNotFoundError:
        return True


IN_RUN = (
    inspect.getsource(gone)
    + """
import os, pathlib, signal, time
from streamline_bridge.power.log import read_log
log = pathlib.Path(os.environ["STREAMLINE_ANNOTATE_FILE"]).with_name("power.sbp")
pid = read_log(log).meta["pid"]  # the sampler's
deadline = time.monotonic() + 30


def wait_for(predicate):
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
"""
)
KILL_SAMPLER = (
    IN_RUN
    + """
wait_for(lambda: len(read_log(log).t_start) >= 100)
os.kill(pid, signal.SIGKILL)
wait_for(lambda: gone(pid))
"""
)


def test_a_killed_sampler_is_reported_and_the_summary_counts_the_samples_in_the_log(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    rc = main(record_args(run, "--", sys.executable, "-c", KILL_SAMPLER))
    err = capsys.readouterr().err
    assert rc == 1 and "power sampler stopped: killed by signal SIGKILL" in err
    n = len(read_log(run / "power.sbp").t_start)
    assert n >= 100 and f"{n} power samples" in err
    m = json.loads((run / "manifest.json").read_text())
    assert m["complete"] and m["power"]["stats"]["samples"] == n and "SIGKILL" in m["sampler_error"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux only")
def test_the_command_dies_with_a_killed_record(tmp_path: Path) -> None:
    run = tmp_path / "run"
    rec, started, release = start_holding_record(tmp_path, run)
    cmd_pid = int(started.read_text())
    sampler_pid = read_log(run / "power.sbp").meta["pid"]
    rec.kill()
    rec.wait(30)
    try:
        wait_until(lambda: gone(cmd_pid), what="the command ended")
        wait_until(lambda: gone(sampler_pid), what="the sampler ended")
    finally:
        release.touch()  # a command left running ends anyway
    log = read_log(run / "power.sbp")
    assert log.trailer is not None and log.trailer["stop_reason"] == "parent closed the pipe"


STUBBORN = """
import os, pathlib, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import signal, time\\n"
                          "signal.signal(signal.SIGTERM, signal.SIG_IGN)\\nwhile True: time.sleep(1)"],
                         start_new_session=True)  # a grandchild in a session of its own
pathlib.Path(sys.argv[1] + ".tmp").write_text(f"{os.getpid()} {child.pid}")
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    time.sleep(1)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc: Linux only")
def test_a_command_that_ignores_sigterm_and_its_grandchildren_die_with_a_killed_record(tmp_path: Path) -> None:
    run, started = tmp_path / "run", tmp_path / "started"
    rec = subprocess.Popen(
        record_command(run, "--", sys.executable, "-c", STUBBORN, str(started)),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: started.exists() or rec.poll() is not None, what="command started")
    pids = [int(p) for p in started.read_text().split()]
    rec.kill()
    rec.wait(30)
    try:
        wait_until(lambda: all(gone(p) for p in pids), what="the command and its grandchild ended")
    finally:
        for p in pids:
            if not gone(p):
                os.kill(p, signal.SIGKILL)


def test_the_watchdog_lets_the_command_be_when_told_all_is_well(tmp_path: Path) -> None:
    from streamline_bridge import watchdog

    cmd = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    dog = watchdog.start(cmd.pid)
    watchdog.release(dog)
    assert dog.returncode == 0 and cmd.poll() is None  # released: the command runs on
    cmd.stdin.close()
    assert cmd.wait(30) == 0


FILL_DISK = (
    IN_RUN
    + """
with open(log.parent.parent / "filler", "wb", buffering=0) as f:
    try:
        while True:
            f.write(b"x" * 4096)
    except OSError:
        pass
wait_for(lambda: gone(pid))  # the sampler's next chunk does not fit: it stops
"""
)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 2 MiB tmpfs (root only)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True).returncode
        != 0
    ):
        pytest.skip("cannot mount a small tmpfs (needs root)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk_stops_the_sampler_cleanly_and_the_manifest_is_still_completed(small_disk: Path, capsys) -> None:
    run = small_disk / "run"
    rc = main(["record", "-o", str(run), "--idle", "0.1", "--sysfs-root", TX1, "--", sys.executable, "-c", FILL_DISK])
    err = capsys.readouterr().err
    assert rc == 1 and f"{run / 'power.sbp'}: cannot write the power log: No space left on device" in err
    assert "Traceback" not in err
    m = json.loads((run / "manifest.json").read_text())
    assert m["complete"] and m["exit_code"] == 0 and "No space left" in m["sampler_error"]
    assert set(m["phases"]) == {"idle_before", "run", "idle_after"}
    assert sorted(os.listdir(run)) == ["board.jsonl", "manifest.json", "power.sbp"]  # no manifest.json.tmp left
    log = read_log(run / "power.sbp")
    assert not log.problems and log.truncated_at is None  # whole records only
    assert m["power"]["stats"]["samples"] == len(log.t_start) > 0
    assert f"{len(log.t_start)} power samples" in err


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("finished") / "run"
    assert main(["record", "-o", str(run), "--idle", "0.05", "--sysfs-root", TX1, "--", sys.executable, "-c", "0"]) == 0
    return run


@pytest.mark.parametrize("damage", ["missing", "empty", "cut"])
def test_inspect_of_a_run_folder_whose_power_log_is_damaged_is_the_damaged_input_status(
    tmp_path: Path, finished_run: Path, capsys, damage: str
) -> None:
    from streamline_bridge.errors import EXIT_DAMAGED, EXIT_OK

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    assert main(["inspect", str(run)]) == EXIT_OK
    log = run / "power.sbp"
    size = log.stat().st_size
    if damage == "missing":
        log.unlink()
    else:
        os.truncate(log, 0 if damage == "empty" else size - 5)
    capsys.readouterr()
    assert main(["inspect", str(run)]) == EXIT_DAMAGED
    out = capsys.readouterr()
    assert str(log) in out.out + out.err and "Traceback" not in out.err
