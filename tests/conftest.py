"""Shared fixtures: every test gets its own TENANTFLOW_HOME; worlds are built by tests/world.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml.core.settings import Settings
from tests.served import served_world
from tests.world import END, world_env

__all__ = ["END", "served_world"]  # served_world: the serving and security suites share it


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A fresh, empty home for this test."""
    return world_env(monkeypatch, tmp_path / "home")
