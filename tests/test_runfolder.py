"""``streamline_bridge.runfolder``: phases, the manifest's checks, the writer's lock and its files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamline_bridge import ingest
from streamline_bridge.cli import main
from streamline_bridge.errors import InputError
from streamline_bridge.power.sampler import Sampler
from streamline_bridge.power.sampling import Config
from streamline_bridge.runfolder import (
    MANIFEST,
    MANIFEST_TMP,
    MARKERS_FILE,
    Phases,
    RunWriter,
    being_recorded,
    read_manifest,
)


def test_phases_from_marks_fill_the_missing_ones_and_round_trip() -> None:
    p = Phases.from_marks([10, 20], now=35)
    assert p == Phases(10, 20, 35, 35)
    assert p.to_dict() == {"idle_before": [10, 20], "run": [20, 35], "idle_after": [35, 35]}
    assert Phases.from_dict(p.to_dict()) == p and p.idle_spans() == [(10, 20), (35, 35)]


@pytest.mark.parametrize(
    "phases",
    [
        "x",
        {"run": [1, 2]},
        {"idle_before": [1, 2], "run": [2, 3], "idle_after": [3]},
        {"idle_before": [1, 2], "run": [2, 3], "idle_after": [3, "4"]},
        {"idle_before": [1, 2], "run": [5, 6], "idle_after": [6, 7]},  # a gap
        {"idle_before": [3, 2], "run": [2, 3], "idle_after": [3, 4]},  # backwards
        {"idle_before": [1, 2], "run": [2, 3], "idle_after": [3, True]},
    ],
)
def test_phases_that_do_not_follow_each_other_are_refused(phases) -> None:
    with pytest.raises(ValueError):
        Phases.from_dict(phases)


def finished_run(path: Path) -> Path:
    w = RunWriter(path)
    w["command"] = ["true"]
    w.write()
    w.finish(Phases(1, 2, 3, 4), exit_code=0)
    return path


@pytest.mark.parametrize(
    "key, value, says",
    [
        ("files", "x", "'files' must be an object"),
        ("files", {"power": "../../etc/passwd"}, "inside the run folder"),
        ("files", {"power": 3}, "inside the run folder"),
        ("complete", "yes", "'complete' must be true or false"),
        ("started_monotonic_raw_ns", 1.5, "must be an integer"),
        ("started_monotonic_raw_ns", True, "must be an integer"),
        ("phases", {"run": 1}, "phases must be an object"),
        ("power", [1], "'power' must be an object"),
        ("power", {"stats": {"failed_rails": ["x"]}}, "'power.stats' must be an object"),
        ("power", {"stats": 5}, "'power.stats' must be an object"),
    ],
)
def test_a_manifest_with_a_key_of_the_wrong_type_is_one_clear_error(tmp_path: Path, capsys, key, value, says) -> None:
    run = finished_run(tmp_path / "run")
    m = json.loads((run / MANIFEST).read_text())
    m[key] = value
    (run / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(InputError) as err:
        ingest.read(run)
    assert err.value.path == str(run / MANIFEST) and says in err.value.message
    assert main(["inspect", str(run)]) != 0
    out = capsys.readouterr().err
    assert says in out and "internal error" not in out


def test_a_manifest_that_is_a_named_pipe_is_refused_without_waiting(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / MANIFEST)
    with pytest.raises(InputError, match="not a regular file"):
        read_manifest(run)


def test_the_writer_locks_the_folder_until_it_finishes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    w = RunWriter(run)
    assert being_recorded(run)
    assert sorted(os.listdir(run)) == [MANIFEST_TMP]  # the room kept for the manifest
    assert os.stat(run / MANIFEST_TMP).st_blocks * 512 >= 256 * 1024
    with pytest.raises(InputError, match="another record is writing this run folder"):
        RunWriter(run)
    w.placeholder(MARKERS_FILE)
    with pytest.raises(FileExistsError):
        w.create(MARKERS_FILE)  # never an existing file
    w.write()
    assert json.loads((run / MANIFEST).read_text())["complete"] is False
    w.finish(Phases(1, 2, 3, 4), exit_code=0)
    assert not being_recorded(run)
    assert sorted(os.listdir(run)) == [MANIFEST]  # the empty marker log and the room are gone
    m = read_manifest(run)
    assert m["complete"] and m["phases"] == Phases(1, 2, 3, 4).to_dict() and m["exit_code"] == 0
    with pytest.raises(InputError, match="already holds a run"):
        RunWriter(run)


def test_a_run_folder_that_is_a_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "run").write_text("")
    with pytest.raises(InputError, match="cannot create the run folder"):
        RunWriter(tmp_path / "run")


def test_the_sampler_hands_its_child_one_config(tmp_path: Path) -> None:
    s = Sampler(
        tmp_path / "p.sbp",
        sysfs_root=tmp_path,
        rate_hz=250,
        options={"k": "v"},
        chunk_ms=20,
        gone_after_s=0.5,
        cpu=0,
        realtime=True,
        streamline=True,
        streamline_rate_hz=50,
    )
    cfg = Config.from_json(s.command[-1])
    assert cfg == s.config and cfg.output == str(tmp_path / "p.sbp") and cfg.sysfs_root == str(tmp_path)
    assert (
        cfg.rate_hz,
        cfg.options,
        cfg.chunk_ms,
        cfg.gone_after_s,
        cfg.cpu,
        cfg.realtime,
        cfg.streamline_hz,
        cfg.watch_stdin,
    ) == (250, {"k": "v"}, 20, 0.5, 0, True, 50, True)
    with pytest.raises(TypeError):
        Sampler(tmp_path / "p.sbp", no_such_setting=1)
    with pytest.raises(ValueError, match="above 0"):
        Sampler(tmp_path / "p.sbp", rate_hz=0)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
KEYS = [
    "files",
    "complete",
    "phases",
    "power",
    "started_monotonic_raw_ns",
    "command",
    "exit_code",
    "interrupted",
    "sampler_error",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    changes=st.dictionaries(
        st.sampled_from(KEYS), JSON | st.sampled_from([{"power": ".."}, {"stats": None}]), min_size=1, max_size=3
    )
)
def test_any_value_for_any_key_is_read_or_refused_in_one_line(tmp_path: Path, changes: dict) -> None:
    run = tmp_path / "run"
    if not run.exists():
        finished_run(run)
        (run / "power.sbp").write_bytes(b"")
    m = json.loads((run / MANIFEST).read_text())
    m.update(changes)
    (run / MANIFEST).write_text(json.dumps(m))
    try:
        rec = ingest.read(run)
    except InputError as exc:
        assert exc.path == str(run / MANIFEST) or exc.path.startswith(str(run))
    else:
        assert rec.meta.format == "run-dir"
