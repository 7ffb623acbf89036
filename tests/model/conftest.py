"""A small trained world: five generated tenants through ingest, dbt, snapshots and training."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ml import features, ingest, snapshots, train
from ml.generate import GenerationConfig, TenantSpec, generate
from ml.settings import get_settings
from ml.tenants import Tenant, TenantRegistry
from tests.conftest import END

SPECS = [
    TenantSpec("acme", "eu", users=700, items=600, fmt="parquet"),
    TenantSpec("globex", "eu", users=550, items=450, fmt="parquet", activity=1.2),
    TenantSpec("umbra", "eu", users=500, items=450, fmt="parquet"),  # pool, does not share data
    TenantSpec("initech", "us", users=450, items=350, fmt="parquet", activity=1.1),  # silo
    TenantSpec("young", "eu", users=250, items=150, fmt="parquet", history_days=10),
]
SHARING = ("acme", "globex", "young")
DAYS = 40


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """(settings, results of the first training) for the whole model test session."""
    home = tmp_path_factory.mktemp("models") / "home"
    mp = pytest.MonkeyPatch()
    mp.setenv("TENANTFLOW_HOME", str(home))
    mp.setenv("TENANTFLOW_LANDING_SETTLE_SECONDS", "0")
    mp.setenv("TENANTFLOW_GIT_COMMIT", "test-commit")
    settings = get_settings()
    config = GenerationConfig(tenants=SPECS, days=DAYS, end_date=END, seed=11)
    reg = TenantRegistry(settings)
    for s in SPECS:
        reg.add(Tenant(s.tenant_id, s.region, isolation="silo" if s.tenant_id == "initech" else "pool",
                       share_data=s.tenant_id in SHARING, onboarded_at=END - timedelta(days=s.history_days or DAYS)))
    generate(config, settings.landing)
    ingest.ingest_tenants([s.tenant_id for s in SPECS], config.start_date, END + timedelta(days=1), settings)
    for wh in features.warehouses(reg.list()):
        res = features.build_warehouse(wh, settings)
        assert not res["failed_nodes"], res["failed_nodes"]
        snapshots.export_warehouse(wh, settings)
    results = {}
    for kind in ("recommender", "churn"):
        results[("global", kind)] = train.train_global(kind, "test", settings)
        for s in SPECS:
            results[(s.tenant_id, kind)] = train.train_tenant(kind, s.tenant_id, "test", settings)
    yield settings, results
    mp.undo()
