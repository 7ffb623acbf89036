"""What encrypting a silo tenant's warehouse costs: the same tenant's data built, checked,
snapshotted and read as a pool tenant (a plain DuckDB file, plain Parquet) and as a silo tenant
(encrypted with its key, :mod:`ml.core.tenant_keys`; its snapshots and published features
encrypted Parquet, :mod:`ml.core.tenant_parquet`).

Two tenants with the same generated events (two seeds apart only in their ids) are landed and
ingested; one is registered in the region's pool, the other as a silo. Each warehouse is built
``--repeats`` times (``dbt build`` from scratch, the file deleted in between), then snapshotted,
and the median seconds of each step are reported with the files' sizes; then the newest
snapshot's training table is read as training reads it, and the online features published
(from scratch) and loaded as the API loads them (``--repeats`` times each, medians). The silo's
landing files are sealed by its first ingest (:mod:`ml.core.sealed_files`) and opened by the rerun;
sealing and opening 64 MiB in memory is timed apart (``--repeats`` times, medians).

    .venv/bin/python benchmarks/encryption.py [--users 5000] [--days 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import fresh_home, report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    fresh_home("encryption")

    from ml.core.settings import get_settings
    from ml.core.tenants import Tenant, TenantStore
    from ml.core.warehouse import connect, warehouses
    from ml.data import publish, snapshots
    from ml.data.features import build_warehouse
    from ml.data.generate import generate
    from ml.data.generate.config import GenerationConfig, TenantSpec
    from ml.data.ingest.run import ingest_tenants
    from ml.models.kinds import online_marts
    from ml.models.runs import snapshot_warehouse

    settings = get_settings()
    spec = TenantSpec("plain", "eu", users=args.users, items=args.users // 5, fmt="parquet")
    config = GenerationConfig(
        tenants=[spec, replace(spec, tenant_id="sealed")], days=args.days, end_date=date(2026, 11, 1), seed=1
    )
    store = TenantStore(settings)
    store.add(Tenant("plain", "eu", isolation="pool", onboarded_at=config.start_date))
    store.add(Tenant("sealed", "eu", isolation="silo", share_data=False, onboarded_at=config.start_date))
    generate(config, settings.stores.landing.root)
    ingests: dict[str, dict[str, float]] = {}
    for tid in ("plain", "sealed"):  # each alone: the first ingest, then a rerun that changes nothing
        runs = []
        for _ in range(2):
            t0 = time.perf_counter()
            ingest_tenants([tid], config.start_date, config.end_date + timedelta(days=1))
            runs.append(round(time.perf_counter() - t0, 2))
        ingests[tid] = {"ingest_seconds": runs[0], "unchanged_rerun_seconds": runs[1]}
    figures: dict[str, dict[str, float]] = {}
    for wh in warehouses(store.list()):
        path = wh.path(settings)
        builds, snaps = [], []
        for _ in range(args.repeats):
            path.unlink(missing_ok=True)
            t0 = time.perf_counter()
            assert build_warehouse(wh, settings)["success"]
            builds.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            snapshot_warehouse(wh, None, settings)
            snaps.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with connect(path, read_only=True) as con:
            con.execute("select count(*) from ranking_examples").fetchone()
        opened = time.perf_counter() - t0
        tid = wh.tenants[0]
        snap = snapshots.latest(settings, "eu", tid)
        reads, loads, publishes = [], [], []
        for _ in range(args.repeats):
            shutil.rmtree(settings.stores.published.tenant_dir("eu", tid), ignore_errors=True)
            t0 = time.perf_counter()
            with connect(path, read_only=True) as con:
                publish.publish_tenant(con, settings, "eu", tid, online_marts())
            publishes.append(time.perf_counter() - t0)
        meta = publish.current(settings, "eu", tid)
        assert snap is not None and meta is not None
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            rows = len(snap.read(snap.table("ranking_examples"), settings))
            reads.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            publish.PublishedFeatures.load(meta, online_marts(), settings)
            loads.append(time.perf_counter() - t0)
        figures[wh.key] = {
            "build_seconds": round(statistics.median(builds), 2),
            "snapshot_seconds": round(statistics.median(snaps), 2),
            "open_and_count_seconds": round(opened, 3),
            "file_mb": round(path.stat().st_size / 1e6, 1),
            "ranking_examples_rows": rows,
            "publish_seconds": round(statistics.median(publishes), 3),
            "snapshot_read_seconds": round(statistics.median(reads), 3),
            "published_load_seconds": round(statistics.median(loads), 3),
            "snapshot_mb": round(sum(f.stat().st_size for f in snap.path.glob("*.parquet")) / 1e6, 1),
        }
    landing = settings.stores.landing
    ingests["sealed"]["landing_mb"] = round(sum(p.stat().st_size for p in landing.files("eu", "sealed", "*")) / 1e6, 1)
    report(
        "encryption",
        users=args.users,
        days=args.days,
        repeats=args.repeats,
        ingest=ingests,
        warehouses=figures,
        sealing=_sealing(args.repeats),
    )


def _sealing(repeats: int) -> dict[str, float]:
    """MB/s of sealing and opening 64 MiB of random bytes in memory (:mod:`ml.core.sealed_files`)."""
    import os
    import secrets

    from ml.core import sealed_files

    data, key = os.urandom(64 << 20), secrets.token_bytes(32)
    seals, opens = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sealed = sealed_files.seal_bytes(data, key)
        seals.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        assert sealed_files.open_bytes(sealed, key) == data
        opens.append(time.perf_counter() - t0)
    mb = len(data) / 1e6
    return {
        "seal_mb_per_s": round(mb / statistics.median(seals)),
        "open_mb_per_s": round(mb / statistics.median(opens)),
    }


if __name__ == "__main__":
    main()
