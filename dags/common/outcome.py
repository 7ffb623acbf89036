"""A run's state tells the truth: failed when any of its tasks failed.

Airflow decides a DAG run's state from its leaf tasks only. The `features`, `train` and
`monitor` DAGs end in tasks that run whatever happened upstream (``trigger_rule="all_done"``: the
report, the feature event and the retrain decision must still happen for the tenants that
succeeded), so a run whose build or training task failed would otherwise end green.
:func:`fail_run_on_failure` is a leaf downstream of every task of its DAG: skipped when all of them
succeeded (or were skipped), failed as soon as one failed — so the run ends failed while its
report still ran. The same "watcher" pattern Airflow's own system tests use
(``tests_common/test_utils/watcher.py`` in apache/airflow).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import TriggerRule, task


@task(trigger_rule=TriggerRule.ONE_FAILED, retries=0)
def fail_run_on_failure() -> None:
    """Fail this run: one of its tasks failed (its log says why; the run's other tasks still ran).

    Raises:
        AirflowFailException: always; the task only runs when an upstream task failed.
    """
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException(
        "a task of this run failed (see the failed tasks in the grid): the run is marked failed; "
        "the tenants whose tasks succeeded were reported and published as usual"
    )


def run_type() -> str:
    """How the running task's run started: ``manual``, ``scheduled``, ``asset_triggered``, ``backfill``."""
    from airflow.sdk import get_current_context

    found = getattr(get_current_context().get("dag_run"), "run_type", "manual")
    return str(found).rsplit(".", 1)[-1].lower()  # the SDK's enum prints as DagRunType.BACKFILL


# The run types of a DAG whose work does not depend on the logical date (train, score and monitor
# read the newest snapshot, champions and windows, whatever the date): a backfill would only repeat
# today's work once per past date, so Airflow offers none (DAG ``allowed_run_types``: the UI greys
# "Backfill" out and the REST API answers 400). ``operator_triggered``: the monitor DAG's
# ``retrain`` task starts drift retrains (dags/common/trigger.py); ``asset_materialization``: "Materialize" on the
# asset a DAG produces (feature_marts, trained_models, predictions) in the UI. The ingest DAG
# backfills landing dates, and its lake events start the rest.
NO_BACKFILL = ("scheduled", "manual", "operator_triggered", "asset_triggered", "asset_materialization")


def skip_missed_slot(every: timedelta) -> None:
    """Skip the run when it is a scheduled run of a slot that passed long before it started.

    With catchup off, Airflow's cron timetables schedule the latest slot that already passed as
    soon as the DAG has an earlier automated run to follow (seen in Airflow 3.1 after a backfill,
    which these DAGs no longer allow; a scheduler that was down for days does the same): the last
    weekly training slot, days old, runs at once
    (``CronTriggerTimetable.next_dagrun_info`` takes the max of that slot and the one after the
    last automated run). Such a run repeats today's work at an hour nobody chose; a slot is run
    only within a tenth of the schedule's interval ``every`` after it (the grace Airflow itself
    gives ``run_immediately=False``), and the next slot, a trigger or an asset event does the work.

    Raises:
        AirflowSkipException: the run is such a late scheduled run (the run ends skipped, with the reason).
    """
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowSkipException

    if run_type() != "scheduled":
        return
    context = get_current_context()
    slot = context.get("logical_date") or getattr(context.get("dag_run"), "run_after", None)
    late = datetime.now(UTC) - slot if slot is not None else timedelta(0)
    if late > every / 10:
        raise AirflowSkipException(
            f"the {context['dag'].dag_id} slot of {slot:%Y-%m-%d %H:%M} UTC passed {late.total_seconds() / 3600:.0f} h "
            f"before this run started (Airflow schedules the latest missed slot after a backfill or an unpause); "
            f"skipped: the next slot, a trigger or an asset event does this work"
        )
