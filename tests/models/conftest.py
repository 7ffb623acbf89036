"""A small trained world: five generated tenants through ingest, dbt, snapshots and training of every kind.

acme and globex share data, umbra (pool) and initech (silo) do not, young has 10 days of history.
Residency: acme, globex, umbra and young are in eu, initech and hooli (pool, sharing) in us, so
each region has its own global models; young opted in to the us global model (``global_region``).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.world import END, GenerationConfig, TenantSpec, World, build_world

SPECS = [
    TenantSpec("acme", "eu", users=700, items=600, fmt="parquet"),
    TenantSpec("globex", "eu", users=550, items=450, fmt="parquet", activity=1.2),
    TenantSpec("umbra", "eu", users=500, items=450, fmt="parquet"),  # pool, does not share data
    TenantSpec("initech", "us", users=450, items=350, fmt="parquet", activity=1.1),  # silo
    TenantSpec("young", "eu", users=250, items=150, fmt="parquet", history_days=10),
    TenantSpec("hooli", "us", users=600, items=400, fmt="parquet", activity=1.2),
]
SHARING = {"eu": ("acme", "globex", "young"), "us": ("hooli",)}
OPTED_IN = {"young": "us"}  # young is served by recommender.global.us, not .eu
DAYS = 47  # a 14-day churn window trains on two purged cutoffs (days 12 and 19), from day 47


def build_models_world(mp: pytest.MonkeyPatch, home: Path) -> World:
    """The six tenants landed, built and trained (also ``benchmarks/world_build.py``)."""
    config = GenerationConfig(tenants=SPECS, days=DAYS, end_date=END, seed=11)
    onboarded = {s.tenant_id: END - timedelta(days=s.history_days or DAYS) for s in SPECS}
    return build_world(
        mp,
        home,
        [config],
        silo=("initech",),
        not_sharing=("umbra",),
        onboarded=onboarded,
        fields={t: {"global_region": r} for t, r in OPTED_IN.items()},
    )


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """(settings, results of the first training) of :func:`build_models_world`, for the whole model test session."""
    mp = pytest.MonkeyPatch()
    w = build_models_world(mp, tmp_path_factory.mktemp("models") / "home")
    yield w.settings, w.results
    mp.undo()
