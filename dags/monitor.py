"""### Monitor: per-tenant drift and decay, and the retraining it calls for

Daily at 06:00 UTC and after every feature build (the `feature_marts` asset). For each warehouse
(a region's pool, or one silo tenant; `plan` lists them) `check_warehouse` compares every tenant's champion reference
window with the current one using Evidently 0.7 reports: behaviour (`data_drift`), model inputs
(`feature_drift`), champion scores (`prediction_drift`) and each kind's live metric of what it
served against what followed (`performance`, each kind's own measure: e.g. HitRate@10 of
recommendations). Rows land in the warehouse's
`monitoring` and `monitoring_live_metrics` tables; HTML reports under
`reports/monitoring/region=R/tenant=T/date=D/` and on the champion's MLflow run.

`watch_promotions` rolls back a champion promoted in the last days whose live metrics fell below
the champion it replaced. `decide` applies each tenant's policy (cooldown, minimum data, daily
budget, no second request while one is open) and, when tenants drifted, `retrain` starts **one**
`train` run with conf `{tenants, kinds, reason: "drift", force, reports}`. A warehouse whose checks
failed does not stop the others' decisions; the run then ends **failed** (`fail_run_on_failure`).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, get_current_context, task

from dags.common import forms, labels, outcome
from dags.common.assets import FEATURE_MARTS
from dags.common.limits import PARALLEL_TASKS
from dags.common.timing import NEVER_AT_ONCE
from dags.common.trigger import trigger_run


@dag(
    dag_id="monitor",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 6 * * *", timezone="UTC", run_immediately=NEVER_AT_ONCE), assets=FEATURE_MARTS
    ),
    # no start_date, and NEVER_AT_ONCE: unpausing waits for the next cron slot (see dags/common/timing.py)
    catchup=False,
    max_active_runs=1,
    allowed_run_types=outcome.NO_BACKFILL,
    render_template_as_native_obj=True,  # the trigger's conf is the dict `decide` returned
    doc_md=__doc__,
    tags=["tenantflow", "monitor", "evidently"],
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30)},
    params={
        "tenants": forms.tenants("check"),
        "retrain": forms.flag(
            True, "Retrain drifted tenants", "Trigger a train run for drifted tenants (off: report only)"
        ),
    },
)
def monitor():
    @task
    def plan() -> list[dict]:
        """The warehouse files holding the tenants of this run."""
        from ml.monitoring.run import plan as plan_

        return plan_(get_current_context()["params"]["tenants"])

    @task(max_active_tis_per_dag=PARALLEL_TASKS, map_index_template=labels.MAP_LABEL)
    def check_warehouse(warehouse: dict) -> dict:
        """Every check for this warehouse's tenants; one tenant's failure is its own error row."""
        labels.name(warehouse["key"])
        from ml.core.warehouse import Warehouse
        from ml.monitoring.run import monitor_warehouse

        return monitor_warehouse(Warehouse.from_dict(warehouse), tenants=warehouse["only"])

    @task(trigger_rule="all_done")
    def watch_promotions(results: list[dict]) -> list[dict]:
        """Auto-rollback of recent promotions whose live metrics fell below their predecessor's."""
        from ml.monitoring.results import read_live_metrics
        from ml.monitoring.rollback import watch_promotions

        return watch_promotions(read_live_metrics([r["warehouse"] for r in results if r]))

    @task.short_circuit(trigger_rule="all_done")
    def decide(results: list[dict]) -> dict | None:
        """One train run's conf for the drifted tenants that may retrain now; nothing when none."""
        from ml.monitoring.decisions import decide as decide_

        ctx = get_current_context()
        summaries = {t: s for r in results if r for t, s in r["tenants"].items()}
        if not ctx["params"]["retrain"]:
            return None
        return decide_(summaries, monitor_run=ctx["dag_run"].run_id)

    @task
    def retrain(conf: dict) -> None:
        """Start the train DAG's drift run ``conf["train_run_id"]`` (``drift__<monitor run>``) with ``conf``."""
        trigger_run("train", conf["train_run_id"], conf)

    work = plan()
    results = check_warehouse.expand(warehouse=work)
    # not downstream of `decide`: a short circuit skips everything downstream of it
    [work, results, watch_promotions(results)] >> outcome.fail_run_on_failure()
    retrain(decide(results))


monitor()
