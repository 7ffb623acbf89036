"""
### Score: daily batch predictions from each tenant's champions

Daily, and after every `train` run (the `trained_models` asset). One mapped task per
warehouse file loads each tenant's champion of every model kind from the MLflow registry and
writes the kind's table into that warehouse's `predictions` schema (each kind names its own,
e.g. `predictions.recommendations`: top-K items per user), every row tagged with the model
version that made it.
Re-running a day replaces that day's rows: no duplicates.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, get_current_context, task

from dags.common import forms, labels, outcome
from dags.common.assets import PREDICTIONS, TRAINED_MODELS
from dags.common.limits import PARALLEL_TASKS
from dags.common.timing import NEVER_AT_ONCE


@dag(
    dag_id="score",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 5 * * *", timezone="UTC", run_immediately=NEVER_AT_ONCE),
        assets=TRAINED_MODELS,
    ),
    # no start_date, and NEVER_AT_ONCE: unpausing waits for the next cron slot (see dags/common/timing.py)
    catchup=False,
    max_active_runs=1,
    allowed_run_types=outcome.NO_BACKFILL,
    doc_md=__doc__,
    tags=["tenantflow", "score"],
    default_args={"retries": 1, "retry_delay": timedelta(seconds=15)},
    params={
        "tenants": forms.tenants("score"),
        "k": Param(
            10,
            type="integer",
            minimum=1,
            maximum=100,
            title="Recommendations per user",
            description="The length of each user's top-K list",
            section=forms.OPTIONS,
        ),
    },
)
def score():
    @task
    def plan() -> list[dict]:
        """The warehouse files to score, from the tenants at run time."""
        from ml.models.score import plan as plan_

        p = get_current_context()["params"]
        return plan_(p["tenants"], k=p["k"])

    @task(max_active_tis_per_dag=PARALLEL_TASKS, map_index_template=labels.MAP_LABEL)
    def score_warehouse(warehouse: dict) -> dict:
        """Each tenant's champions score its users into this warehouse's `predictions` schema."""
        labels.name(warehouse["key"])
        from ml.core.warehouse import Warehouse
        from ml.models.score import score_warehouse as run

        wh = Warehouse.from_dict(warehouse)
        return run(wh, tenants=warehouse["only"], k=warehouse["k"])

    @task(outlets=[PREDICTIONS])
    def report(results: list[dict]) -> dict:
        """Summarise what was scored and emit the `predictions` asset event."""
        scored = {t: r for res in results for t, r in res["tenants"].items()}
        get_current_context()["outlet_events"][PREDICTIONS].extra = {
            "tenants": sorted(t for t, r in scored.items() if r)
        }
        return scored

    report(score_warehouse.expand(warehouse=plan()))


score()
