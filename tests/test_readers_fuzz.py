"""Every reader on mutated real inputs: captures, marker logs, power logs, run folders, exports, tegrastats.

Hypothesis draws the seed input, the file in it and up to three mutations (``fuzz_support``), with
a fixed budget and derandomized (the same cases every run). The property is the readers' contract
(:func:`fuzz_support.outcome`): an :class:`InputError` naming the file, or a consistent recording
that ``inspect`` can summarise; never anything else. Crashers found by this test or by the
campaign (``python -m bench fuzz``) are kept below as ``@example`` s.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import fuzz_support as fz

SEED_NAMES = (
    "marker-log",
    "power-log",
    "power-log-no-trailer",
    "run-dir",
    "apc:gatord-6.5-local",
    "apc:synthetic-p950",
    "apc:legacy",
    "exports:log-view-6.1.csv",
    "exports:report-timeline.space.txt",
    "tegrastats:tx2.log",
    "tegrastats:agx-orin-jp7.log",
)
mutation = st.tuples(st.sampled_from(fz.OPS), st.floats(0, 1), st.integers(0, 1 << 16))


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> dict[str, fz.Seed]:
    return {s.name: s for s in fz.build_seeds(tmp_path_factory.mktemp("seeds"), shared)}


def test_the_seeds_read_cleanly(seeds: dict[str, fz.Seed]) -> None:
    """Unmutated, every seed reads (the legacy capture lacks captured.xml: partial by design)."""
    for name, seed in seeds.items():
        what, detail = fz.outcome(seed.path)
        assert what == ("partial" if name in ("apc:legacy", "power-log-no-trailer") else "ok"), (name, detail)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=st.sampled_from(SEED_NAMES), target=st.integers(0, 7), mutations=st.lists(mutation, min_size=1, max_size=3))
# crashers of the campaign on the code before the readers were hardened:
@example(name="run-dir", target=0, mutations=[("json", 0.92078697341841, 44016)])  # "files": "x"
@example(name="run-dir", target=0, mutations=[("json", 0.9164525622462736, 6897)])
@example(name="run-dir", target=0, mutations=[("json", 0.7953001733910376, 50890)])  # a phase [t, {}]
@example(
    name="power-log",
    target=0,
    mutations=[
        ("dup", 0.5915329785880725, 2895),
        ("json", 0.5461634500072636, 52513),
        ("cut", 0.9691273743439486, 16391),
    ],
)
@example(
    name="apc:gatord-6.5-local",
    target=2,
    mutations=[
        ("flip", 0.7507893957644483, 49687),  # encoding="nan"
        ("u32", 0.5707842082409654, 10763),
        ("json", 0.06525638282649004, 40743),
    ],
)
@example(name="power-log", target=0, mutations=[("small", 0.379, 2)])  # the first record's type set to trailer
@example(name="apc:synthetic-p950", target=1, mutations=[("token", 0.0742, 7)])  # encoding="utf-9" in captured.xml
@example(name="marker-log", target=0, mutations=[("zeros", 0.5, 1000)])  # 63 kB of zeros appended
def test_every_reader_keeps_its_contract_on_mutated_inputs(seeds, tmp_path, name, target, mutations) -> None:
    assume(name in seeds)
    seed = seeds[name]
    path = fz.materialise(
        seed, seed.targets[target % len(seed.targets)], mutations, tmp_path / f"case{seed.path.suffix}"
    )
    what, detail = fz.outcome(path)
    assert what != "internal-error", detail
