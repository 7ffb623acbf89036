"""
### Train: LightGBM models of every kind, global then per tenant, gated in MLflow

Runs weekly (everyone), whenever the `feature_marts` asset updates (only what is due: tenants
without a champion, champions older than `TENANTFLOW_TRAIN_RETRAIN_EVERY_DAYS`, a changed dbt project,
tenants graduating from the global model), and when the `monitor` DAG finds drift (conf
`{tenants, kinds, reason: "drift", force, reports}`: `reports` lists each drifted tenant's drift reports,
a record on the run, not a form field). Trigger it by hand with the form. It has no backfill
(`allowed_run_types`): training reads the newest snapshot, not the logical date. Steps:

0. `plan`: the warehouses, global-model jobs and chunks of tenants of this run.
1. `snapshot` (mapped per warehouse file): freeze each tenant's training marts as Parquet
   with a content id, so training is reproducible and every version names its data.
2. `train_global` (mapped per model kind and region): the `<kind>.global.<region>` model,
   trained only on that region's tenants with `share_data = yes` (no tenant's data trains a
   model outside its region). Skipped when the run names tenants (a targeted retrain).
3. `train_tenants` (mapped over chunks of tenants): each tenant's `<kind>.<tenant>` version:
   its region's global model for young tenants (another region's only where the tenant's
   registry entry opted in: `global_region`), else the best of fine-tuned-from-global, tenant-only
   and global on the tenant's holdout. It becomes `challenger`, and `champion` only if the
   promotion gate passes; the reason is on the version and in the audit log.
4. `report`: per-tenant fairness against the median tenant; closes the monitor's retrain
   requests served by this run; emits `trained_models` (which starts `score`) when the run
   registered a version, and is skipped, with its summary logged, when every model was
   unchanged or not due.

A tenant that fails (or whose features are unhealthy) is reported and skipped; the others go
on, and the run then ends **failed** (`report` raises; `fail_run_on_failure` catches a failed
snapshot or global model, which `report` does not see). Nothing is retrained when its champion, or the challenger the gate refused, was trained on the
tenant's current snapshot, unless `force` is set.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, get_current_context, task

from dags.common import forms, labels, outcome
from dags.common.assets import FEATURE_MARTS, TRAINED_MODELS
from dags.common.limits import PARALLEL_TASKS
from dags.common.timing import NEVER_AT_ONCE


@dag(
    dag_id="train",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 * * 0", timezone="UTC", run_immediately=NEVER_AT_ONCE), assets=FEATURE_MARTS
    ),
    # no start_date, and NEVER_AT_ONCE: unpausing waits for the next cron slot (see dags/common/timing.py)
    catchup=False,
    max_active_runs=1,
    allowed_run_types=outcome.NO_BACKFILL,
    doc_md=__doc__,
    tags=["tenantflow", "train", "mlflow"],
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30)},
    params={
        "tenants": forms.tenants("train (naming tenants trains no global model)"),
        "kinds": Param(
            [],
            type=["null", "array"],
            items={"type": "string"},
            examples=forms.kind_choices(),
            title="Model kinds",
            description="Model kinds to train; none chosen means every registered kind",
            section=forms.SCOPE,
        ),
        "reason": Param(
            None,
            type=["null", "string"],
            title="Reason",
            description="Why this run (logged on every MLflow run and in the audit log); default: how it was triggered",
            section=forms.OPTIONS,
        ),
        "force": forms.flag(
            False, "Retrain unchanged tenants", "Retrain even when a tenant's data snapshot is unchanged"
        ),
        "chunk_size": forms.chunk_size(10, "training"),
    },
)
def train():
    # one XCom: the dict (see below); no retry: an unknown tenant or kind fails the same way twice
    @task(multiple_outputs=False, retries=0)
    def plan() -> dict[str, list[dict]]:
        """The run's mapped work, from its params and the tenants at run time (read once)."""
        from ml.models.runs import plan_run

        outcome.skip_missed_slot(every=timedelta(weeks=1))
        return plan_run(get_current_context()["params"], outcome.run_type(), PARALLEL_TASKS)

    # One list each for `.expand()`: mapping over a key of a multiple-outputs task can take the
    # number of keys as the map length (apache/airflow#51109).
    @task
    def warehouses_to_snapshot(work: dict) -> list[dict]:
        """The warehouse files holding the tenants of this run."""
        return work["warehouses"]

    @task
    def global_jobs(work: dict) -> list[dict]:
        """One job per model kind and region for the global models (none when the run names tenants)."""
        return work["globals"]

    @task
    def tenant_jobs(work: dict) -> list[dict]:
        """Chunks of tenants, each trained by one mapped task."""
        return work["chunks"]

    @task(max_active_tis_per_dag=PARALLEL_TASKS, map_index_template=labels.MAP_LABEL)
    def snapshot(warehouse: dict) -> dict:
        """Freeze this warehouse's tenants' training marts (read-only, under its lock)."""
        labels.name(warehouse["key"])
        from ml.core.warehouse import Warehouse
        from ml.models.runs import snapshot_warehouse

        snaps = snapshot_warehouse(Warehouse.from_dict(warehouse), warehouse["only"])
        return {t: {"snapshot_id": s.snapshot_id, "rows": s.rows} for t, s in snaps.items()}

    @task(map_index_template=labels.MAP_LABEL)
    def train_global(job: dict) -> dict:
        """`<kind>.global.<region>` on the region's sharing tenants' snapshots, gated against its champion."""
        labels.name(f"{job['kind']}.global.{job['region']}")
        from ml.models.runs import train_global_job

        return train_global_job(job)

    @task(max_active_tis_per_dag=PARALLEL_TASKS, trigger_rule="all_done", map_index_template=labels.MAP_LABEL)
    def train_tenants(job: dict) -> list[dict]:
        """Each tenant of the chunk, each kind: train, log, register, gate. One failure never stops the others."""
        labels.name(labels.tenants(job["tenants"]))
        from ml.models.runs import train_chunk

        return train_chunk(job["tenants"], job["kinds"], job["reason"], job["force"])

    @task(outlets=[TRAINED_MODELS], trigger_rule="all_done")
    def report(globals_: list[dict], chunks: list[list[dict]]) -> dict:
        """Fairness across tenants, a summary, the monitor's drift requests closed, and the `trained_models` event."""
        from ml.models import runs
        from ml.monitoring.decisions import close_requests

        results = [r for r in (globals_ or []) if r] + [r for c in (chunks or []) if c for r in c]
        close_requests(get_current_context()["dag_run"].run_id, results)
        runs.skip_if_nothing_ran(results)
        summary = runs.summarise(results)
        get_current_context()["outlet_events"][TRAINED_MODELS].extra = {
            k: summary[k] for k in ("promoted", "challengers")
        }
        runs.raise_for_failures(summary)
        runs.skip_unless_a_version_was_registered(summary)
        return summary

    work = plan()
    snaps = snapshot.expand(warehouse=warehouses_to_snapshot(work))
    globals_ = train_global.expand(job=global_jobs(work))
    snaps >> globals_
    tenants = train_tenants.expand(job=tenant_jobs(work))
    globals_ >> tenants
    [work, snaps, globals_, tenants, report(globals_, tenants)] >> outcome.fail_run_on_failure()


train()
