"""Shared fixtures: every test gets its own TENANTFLOW_HOME; small generated tenants."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from ml.generate import Faults, GenerationConfig, TenantSpec
from ml.settings import Settings, get_settings
from ml.tenants import Tenant, TenantRegistry

END = date(2026, 11, 20)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("TENANTFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TENANTFLOW_LANDING_SETTLE_SECONDS", "0")
    return get_settings()


def small_config(days: int = 4, faults: bool = False, seed: int = 7, **kw) -> GenerationConfig:
    specs = kw.pop("specs", None) or [
        TenantSpec("acme", "eu", users=300, items=80, fmt="csv"),
        TenantSpec("globex", "eu", users=250, items=60, fmt="jsonl"),
        TenantSpec("initech", "us", users=200, items=50, fmt="parquet"),
    ]
    return GenerationConfig(
        tenants=specs, days=days, end_date=END, seed=seed,
        faults=[Faults("globex", rate=0.02)] if faults else [], **kw,
    )


def register(settings: Settings, config: GenerationConfig, silo: tuple[str, ...] = ("initech",)) -> list[Tenant]:
    registry = TenantRegistry(settings)
    out = []
    for s in config.tenants:
        t = Tenant(s.tenant_id, s.region, isolation="silo" if s.tenant_id in silo else "pool",
                   share_data=s.tenant_id not in silo, onboarded_at=config.start_date)
        registry.add(t)
        out.append(t)
    return out
