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
