"""
### Ingest: landing drops → validated, deduplicated Parquet in the lake

Runs once per data interval (daily). For every tenant (read at run time from the control database, so
onboarding a tenant changes no DAG file) it reads the complete landing files of the interval,
validates them with Great Expectations, quarantines rejected rows with a reason per row,
deduplicates by `event_id`, and atomically rewrites `lake/region=R/tenant=T/date=D/`.
Tenants are fanned out as mapped tasks, in chunks of `chunk_size` tenants balanced by the bytes
each landed.

Every task is idempotent for its interval: re-running it, clearing it, or a backfill over past
days gives byte-identical lake partitions, and a run that changed no partition starts no feature
build (see `report`). A manual run may set `start`/`end` (dates,
end exclusive) and `tenants` to ingest a range or a subset, and `current_spec` to read every file
of those days with each tenant's current source spec (after a spec was corrected: by default a
landed file is read with the spec it was first read with; `tenantflow ingest --current-spec`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import dag, get_current_context, task

from dags.common import forms, labels
from dags.common.assets import LAKE_EVENTS
from dags.common.limits import PARALLEL_TASKS


@dag(
    dag_id="ingest",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=4,
    doc_md=__doc__,
    tags=["tenantflow", "ingest"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=15)},
    params={
        "start": forms.day(
            "First landing date",
            "Empty: the run's data interval (a backfill ingests each interval it covers)",
            forms.SCOPE,
        ),
        "end": forms.day(
            "End date (exclusive)",
            "The day after the last landing date; empty: the end of the data interval",
            forms.SCOPE,
        ),
        "tenants": forms.tenants("ingest"),
        "current_spec": forms.flag(
            False,
            "Read with the current source spec",
            "Read every file of these days with each tenant's current source spec: after correcting a spec that read "
            "files without an error but wrongly (a timezone, a mapping); off: each landed file is read with the "
            "spec it was first read with (one it could not read, with the current spec)",
        ),
        "chunk_size": forms.chunk_size(8, "ingest"),
    },
)
def ingest():
    @task
    def plan() -> list[dict]:
        """Which tenants (in chunks) and which landing dates this run ingests."""
        from ml.core.settings import get_settings
        from ml.data.ingest.plan import plan_run

        ctx = get_current_context()
        return plan_run(
            get_settings(), ctx["params"], ctx.get("data_interval_start"), ctx.get("data_interval_end"), PARALLEL_TASKS
        )

    @task(max_active_tis_per_dag=PARALLEL_TASKS, map_index_template=labels.MAP_LABEL)
    def ingest_chunk(batch: dict) -> list[dict]:
        """Ingest one chunk of tenants; one tenant's bad batch never affects another."""
        labels.name(labels.tenants(batch["tenants"]))
        from datetime import date

        from ml.data.ingest.run import ingest_tenants

        start, end = date.fromisoformat(batch["start"]), date.fromisoformat(batch["end"])
        return ingest_tenants(batch["tenants"], start, end, current_spec=batch.get("current_spec", False))

    @task(outlets=[LAKE_EVENTS])
    def report(summaries: list[list[dict]]) -> dict:
        """Emit the lake asset event (the features DAG is scheduled on it) with what changed.

        Skipped when no tenant's lake changed (no drops, or a rerun or backfill that rebuilt the
        same bytes): a skipped task emits no asset event, so no feature build or training starts
        (an event naming no tenants would rebuild every tenant's features)."""
        from airflow.sdk.exceptions import AirflowSkipException

        from ml.data.ingest.plan import lake_event

        extra = lake_event([s for chunk in summaries for s in chunk])
        if not extra["tenants"]:
            raise AirflowSkipException("no tenant's lake changed in this interval: no lake event")
        get_current_context()["outlet_events"][LAKE_EVENTS].extra = extra
        return extra

    report(ingest_chunk.expand(batch=plan()))


ingest()
