"""The one builder of a small world: tenants registered, data generated and ingested, features built,
champions trained (and optionally scored, published, keyed), in a home of its own.

Every session-scoped world of the suite (models, monitoring, serving) is a call of :func:`build_world`
with its own tenants; the unit tests use :func:`small_config` and :func:`register` for a world
without models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from ml.core.settings import Settings, get_settings
from ml.core.tenants import Tenant, TenantStore
from ml.core.warehouse import Warehouse, warehouses
from ml.data.features import build_and_check_warehouse, build_warehouse
from ml.data.generate import generate
from ml.data.generate.config import Drift, Faults, GenerationConfig, TenantSpec
from ml.data.ingest.run import ingest_tenants
from ml.models import registry
from ml.models.kinds import kind_names, online_marts
from ml.models.runs import global_regions, snapshot_warehouse
from ml.models.score import score_warehouse
from ml.models.train import train_global, train_tenant

END = date(2026, 11, 20)  # every generated world ends here, whatever the day the tests run


def small_config(days: int = 4, faults: bool = False, seed: int = 7, **kw: Any) -> GenerationConfig:
    """Three small tenants (CSV, JSON lines, Parquet) for the data plane's tests."""
    specs = kw.pop("specs", None) or [
        TenantSpec("acme", "eu", users=300, items=80, fmt="csv"),
        TenantSpec("globex", "eu", users=250, items=60, fmt="jsonl"),
        TenantSpec("initech", "us", users=200, items=50, fmt="parquet"),
    ]
    return GenerationConfig(
        tenants=specs, days=days, end_date=END, seed=seed, faults=[Faults("globex", rate=0.02)] if faults else [], **kw
    )


def register(
    settings: Settings,
    config: GenerationConfig,
    silo: Sequence[str] = ("initech",),
    not_sharing: Sequence[str] = (),
    onboarded: dict[str, date] | None = None,
    fields: dict[str, dict[str, Any]] | None = None,
) -> list[Tenant]:
    """Register the config's tenants: ``silo`` ones in their own warehouse (never sharing data);
    ``fields``: more registry fields of a tenant (quotas, ``global_region``, ...)."""
    store = TenantStore(settings)
    out = []
    for s in config.tenants:
        t = Tenant(
            s.tenant_id,
            s.region,
            isolation="silo" if s.tenant_id in silo else "pool",
            share_data=s.tenant_id not in silo and s.tenant_id not in not_sharing,
            onboarded_at=(onboarded or {}).get(s.tenant_id, config.start_date),
            **(fields or {}).get(s.tenant_id, {}),
        )
        store.add(t)
        out.append(t)
    return out


@dataclass
class World:
    settings: Settings
    config: GenerationConfig
    warehouses: list[Warehouse]
    results: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (tenant or global.<region>, kind)
    keys: dict[str, str] = field(default_factory=dict)  # tenant -> API key


# settings some world set: the session-scoped worlds keep their environment until the session
# ends, so a later world starts without another's (the monitoring world's 1000-day training
# history would otherwise reach the models world when the monitoring tests run first)
_WORLD_SETTINGS: set[str] = set()


_EVERY_WORLD = {
    "TENANTFLOW_LANDING_SETTLE_SECONDS": "0",
    "TENANTFLOW_LANDING_SEAL_AFTER_SECONDS": "0",
    "TENANTFLOW_GIT_COMMIT": "test-commit",
}


def world_variables() -> set[str]:
    """Every environment variable a world of this process set (they stay until the session ends)."""
    return {"TENANTFLOW_HOME", *_EVERY_WORLD, *_WORLD_SETTINGS}


def world_env(mp: pytest.MonkeyPatch, home: Path, **env: object) -> Settings:
    """Point this process at ``home`` (and these settings, and no other world's), the way every world does."""
    for k in _WORLD_SETTINGS - set(env):
        mp.delenv(k, raising=False)
    _WORLD_SETTINGS.update(env)
    mp.setenv("TENANTFLOW_HOME", str(home))
    for k, v in {**_EVERY_WORLD, **env}.items():
        mp.setenv(k, str(v))
    return get_settings()


