"""Helpers shared by the benchmark scripts: a throwaway home, registration, a results line."""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path


def fresh_home(name: str) -> Path:
    """Point TENANTFLOW_HOME at a new folder (under benchmarks/out/ unless BENCH_HOME is set)."""
    root = Path(os.environ.get("BENCH_HOME") or Path(__file__).parent / "out")
    root.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))
    os.environ["TENANTFLOW_HOME"] = str(home)
    os.environ["TENANTFLOW_LANDING_SETTLE_SECONDS"] = "0"
    return home


def register_fleet(settings, config) -> None:
    from ml.core.tenants import Tenant, TenantStore

    store = TenantStore(settings)
    for s in config.tenants:
        store.add(Tenant(s.tenant_id, s.region, onboarded_at=config.start_date), replace=True)


def ingest_chunk(args):
    """One worker's share of ingestion: (tenant ids, start, end) -> per-day summaries."""
    from ml.data.ingest.run import ingest_tenants

    tenants, start, end = args
    return ingest_tenants(tenants, start, end)


def warehouse(key: str):
    """The registered warehouse with this key (worker processes are handed keys, not objects)."""
    from ml.core.tenants import TenantStore
    from ml.core.warehouse import warehouses

    return next(w for w in warehouses(TenantStore().list()) if w.key == key)


def report(name: str, **figures) -> None:
    figures = {
        "benchmark": name,
        "machine": f"{os.cpu_count()} cores, {platform.python_version()}",
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **figures,
    }
    print(json.dumps(figures))
    out = Path(__file__).parent / "results.jsonl"
    with open(out, "a") as f:
        f.write(json.dumps(figures) + "\n")
