"""Landing → validated features: ingest (GX, quarantine, dedupe, lake) then dbt marts + GX.

Runs the same library functions the DAGs run, with two worker processes (the two mapped
tasks the DAGs run at once on this 2-core machine), without Airflow's own overhead.

    .venv/bin/python benchmarks/landing_to_features.py --tenants 10 --users 17000 --days 14   # ~10M events
    .venv/bin/python benchmarks/landing_to_features.py --tenants 100 --users 1400 --days 14
"""

from __future__ import annotations

import argparse
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta

from _common import fresh_home, ingest_chunk, register_fleet, report, warehouse

from ml.core.settings import get_settings
from ml.data.generate import generate
from ml.data.generate.config import fleet_config

END = date(2026, 11, 20)


def _build(args):
    from ml.data.features import build_and_check_warehouse
    from ml.models.kinds import online_marts

    key, threads = args
    res = build_and_check_warehouse(warehouse(key), online_marts(), threads=threads)
    slowest = sorted(res["nodes"], key=lambda n: -n["seconds"])[:8]
    return {
        "key": key,
        "failed": len(res["failed_nodes"]),
        "seconds": res["seconds"],
        "healthy": sum(h["healthy"] for h in res["health"].values()),
        "tenants": len(res["health"]),
        # where a regression hides: the dbt nodes that took longest (a node's own execution time)
        "slowest_nodes": {n["node"].split(".", 2)[-1]: n["seconds"] for n in slowest},
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--tenants", type=int, default=10)
    ap.add_argument("--users", type=int, default=17000)
    ap.add_argument("--items", type=int, default=1500)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    home = fresh_home("l2f")
    settings = get_settings()
    config = fleet_config(a.tenants, a.users, a.items, a.days, seed=1, end_date=END)
    register_fleet(settings, config)
    result = generate(config, settings.stores.landing.root)
    from ml.core.tenants import TenantStore
    from ml.core.warehouse import duckdb_threads, warehouses
    from ml.data.ingest.plan import plan_chunks

    t0 = time.perf_counter()
    # chunks as the ingest DAG plans them: at most 8 tenants, balanced by landing bytes
    interval = (config.start_date, END + timedelta(days=1))
    chunks = plan_chunks(settings, TenantStore(settings).list(), *interval, chunk_size=8, parallel=a.workers)
    with ProcessPoolExecutor(a.workers) as pool:
        summaries = [s for part in pool.map(ingest_chunk, [(c, *interval) for c in chunks]) for s in part]
    t1 = time.perf_counter()
    keys = [w.key for w in warehouses(TenantStore(settings).list())]
    at_once = min(a.workers, len(keys))
    with ProcessPoolExecutor(at_once) as pool:
        builds = list(pool.map(_build, [(k, duckdb_threads(at_once)) for k in keys]))
    t2 = time.perf_counter()
    landed = sum(s["landed"] for s in summaries)
    report(
        "landing_to_features",
        tenants=a.tenants,
        events=result.events,
        landed=landed,
        ingest_seconds=round(t1 - t0, 1),
        features_seconds=round(t2 - t1, 1),
        total_seconds=round(t2 - t0, 1),
        events_per_second=round(result.events / (t2 - t0)),
        ingest_events_per_second=round(result.events / (t1 - t0)),
        warehouses=builds,
    )
    shutil.rmtree(home)