def lake_rows_by_user(settings: Settings, region: str, tenant_id: str) -> dict[str, int]:
    """Rows per ``user_id`` in a tenant's lake."""
    import duckdb

    glob = settings.stores.lake.glob(region, tenant_id, "part-0.parquet")
    with duckdb.connect() as con:
        return dict(con.execute(f"select user_id, count(*) from read_parquet('{glob}') group by 1").fetchall())


def land(
    settings: Settings, configs: Sequence[GenerationConfig], first: int, last: int, tenants: Sequence[str]
) -> None:
    """Generate and ingest days ``[first, last)`` of each config's window."""
    for config in configs:
        generate(replace(config, land_days=(first, last)), settings.stores.landing.root, workers=1)
    start = configs[0].start_date
    ingest_tenants(list(tenants), start + timedelta(days=first), start + timedelta(days=last), settings)


def build_features(settings: Settings, publish: bool = False) -> list[Warehouse]:
    """dbt build of every warehouse (with GX checks and publishing for the API when ``publish``)."""
    whs = warehouses(TenantStore(settings).list())
    for wh in whs:
        if publish:
            res = build_and_check_warehouse(wh, online_marts(), settings)
            assert not res["failed_nodes"] and set(res["published"]) == set(wh.tenants), res
        else:
            res = build_warehouse(wh, settings)
            assert not res["failed_nodes"], res["failed_nodes"]
    return whs


def train_all(
    settings: Settings, whs: list[Warehouse], tenants: Sequence[str]
) -> dict[tuple[str, str], dict[str, Any]]:
    """Snapshot every warehouse, then train every kind: each region's global model, then each tenant's."""
    for wh in whs:
        snapshot_warehouse(wh, None, settings)
    results = {}
    for kind in kind_names():
        for region in global_regions(TenantStore(settings).list()):
            results[(registry.global_owner(region), kind)] = train_global(kind, region, "test", settings)
        for t in tenants:
            results[(t, kind)] = train_tenant(kind, t, "test", settings)
    return results


def build_world(
    mp: pytest.MonkeyPatch,
    home: Path,
    configs: Sequence[GenerationConfig],
    *,
    silo: Sequence[str] = (),
    not_sharing: Sequence[str] = (),
    onboarded: dict[str, date] | None = None,
    fields: dict[str, dict[str, Any]] | None = None,
    publish: bool = False,
    score: bool = False,
    keys: bool = False,
    trained_days: int | None = None,
    **env: object,
) -> World:
    """A trained world in ``home`` (see the module docstring).

    ``configs`` share one window (their tenants are disjoint); ``trained_days``: land and train on
    that many days, then land the rest of the window and rebuild the features (a week "after
    training"), else land everything first.
    """
    settings = world_env(mp, home, **env)
    for config in configs:
        register(settings, config, silo, not_sharing, onboarded, fields)
    tenants = [s.tenant_id for c in configs for s in c.tenants]
    days = configs[0].days
    land(settings, configs, 0, trained_days or days, tenants)
    whs = build_features(settings, publish)
    world = World(settings, configs[0], whs, train_all(settings, whs, tenants))
    if score:
        for wh in whs:
            score_warehouse(wh, settings)
    if trained_days is not None:
        land(settings, configs, trained_days, days, tenants)
        build_features(settings, publish)
    if keys:
        from ml.serving.keys import create_key

        world.keys = {t: create_key(t, "tests", settings)[1] for t in tenants}
    return world


__all__ = [
    "END",
    "Drift",
    "Faults",
    "GenerationConfig",
    "TenantSpec",
    "World",
    "build_world",
    "lake_rows_by_user",
    "register",
    "small_config",
    "world_variables",
]
