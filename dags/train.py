"""
### Train: LightGBM recommenders and churn models, global then per tenant, gated in MLflow

Runs weekly (everyone), whenever the `feature_marts` asset updates (only what is due: tenants
without a champion, champions older than `TENANTFLOW_RETRAIN_EVERY_DAYS`, a changed dbt project,
tenants graduating from the global model), and when the `monitor` DAG finds drift (conf
`{tenants, reason: "drift", force, reports}`). Trigger it by hand with the params below. Steps:

1. `snapshot` (mapped per warehouse file): freeze each tenant's training marts as Parquet
   with a content id, so training is reproducible and every version names its data.
2. `train_global` (mapped per model kind): the `<kind>.global` model, trained only on tenants
   with `share_data = yes`. Skipped when the run names tenants (a targeted retrain).
3. `train_tenants` (mapped over chunks of tenants): each tenant's `<kind>.<tenant>` version:
   the global model for young tenants, else the best of fine-tuned-from-global, tenant-only
   and global on the tenant's holdout. It becomes `challenger`, and `champion` only if the
   promotion gate passes; the reason is on the version and in the audit log.
4. `report`: per-tenant fairness against the median tenant; closes the monitor's retrain
   requests served by this run; emits `trained_models`.

A tenant that fails (or whose features are unhealthy) is reported and skipped; the others go
on. Nothing is retrained when a tenant's snapshot did not change, unless `force` is set.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, get_current_context, task
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable

from dags.common.assets import FEATURE_MARTS, TRAINED_MODELS
from dags.common.timing import NEVER_AT_ONCE

PARALLEL_CHUNKS = 2  # mapped training tasks at once (one per core here)


@dag(
    dag_id="train",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 3 * * 0", timezone="UTC", run_immediately=NEVER_AT_ONCE), assets=FEATURE_MARTS),
    # no start_date, and NEVER_AT_ONCE: unpausing waits for the next cron slot (see dags/common/timing.py)
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["tenantflow", "train", "mlflow"],
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30)},
    params={
        "tenants": Param([], type="array", description="Tenant ids to train; empty means every tenant (and the global models)"),
        "kinds": Param(["recommender", "churn"], type="array", description="Model kinds to train"),
        "reason": Param(None, type=["null", "string"], description="Why this run (logged on every MLflow run); default: how it was triggered"),
        "force": Param(False, type="boolean", description="Retrain even when a tenant's data snapshot is unchanged"),
        "chunk_size": Param(10, type="integer", minimum=1, description="Tenants per mapped training task"),
        "reports": Param({}, type="object", description="Set by the monitor: each drifted tenant's drift reports"),
    },
)
def train():
    @task
    def warehouses_to_snapshot() -> list[dict]:
        """The warehouse files holding the tenants of this run."""
        from ml.train import plan_run

        return plan_run(get_current_context())["warehouses"]

    @task
    def global_jobs() -> list[dict]:
        """One job per model kind for the global models (none when the run names tenants)."""
        from ml.train import plan_run

        return plan_run(get_current_context())["globals"]

    @task
    def tenant_jobs() -> list[dict]:
        """Chunks of tenants, each trained by one mapped task."""
        from ml.train import plan_run

        return plan_run(get_current_context(), parallel_chunks=PARALLEL_CHUNKS)["chunks"]

    @task(max_active_tis_per_dag=2)
    def snapshot(warehouse: dict) -> dict:
        """Freeze this warehouse's tenants' training marts (read-only, under its lock)."""
        from ml.features import Warehouse
        from ml.snapshots import export_warehouse

        wh = Warehouse.from_dict(warehouse)
        snaps = export_warehouse(wh, tenants=warehouse["only"])
        return {t: {"snapshot_id": s.snapshot_id, "rows": s.rows} for t, s in snaps.items()}

    @task
    def train_global(job: dict) -> dict:
        """`<kind>.global` on the sharing tenants' snapshots, gated against its champion."""
        from ml.train import train_global as run

        return run(job["kind"], job["reason"], force=job["force"])

    @task(max_active_tis_per_dag=PARALLEL_CHUNKS, trigger_rule="all_done")
    def train_tenants(job: dict) -> list[dict]:
        """Each tenant of the chunk, each kind: train, log, register, gate. One failure never stops the others."""
        import logging

        from ml.features import read_health
        from ml.settings import get_settings
        from ml.train import train_tenant

        log = logging.getLogger("tenantflow.train")
        settings = get_settings()
        out = []
        for tid in job["tenants"]:
            health = read_health(settings, tid)
            if health is not None and not health.get("healthy", True):
                out.append({"tenant_id": tid, "skipped": "features unhealthy: " + "; ".join(health["health_problems"])})
                continue
            for kind in job["kinds"]:
                try:
                    out.append(train_tenant(kind, tid, job["reason"], force=job["force"]))
                except Exception as exc:  # noqa: BLE001 — reported per tenant, then the next one
                    log.exception("tenant %s: training %s failed", tid, kind)
                    out.append({"tenant_id": tid, "kind": kind, "error": f"{type(exc).__name__}: {exc}"})
        return out

    @task(outlets=[TRAINED_MODELS], trigger_rule="all_done")
    def report(globals_: list[dict], chunks: list[list[dict]]) -> dict:
        """Fairness across tenants, a summary per tenant, and the `trained_models` event."""
        from ml.monitor import close_requests
        from ml.train import fairness

        results = [r for r in (globals_ or []) if r] + [r for c in (chunks or []) if c for r in c]
        close_requests(get_current_context()["dag_run"].run_id, results)  # the monitor's drift requests, if any
        fair = fairness(results)
        failed = [r for r in results if r.get("error")]
        summary = {
            "promoted": sorted(f"{r['kind']}.{r['tenant_id']}" for r in results if r.get("promoted")),
            "challengers": sorted(f"{r['kind']}.{r['tenant_id']}" for r in results if r.get("version") and r.get("promoted") is False),
            "skipped": {f"{r.get('kind', '*')}.{r['tenant_id']}": r["skipped"] for r in results if r.get("skipped")},
            "failed": {f"{r['kind']}.{r['tenant_id']}": r["error"] for r in failed},
            "fairness_flags": [f"{f['kind']}.{f['tenant_id']}" for f in fair if f["flagged"]],
        }
        get_current_context()["outlet_events"][TRAINED_MODELS].extra = {k: summary[k] for k in ("promoted", "challengers")}
        if failed:
            raise RuntimeError(f"training failed for {sorted(summary['failed'])}: {summary['failed']}")
        return summary

    snaps = snapshot.expand(warehouse=warehouses_to_snapshot())
    globals_ = train_global.expand(job=global_jobs())
    snaps >> globals_
    tenants = train_tenants.expand(job=tenant_jobs())
    globals_ >> tenants
    report(globals_, tenants)


train()
