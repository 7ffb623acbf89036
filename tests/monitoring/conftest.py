"""A monitored world: tenants trained on their first 28 days, then a week of new data arrives.

Ten stationary tenants, each generated from its own seed (the false-alarm sample), and one tenant
per injected drift kind, whose drift starts on the first day after training. Every tenant is served
by the global model (a high ``TENANTFLOW_TRAIN_MIN_HISTORY_DAYS``), which keeps the world cheap to
build: the checks judge whichever champion a tenant has.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.world import END, Drift, GenerationConfig, TenantSpec, World, build_world

DAYS = 35
TRAINED_DAYS = 28  # days 0..27 land before training; 28..34 arrive after it
STATIONARY = [f"steady{i:02d}" for i in range(1, 11)]
DRIFTED = {"shifted": "taste_shift", "newcat": "new_category", "shorter": "dwell_change"}


def _spec(tenant_id: str) -> TenantSpec:
    return TenantSpec(tenant_id, "eu", users=300, items=150, fmt="parquet")


def _configs() -> list[GenerationConfig]:
    """One generation per stationary tenant (its own seed), one for the drifted tenants."""
    out = [
        GenerationConfig(tenants=[_spec(t)], days=DAYS, end_date=END, seed=100 + i) for i, t in enumerate(STATIONARY)
    ]
    out.append(
        GenerationConfig(
            tenants=[_spec(t) for t in DRIFTED],
            days=DAYS,
            end_date=END,
            seed=7,
            drifts=[Drift(t, kind, TRAINED_DAYS) for t, kind in DRIFTED.items()],
        )
    )
    return out


def build_monitored(mp: pytest.MonkeyPatch, home: Path) -> World:
    """28 days landed, trained, scored; 7 more days landed and built (also ``benchmarks/world_build.py``)."""
    onboarded = {t: END - timedelta(days=DAYS) for t in [*STATIONARY, *DRIFTED]}
    return build_world(
        mp,
        home,
        _configs(),
        not_sharing=tuple(DRIFTED),
        onboarded=onboarded,
        score=True,
        trained_days=TRAINED_DAYS,
        TENANTFLOW_TRAIN_MIN_HISTORY_DAYS=1000,
    )  # every tenant is served by the global model


@pytest.fixture(scope="session")
def monitored(tmp_path_factory):
    """(settings, warehouses) of :func:`build_monitored`."""
    mp = pytest.MonkeyPatch()
    w = build_monitored(mp, tmp_path_factory.mktemp("monitor") / "home")
    yield w.settings, w.warehouses
    mp.undo()
