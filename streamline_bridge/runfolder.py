"""The run folder (docs/run-folder.md): its layout, its manifest, its phases and its lock; the one
home of the format, used by the writer (``record``, ``profile``) and the reader (``ingest.run_dir``).

The writer (:class:`RunWriter`) holds an exclusive ``flock`` on the folder for as long as it
writes it: a second writer fails at once, a reader can tell a run still being recorded
(:func:`being_recorded`) from one whose recorder was killed. Every file it makes is created new
(``O_CREAT | O_EXCL | O_NOFOLLOW``, relative to the folder's descriptor): no symlink is followed
and nothing is overwritten. The manifest is replaced atomically (``manifest.json.tmp``, then a
rename) from space reserved beforehand, so the last manifest (phases, exit status) is written
even when the disk has filled up during the run.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamline_bridge.errors import InputError

MANIFEST = "manifest.json"
MANIFEST_TMP = MANIFEST + ".tmp"
POWER_FILE = "power.sbp"
MARKERS_FILE = "markers.sbm"
FORMAT = "streamline-bridge run"
VERSION = 1
CLOCK_NAME = "CLOCK_MONOTONIC_RAW"
RESERVED_BYTES = 256 * 1024  # room kept for the next manifest (a profile's layer list included)
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_PHASE_NAMES = ("idle_before", "run", "idle_after")


@dataclass(frozen=True)
class Phases:
    """``t0 ─ idle_before ─ t1 ─ run ─ t2 ─ idle_after ─ t3``, CLOCK_MONOTONIC_RAW ns."""

    t0: int
    t1: int
    t2: int
    t3: int

    @classmethod
    def from_marks(cls, marks: Sequence[int], now: int) -> Phases:
        """The phases from the marks taken so far (t0, t1 ...); the missing ones are ``now``."""
        t = list(marks[:4]) + [now] * (4 - len(marks[:4]))
        return cls(*t)

    def to_dict(self) -> dict[str, list[int]]:
        """As stored in the manifest: ``{"idle_before": [t0, t1], "run": [t1, t2], "idle_after": [t2, t3]}``."""
        t = (self.t0, self.t1, self.t2, self.t3)
        return {name: [t[i], t[i + 1]] for i, name in enumerate(_PHASE_NAMES)}

    @classmethod
    def from_dict(cls, phases: Any) -> Phases:
        """The manifest's ``phases``; ValueError saying what is wrong with it."""
        if not isinstance(phases, dict) or set(phases) != set(_PHASE_NAMES):
            raise ValueError(f"phases must be an object with {', '.join(_PHASE_NAMES)}")
        spans = [phases[name] for name in _PHASE_NAMES]
        if not all(isinstance(s, list) and len(s) == 2 and all(type(x) is int for x in s) for s in spans):
            raise ValueError("each phase must be [start_ns, end_ns], two integers")
        t = [spans[0][0], spans[0][1], spans[1][1], spans[2][1]]
        if spans[1][0] != t[1] or spans[2][0] != t[2] or t != sorted(t):
            raise ValueError("the phases must follow each other in time")
        return cls(*t)

    def idle_spans(self) -> list[tuple[int, int]]:
        """The two idle phases (the baseline's samples lie inside them)."""
        return [(self.t0, self.t1), (self.t2, self.t3)]


def _check(manifest: dict[str, Any], key: str, kinds: tuple[type, ...], what: str) -> None:
    value = manifest.get(key)
    if value is not None and (not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds):
        raise ValueError(f"{key!r} must be {what}, not {json.dumps(value)[:40]}")


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The folder's manifest, its format, version and the keys readers use checked; InputError
    naming the manifest and what is wrong (also for a manifest that is not a regular file)."""
    path = Path(folder) / MANIFEST
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO does not block the open
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(path, "not a regular file")
        try:
            m = json.loads(f.read(16 * 1024 * 1024))
        except OSError as exc:
            raise InputError(path, exc.strerror or str(exc)) from None
        except (ValueError, RecursionError) as exc:
            raise InputError(path, f"not valid JSON ({exc})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise InputError(path, f"not a run manifest (format is not {FORMAT!r})")
    if m.get("version") != VERSION:
        raise InputError(path, f"run manifest version {m.get('version')} is not supported (this reader: {VERSION})")
    try:
        _check(m, "files", (dict,), "an object of file names")
        if not all(
            isinstance(v, str) and v not in ("", ".", "..") and "/" not in v for v in (m.get("files") or {}).values()
        ):
            raise ValueError("'files' must name files inside the run folder")
        _check(m, "complete", (bool,), "true or false")
        _check(m, "power", (dict,), "an object")
        stats = (m.get("power") or {}).get("stats") or {}
        failed = stats.get("failed_rails") or {} if isinstance(stats, dict) else None
        if not isinstance(failed, dict) or not all(isinstance(v, str) for v in failed.values()):
            raise ValueError("'power.stats' must be an object, its 'failed_rails' rail names and messages")
        _check(m, "started_monotonic_raw_ns", (int,), "an integer")
        if m.get("phases") is not None:
            Phases.from_dict(m["phases"])
    except ValueError as exc:
        raise InputError(path, str(exc)) from None
    return m


def is_run_folder(folder: str | os.PathLike[str]) -> bool:
    """A folder with a manifest that says it is a run (cheap; for sniffing)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as f:
            return json.loads(f.read(16 * 1024 * 1024)).get("format") == FORMAT
    except (OSError, ValueError, AttributeError, RecursionError):
        return False


