"""Shared test fixtures: where the read-only reference material and the fixture trees are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
SHARED = Path(os.environ.get("STREAMLINE_BRIDGE_SHARED", ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared() -> Path:
    """The reference material (../shared); tests that need it skip where it is absent."""
    if not (SHARED / "vectors").is_dir():
        pytest.skip(f"reference material not found at {SHARED} (set STREAMLINE_BRIDGE_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def vectors(shared: Path) -> Path:
    return shared / "vectors"


@pytest.fixture
def tx1(tmp_path: Path):
    """A fake Jetson TX1 sysfs tree (its INA3221 rails moving by 20 mW every 5 ms): ``--sysfs-root``."""
    from fake_sysfs import FakeSensor, tx1_ramps

    with FakeSensor(FIXTURES / "sysfs/tx1-l4t28", tmp_path / "sys", 0.005, tx1_ramps(20)):
        yield str(tmp_path / "sys")
