"""
### Features: dbt-duckdb marts per warehouse, checked by Great Expectations

Scheduled on the `lake_events` asset (emitted by `ingest`). One mapped task per warehouse
file (a region's pool, or a silo tenant's own file) runs `dbt build` of the models, then `dbt test`
(a failed data test holds back the tenants its rows name and skips no model of the others)
under an exclusive lock on that file (DuckDB allows one writer per file), then validates each
tenant's marts with Great Expectations and publishes the healthy tenants' online features for
the API. A tenant whose features fail is marked unhealthy with the failing expectations, and
later stages skip it; the other tenants go on. A run in which a build failed still reports and
emits its event for the others, then ends **failed** (`fail_run_on_failure`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import dag, get_current_context, task

from dags.common import forms, labels, outcome
from dags.common.assets import FEATURE_MARTS, LAKE_EVENTS
from dags.common.limits import PARALLEL_TASKS


@dag(
    dag_id="features",
    schedule=LAKE_EVENTS,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    allowed_run_types=outcome.NO_BACKFILL,  # the lake as it is: no backfill
    doc_md=__doc__,
    tags=["tenantflow", "features", "dbt"],
    default_args={"retries": 1, "retry_delay": timedelta(seconds=15)},
    params={
        "tenants": forms.tenants("build (their whole warehouse files are built)"),
        "rebuild_from": forms.day(
            "Rebuild from", "Recompute the incremental activity models from this date (empty: only what is new)"
        ),
    },
)
def features():
    @task
    def plan() -> list[dict]:
        """The warehouse files to build, from the tenants at run time."""
        from ml.data.features import plan_builds

        ctx = get_current_context()
        events = [ev for evs in (ctx.get("triggering_asset_events") or {}).values() for ev in evs]
        return plan_builds(ctx["params"], [(ev.extra or {}).get("rebuild_from") for ev in events], PARALLEL_TASKS)

    @task(max_active_tis_per_dag=PARALLEL_TASKS, map_index_template=labels.MAP_LABEL)
    def build_and_check(warehouse: dict) -> dict:
        """dbt build for one warehouse file, GX checks of each tenant's marts, publishing for the API."""
        labels.name(warehouse["key"])
        from ml.core.warehouse import Warehouse
        from ml.data.features import build_and_check_warehouse
        from ml.models.kinds import online_marts

        wh = Warehouse.from_dict(warehouse)
        return build_and_check_warehouse(
            wh, online_marts(), rebuild_from=warehouse["rebuild_from"], threads=warehouse.get("threads")
        )

    @task(outlets=[FEATURE_MARTS], trigger_rule="all_done")
    def report(results: list[dict]) -> dict:
        """Build the GX Data Docs and emit the feature asset event with per-tenant health."""
        from ml.data.data_docs import build_data_docs
        from ml.data.features import feature_event

        extra = feature_event(results, str(build_data_docs()))
        get_current_context()["outlet_events"][FEATURE_MARTS].extra = extra
        return extra

    work = plan()
    built = build_and_check.expand(warehouse=work)
    [work, built, report(built)] >> outcome.fail_run_on_failure()


features()
