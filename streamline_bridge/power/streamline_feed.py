"""The sampler's power rails on a live Streamline timeline, as annotation counters.

Runs inside the sampler process (``Sampler(..., streamline=True)``, ``record --streamline``): each
rail becomes an absolute counter titled ``Power``, named after the rail, in ``mW``, and every
sample (or every decimation block) is sent with the time it was measured
(``counter_value(key, value, time=t)``) through an :class:`annotate.Client` — its per-thread
buffer and background sender, so the sampling loop never waits for gatord and never fails
because of it. The power log stays the full-resolution record.

* **Keys.** ``rail_key(name) = 0x5B000000 | (CRC-32 of the UTF-8 name & 0xFFFFFF)``: the same
  rail gets the same key in every run, far from the small numbers applications use; a clash
  between two rails of one source moves the later one up by one.
* **Values.** Integers in µW with ``modifier`` 1000 (Streamline shows mW with three decimals;
  the ``ANNOTATE_COUNTER_VALUE_SCALE`` convention: value = round(mW × modifier)).
* **Decimation.** With a Streamline rate below the sampling rate, each run of
  ``n = round(sampling rate / Streamline rate)`` consecutive samples is averaged per rail (failed
  reads left out) and stamped at the mean time of its samples (the centre of the block).
* **Sensor model.** Each counter's description ends with the rail's sensor model
  (``sensor_model.in_text``: ``sensor model ina3221:0x7c07 (from device tree)``), which the
  capture's reader gives the rail back (``ingest/annotation_power.py``). Averaging blocks of an
  ``instant`` rail make it ``window:`` the block.
* **A rail that drops out** (failed reads for ``lost_after_s``) stops sending and gets a red
  marker ``"<rail> lost"``; when it reads again, a green ``"<rail> back"`` and its values resume.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Sequence
from typing import Any

from annotate import ABSOLUTE, AVERAGE, GREEN, LINE, OVERLAY, RED, Client
from streamline_bridge.sensor_model import SensorModel, in_text

KEY_BASE = 0x5B000000
TITLE = "Power"
UNITS = "mW"
MODIFIER = 1000  # values are sent in µW


def rail_key(name: str) -> int:
    """The counter key of rail ``name`` (stable across runs and processes)."""
    return KEY_BASE | (zlib.crc32(name.encode("utf-8")) & 0xFFFFFF)


def rail_keys(names: Sequence[str]) -> list[int]:
    """Distinct keys for ``names``: :func:`rail_key`, a clash moved up by one (in rail order)."""
    keys: list[int] = []
    for name in names:
        key = rail_key(name)
        while key in keys:
            key = KEY_BASE | ((key + 1) & 0xFFFFFF)
        keys.append(key)
    return keys


class StreamlineFeed:
    """Sends rails as Streamline counters: :meth:`add` each sample, :meth:`close` at the end.

    ``client`` defaults to a new :class:`annotate.Client` configured from the environment
    (``STREAMLINE_ANNOTATE_TCP``, ``STREAMLINE_ANNOTATE_SOCKET_PREFIX`` ...).
    """

    def __init__(
        self,
        rails: Sequence[str],
        sample_hz: float,
        rate_hz: float = 1000.0,
        client: Client | None = None,
        lost_after_s: float = 0.1,
        description: str = "",
        models: Sequence[SensorModel | None] = (),
    ):
        if rate_hz <= 0:
            raise ValueError(f"Streamline rate must be above 0 Hz, not {rate_hz:g}")
        self.client = client if client is not None else Client()
        self.names = list(rails)
        self.keys = rail_keys(self.names)
        self.block = max(1, round(sample_hz / rate_hz))
        self.rate_hz = sample_hz / self.block
        self._lost_after = int(lost_after_s * 1e9)
        n = len(self.names)
        self._sum = [0.0] * n
        self._count = [0] * n
        self._t_sum = 0
        self._taken = 0
        self._nan_since = [0] * n
        self._lost = [False] * n
        self.sent = 0
        self.markers = 0
        self._on = True
        for key, name, model in zip(self.keys, self.names, [*models, *[None] * (n - len(models))]):
            meaning = self.counter_model(model, sample_hz)
            self.client.counter(
                key,
                TITLE,
                name,
                counter_class=ABSOLUTE,
                display=AVERAGE,
                units=UNITS,
                modifier=MODIFIER,
                series_composition=OVERLAY,
                rendering_type=LINE,
                description="; ".join(filter(None, [description, in_text(meaning) if meaning else ""])),
            )

    def counter_model(self, model: SensorModel | None, sample_hz: float) -> SensorModel | None:
        """What a counter value means: the rail's model, or a window of the block for an instant rail."""
        if self.block > 1 and model is not None and model.kind == "instant":
            return SensorModel("window", period_ns=round(self.block * 1e9 / sample_hz), source=model.source)
        return model

    def add(self, t_ns: int, values: Sequence[float]) -> None:
        """One sample (mW per rail, NaN = failed read) measured at ``t_ns`` (CLOCK_MONOTONIC_RAW)."""
        if self._on:
            try:
                self._add(t_ns, values)
            except Exception as exc:  # never the sampler's problem: the power log goes on
                self._on = False
                print(f"streamline-bridge sampler: Streamline feed stopped: {exc!r}", file=sys.stderr, flush=True)

    def _add(self, t_ns: int, values: Sequence[float]) -> None:
        sums, counts, nan_since = self._sum, self._count, self._nan_since
        for j, v in enumerate(values):
            if v == v:
                sums[j] += v
                counts[j] += 1
                if nan_since[j]:
                    self._reads_again(j)
            else:
                self._read_failed(j, t_ns)
        self._t_sum += t_ns
        self._taken += 1
        if self._taken >= self.block:
            self._send()

    def _reads_again(self, j: int) -> None:
        self._nan_since[j] = 0
        if self._lost[j]:
            self._lost[j] = False
            self._mark(f"{self.names[j]} back", GREEN)

    def _read_failed(self, j: int, t_ns: int) -> None:
        if not self._nan_since[j]:
            self._nan_since[j] = t_ns
        elif not self._lost[j] and t_ns - self._nan_since[j] >= self._lost_after:
            self._lost[j] = True
            self._mark(f"{self.names[j]} lost", RED)

    def _mark(self, text: str, color: int) -> None:
        self.client.marker(text, color)
        self.markers += 1

    def _send(self) -> None:
        """Send the block's average of every rail that has a value and is not lost."""
        n = self._taken
        t = self._t_sum // n
        value, sums, counts, lost = self.client.counter_value, self._sum, self._count, self._lost
        for j, key in enumerate(self.keys):
            c = counts[j]
            if c and not lost[j]:
                value(key, round(sums[j] * MODIFIER / c), time=t)
                self.sent += 1
            sums[j] = 0.0
            counts[j] = 0
        self._t_sum = self._taken = 0

    def finish(self) -> None:
        """Send the last (partial) block; later samples are ignored."""
        if self._on and self._taken:
            try:
                self._send()
            except Exception:  # as in add(): never the sampler's problem
                pass
        self._on = False

    def close(self) -> None:
        """:meth:`finish`, then flush and close the client (waits for gatord at most its send timeout)."""
        self.finish()
        self.client.close()

    def stats(self) -> dict[str, Any]:
        """What was sent: counter values, markers, the effective rate and the key of each rail."""
        return {
            "values_sent": self.sent,
            "markers_sent": self.markers,
            "rate_hz": self.rate_hz,
            "block": self.block,
            "keys": {n: hex(k) for n, k in zip(self.names, self.keys)},
            "modifier": MODIFIER,
        }
