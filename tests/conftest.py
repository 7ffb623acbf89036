"""Shared fixtures: every test gets its own TENANTFLOW_HOME; worlds are built by tests/world.py.

Under pytest-xdist (``make test`` runs ``-n auto --dist loadgroup``), the tests that share a
session- or module-scoped fixture of this suite (a world) run on one worker, so each world is
built once (:func:`pytest_itemcollected`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ml.core.settings import Settings
from tests.served import served_world
from tests.world import END, world_env, world_variables

__all__ = ["END", "served_world"]  # served_world: the serving and security suites share it


def pytest_configure(config: pytest.Config) -> None:
    """Each of several xdist workers has one core's share of the machine: the global model trains
    with one LightGBM thread there, as tenant models do. Two OpenMP threads whose second core is
    busy spin at their barriers: a 287,000-row LambdaRank fit of 60 rounds took 5.6 s with two
    threads against 3.3 s with one while another process held the second core (2.4 s with two on
    an idle machine: ``benchmarks/thread_share.py``). DuckDB and BLAS lose nothing there. A
    variable set by whoever runs the suite wins."""
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
        os.environ.setdefault("TENANTFLOW_TRAIN_GLOBAL_THREADS", "1")


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A fresh, empty home for this test."""
    return world_env(monkeypatch, tmp_path / "home")


@pytest.fixture(autouse=True)
def _no_world_environment(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that uses no world does not see the environment a world of this process left
    (its home, its settings): it starts from the environment the session started with."""
    if request.node.get_closest_marker("xdist_group") is None:
        for k in world_variables():
            monkeypatch.delenv(k, raising=False)


_SCOPES = {"session": 0, "package": 1, "module": 2, "class": 3}


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark ``xdist_group`` on a test that uses a world: a session- or module-scoped fixture of this
    suite (directly or through another fixture), named after the widest-scoped one. Marked as each
    test is collected: xdist reads the marks in its own ``pytest_collection_modifyitems``."""
    info = getattr(item, "_fixtureinfo", None)
    defs = [d[-1] for d in (info.name2fixturedefs.values() if info else ()) if d]
    shared = [d for d in defs if d.scope in _SCOPES and d.baseid.startswith("tests")]
    if shared:
        d = min(shared, key=lambda d: (_SCOPES[d.scope], d.baseid, d.argname))
        item.add_marker(pytest.mark.xdist_group(f"{d.baseid}::{d.argname}".replace("/", ".").replace("::", ".")))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest work first, so that two xdist workers end together: the real-Airflow test (one
    test, the longest), then the world groups, most tests first, then the other tests in
    collection order. ``make test`` passes ``--no-loadscope-reorder`` so that xdist keeps this
    order (its own puts the groups with most tests first and a one-test scope such as the Airflow
    test last)."""

    def group(item: pytest.Item) -> str | None:
        mark = item.get_closest_marker("xdist_group")
        return str(mark.args[0]) if mark and mark.args else None

    sizes: dict[str | None, int] = {}
    for item in items:
        sizes[group(item)] = sizes.get(group(item), 0) + 1
    order = {id(item): i for i, item in enumerate(items)}

    def key(item: pytest.Item) -> tuple[int, int, str, int]:
        g = group(item)
        if item.get_closest_marker("integration"):
            return 0, 0, "", order[id(item)]
        if g is not None:
            return 1, -sizes[g], g, order[id(item)]
        return 2, 0, "", order[id(item)]

    items.sort(key=key)