def being_recorded(folder: str | os.PathLike[str]) -> bool:
    """True while a writer (``record``, ``profile``) holds the folder's lock, in any process."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # releases the shared lock, if taken


class RunWriter(MutableMapping[str, Any]):
    """A run folder being written: locked, checked new, its manifest a mapping written with :meth:`write`.

    ``RunWriter(path)`` creates the folder (or takes an empty one) and locks it; InputError when
    another writer holds it, when it already holds a run, or when it holds other files. Set keys
    as in a dict; :meth:`write` replaces ``manifest.json``; :meth:`finish` writes the last
    manifest and releases the folder.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.fields: dict[str, Any] = {"format": FORMAT, "version": VERSION, "complete": False}
        self._reserved = -1
        self._placeholders: list[str] = []
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._dir = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise InputError(self.path, f"cannot create the run folder: {exc.strerror or exc}") from None
        try:
            try:
                fcntl.flock(self._dir, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise InputError(
                    self.path, "another record is writing this run folder: choose another folder"
                ) from None
            entries = sorted(os.listdir(self._dir))
            if MANIFEST in entries:
                raise InputError(self.path, "already holds a run (manifest.json): choose another folder")
            if entries:
                shown = ", ".join(entries[:3]) + (" ..." if len(entries) > 3 else "")
                raise InputError(self.path, f"holds files but no run manifest ({shown}): choose an empty or new folder")
            self._reserve()
        except BaseException:
            self.close()
            raise

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.fields[key] = value

    def __delitem__(self, key: str) -> None:
        del self.fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def create(self, name: str) -> int:
        """A new file ``name`` in the folder, open for writing (no symlink followed, never an existing
        file); OSError naming the file."""
        try:
            return os.open(name, _NEW_FILE, 0o644, dir_fd=self._dir)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(self.path / name)) from None

    def placeholder(self, name: str) -> None:
        """Create ``name`` empty for another writer (annotate's marker log) to fill: taken before any
        symlink could be; removed again at :meth:`finish` if still empty."""
        os.close(self.create(name))
        self._placeholders.append(name)

    def _reserve(self) -> None:
        """Create ``manifest.json.tmp`` with room for the next manifest, before anything else fills the disk."""
        fd = self.create(MANIFEST_TMP)
        try:
            os.posix_fallocate(fd, 0, RESERVED_BYTES)
        except OSError as exc:
            os.close(fd)
            os.unlink(MANIFEST_TMP, dir_fd=self._dir)
            raise InputError(
                self.path / MANIFEST_TMP, f"cannot reserve room for the manifest: {exc.strerror or exc}"
            ) from None
        self._reserved = fd

    def _ours(self, fd: int) -> bool:
        """True when ``manifest.json.tmp`` is still the file open on ``fd`` (not replaced by someone)."""
        try:
            st = os.stat(MANIFEST_TMP, dir_fd=self._dir, follow_symlinks=False)
        except OSError:
            return False
        own = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)

    def write(self, reserve_next: bool = True) -> None:
        """Replace ``manifest.json`` atomically with the fields (a reader never sees half a file),
        from the reserved space when it fits; OSError naming the manifest when it cannot be written."""
        data = (json.dumps(self.fields, indent=2, default=str) + "\n").encode()
        fd, self._reserved = self._reserved, -1
        try:
            if fd < 0 or len(data) > RESERVED_BYTES or not self._ours(fd):
                if fd >= 0:
                    os.close(fd)
                try:
                    os.unlink(MANIFEST_TMP, dir_fd=self._dir)  # a name only: never what a symlink points to
                except FileNotFoundError:
                    pass
                fd = self.create(MANIFEST_TMP)
            view = memoryview(data)
            offset = 0
            while offset < len(data):
                offset += os.pwrite(fd, view[offset:], offset)
            os.ftruncate(fd, len(data))
            os.fsync(fd)
            os.replace(MANIFEST_TMP, MANIFEST, src_dir_fd=self._dir, dst_dir_fd=self._dir)
        except OSError as exc:
            try:
                os.unlink(MANIFEST_TMP, dir_fd=self._dir)
            except OSError:
                pass
            raise OSError(exc.errno, exc.strerror, str(self.path / MANIFEST)) from None
        finally:
            if fd >= 0:
                os.close(fd)
        if reserve_next:
            self._reserve()

    def finish(self, phases: Phases, **fields: Any) -> None:
        """Write the last manifest (``complete``, the phases and ``fields``) and release the folder."""
        try:
            self.fields.update(complete=True, **fields, phases=phases.to_dict())
            self.write(reserve_next=False)
        finally:
            self.close()

    def close(self) -> None:
        """Release the folder, removing the reserved space and the placeholders left empty; safe to
        call twice."""
        if getattr(self, "_dir", -1) < 0:
            return
        if self._reserved >= 0:
            os.close(self._reserved)
            self._reserved = -1
            self._remove_if(MANIFEST_TMP, lambda st: True)
        for name in self._placeholders:
            self._remove_if(name, lambda st: stat.S_ISREG(st.st_mode) and st.st_size == 0)
        os.close(self._dir)
        self._dir = -1

    def _remove_if(self, name: str, test: Callable[[os.stat_result], bool]) -> None:
        try:
            if test(os.stat(name, dir_fd=self._dir, follow_symlinks=False)):
                os.unlink(name, dir_fd=self._dir)
        except OSError:
            pass
