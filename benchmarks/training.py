"""Training and gating a fleet: global models plus every tenant's, in-process and through Airflow.

Sets up N generated tenants (ingest and dbt features, not timed here), then:

1. **library**: the train DAG's work without Airflow: snapshots per warehouse, the global
   models, then the tenants in two worker processes (the two mapped tasks that run at once
   on this 2-core machine);
2. **airflow** (``--airflow``): the same work as one `train` DAG run on a fresh MLflow store,
   through the real scheduler and LocalExecutor. Airflow's overhead is the share of the DAG
   run's wall time not spent in the library's work: 1 - library / airflow.

    .venv/bin/python benchmarks/training.py --tenants 100 --users 320 --items 150 --days 35 --airflow
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta

from _common import fresh_home, ingest_chunk, register_fleet, report, warehouse

from ml.core.settings import get_settings
from ml.data.generate import generate
from ml.data.generate.config import fleet_config

END = date(2026, 11, 20)


def _build(key):
    from ml.data.features import build_and_check_warehouse
    from ml.models.kinds import online_marts

    res = build_and_check_warehouse(warehouse(key), online_marts())
    return key, len(res["failed_nodes"]), res["seconds"]


def _snapshot(key):
    from ml.models.runs import snapshot_warehouse

    return len(snapshot_warehouse(warehouse(key)))


def _global(kind):
    from ml.core.tenants import TenantStore
    from ml.models.runs import global_regions
    from ml.models.train import train_global

    return [train_global(kind, r, "benchmark") for r in global_regions(TenantStore().list())]


def _tenants(ids):
    from ml.models.kinds import kind_names
    from ml.models.train import train_tenant

    out = []
    for tid in ids:
        for kind in kind_names():
            t = time.perf_counter()
            r = train_tenant(kind, tid, "benchmark")
            out.append(
                {
                    "tenant": tid,
                    "kind": kind,
                    "seconds": time.perf_counter() - t,
                    "promoted": r.get("promoted"),
                    "trained_on": r.get("trained_on"),
                    "log_seconds": r.get("log_seconds"),
                }
            )
    return out


def library_run(settings, workers: int) -> dict:
    from ml.core.tenants import TenantStore
    from ml.core.warehouse import warehouses
    from ml.data.ingest.plan import chunk
    from ml.models.kinds import kind_names

    tenants = TenantStore(settings).list()
    ids = [t.tenant_id for t in tenants]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_snapshot, [w.key for w in warehouses(tenants)]))
        t_snap = time.perf_counter() - t0
        globals_ = [g for gs in pool.map(_global, kind_names()) for g in gs]
        t_global = time.perf_counter() - t0 - t_snap
        chunks = chunk(ids, max(1, -(-len(ids) // workers)))
        results = [r for part in pool.map(_tenants, chunks) for r in part]
    wall = time.perf_counter() - t0
    per = sorted(r["seconds"] for r in results)
    return {
        "wall_s": round(wall, 1),
        "snapshot_s": round(t_snap, 1),
        "global_s": round(t_global, 1),
        "tenants_s": round(wall - t_snap - t_global, 1),
        "tenant_model_p50_s": round(per[len(per) // 2], 2),
        "tenant_model_max_s": round(per[-1], 2),
        "mlflow_log_p50_s": round(sorted(r["log_seconds"] or 0 for r in results)[len(results) // 2], 2),
        "promoted": sum(bool(r["promoted"]) for r in results),
        "trained_on": {k: sum(r["trained_on"] == k for r in results) for k in ("global", "fine_tuned", "tenant")},
        "global_versions": [g.get("version") for g in globals_],
    }


def airflow_run(settings) -> dict:
    from datetime import datetime

    from ml.ops.airflow import running_airflow

    with running_airflow(settings) as airflow:
        airflow.wait_dag("train")
        airflow.set_paused("train", False)
        run_id = airflow.trigger("train", {"reason": "benchmark", "chunk_size": 50})
        run = airflow.wait_run("train", run_id, timeout=3600)
        tis = airflow.task_instances("train", run_id)

    def ts(s):
        return datetime.fromisoformat(s.replace("Z", "+00:00"))

    # wall from the trigger to the run's end, as a user waits for it (a run's start_date can be
    # reset by the scheduler, so take the earliest of queued/start)
    begin = min(ts(x) for x in (run.get("queued_at"), run.get("start_date")) if x)
    wall = (ts(run["end_date"]) - begin).total_seconds()
    busy = sum((ts(t["end_date"]) - ts(t["start_date"])).total_seconds() for t in tis if t.get("end_date"))
    return {
        "state": run["state"],
        "wall_s": round(wall, 1),
        "task_seconds_sum": round(busy, 1),
        "task_instances": len(tis),
        "tries": {
            f"{t['task_id']}[{t['map_index']}]": t.get("try_number") for t in tis if (t.get("try_number") or 1) > 1
        },
        "run": {k: run.get(k) for k in ("queued_at", "start_date", "end_date")},
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--tenants", type=int, default=100)
    ap.add_argument("--users", type=int, default=320)
    ap.add_argument("--items", type=int, default=150)
    ap.add_argument("--days", type=int, default=35)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--airflow", action="store_true", help="also time one train DAG run through Airflow")
    ap.add_argument("--keep", action="store_true", help="keep the benchmark's home (for inspection)")
    a = ap.parse_args()
    home = fresh_home("train")
    settings = get_settings()
    config = fleet_config(a.tenants, a.users, a.items, a.days, seed=5, end_date=END)
    register_fleet(settings, config)
    gen = generate(config, settings.stores.landing.root)
    from ml.core.tenants import TenantStore
    from ml.core.warehouse import warehouses
    from ml.data.ingest.plan import chunk

    ids = [s.tenant_id for s in config.tenants]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(a.workers) as pool:
        list(
            pool.map(
                ingest_chunk,
                [
                    (c, config.start_date, END + timedelta(days=1))
                    for c in chunk(ids, max(1, -(-len(ids) // a.workers)))
                ],
            )
        )
        t_ingest = time.perf_counter() - t0
        builds = list(pool.map(_build, [w.key for w in warehouses(TenantStore(settings).list())]))
    t_setup = time.perf_counter() - t0
    assert all(b[1] == 0 for b in builds), builds
    # the Airflow run starts from the same features and no models: a copy of the home as it is now
    # (the audit log is append-only, so models cannot be reset in place)
    twin = home.with_name(home.name + "-airflow")
    if a.airflow:
        shutil.rmtree(twin, ignore_errors=True)
        shutil.copytree(home, twin, symlinks=True)
    lib = library_run(settings, a.workers)
    figures = {
        "tenants": a.tenants,
        "events": gen.events,
        "events_per_tenant": gen.events // a.tenants,
        "setup_ingest_s": round(t_ingest, 1),
        "setup_features_s": round(t_setup - t_ingest, 1),
        "library": lib,
    }
    if a.airflow:
        os.environ["TENANTFLOW_HOME"] = str(twin)
        af = airflow_run(get_settings())
        af["overhead_share"] = round(1 - lib["wall_s"] / af["wall_s"], 3) if af["wall_s"] else None
        figures["airflow"] = af
    report("training", **figures)
    if not a.keep:
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(twin, ignore_errors=True)
