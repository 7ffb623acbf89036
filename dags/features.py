"""
### Features: dbt-duckdb marts per warehouse, checked by Great Expectations

Scheduled on the `lake_events` asset (emitted by `ingest`). One mapped task per warehouse
file (a region's pool, or a silo tenant's own file) runs `dbt build` (models and dbt tests)
under an exclusive lock on that file (DuckDB allows one writer per file), then validates each
tenant's marts with Great Expectations. A tenant whose features fail is marked unhealthy
with the failing expectations, and later stages skip it; the other tenants go on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task

from dags.common.assets import FEATURE_MARTS, LAKE_EVENTS

# Warehouse builds running at once (each holds its own file's lock); each gets its share of
# the cores as DuckDB threads.
BUILDS_AT_ONCE = 2


@dag(
    dag_id="features",
    schedule=LAKE_EVENTS,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["tenantflow", "features", "dbt"],
    default_args={"retries": 1, "retry_delay": timedelta(seconds=15)},
    params={
        "tenants": Param([], type="array", description="Limit to the warehouses of these tenants; empty means all"),
        "rebuild_from": Param(None, type=["null", "string"], format="date", description="Recompute incremental activity from this date"),
    },
)
def features():
    @task
    def plan() -> list[dict]:
        """The warehouse files to build, from the registry at run time."""
        from dataclasses import asdict

        from ml.features import duckdb_threads, tenants_for, warehouses

        ctx = get_current_context()
        rebuild_from = ctx["params"]["rebuild_from"]
        for events in (ctx.get("triggering_asset_events") or {}).values():
            for ev in events:
                rf = (ev.extra or {}).get("rebuild_from")
                if rf and (rebuild_from is None or rf < rebuild_from):
                    rebuild_from = rf
        planned = warehouses(tenants_for(None, ctx["params"]["tenants"] or None))
        threads = duckdb_threads(min(BUILDS_AT_ONCE, len(planned)))
        return [{**asdict(w), "rebuild_from": rebuild_from, "threads": threads} for w in planned]

    @task(max_active_tis_per_dag=BUILDS_AT_ONCE)
    def build_and_check(warehouse: dict) -> dict:
        """dbt build for one warehouse file, then GX checks of each tenant's marts."""
        from ml.features import Warehouse, build_and_check_warehouse

        wh = Warehouse.from_dict(warehouse)
        return build_and_check_warehouse(wh, rebuild_from=warehouse["rebuild_from"], threads=warehouse.get("threads"))

    @task(outlets=[FEATURE_MARTS], trigger_rule="all_done")
    def publish(results: list[dict]) -> dict:
        """Build the GX Data Docs and emit the feature asset event with per-tenant health."""
        from ml.quality import build_data_docs

        health = {t: h for r in results if r for t, h in r.get("health", {}).items()}
        docs = build_data_docs()
        extra = {"healthy": sorted(t for t, h in health.items() if h["healthy"]),
                 "unhealthy": sorted(t for t, h in health.items() if not h["healthy"]),
                 "data_docs": str(docs)}
        get_current_context()["outlet_events"][FEATURE_MARTS].extra = extra
        return extra

    publish(build_and_check.expand(warehouse=plan()))


features()
