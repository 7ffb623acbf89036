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

from airflow.sdk import TriggerRule, task


@task(trigger_rule=TriggerRule.ONE_FAILED, retries=0)
def fail_run_on_failure() -> None:
    """Fail this run: one of its tasks failed (its log says why; the run's other tasks still ran).

    Raises:
        AirflowFailException: always; the task only runs when an upstream task failed.
    """
    from airflow.exceptions import AirflowFailException

    raise AirflowFailException(
        "a task of this run failed (see the failed tasks in the grid): the run is marked failed; "
        "the tenants whose tasks succeeded were reported and published as usual"
    )


def run_type() -> str:
    """How the running task's run started: ``manual``, ``scheduled``, ``asset_triggered``, ``backfill``."""
    from airflow.sdk import get_current_context

    found = getattr(get_current_context().get("dag_run"), "run_type", "manual")
    return str(found).rsplit(".", 1)[-1].lower()  # the SDK's enum prints as DagRunType.BACKFILL


def refuse_backfill(why: str) -> None:
    """Fail the running task at once when its run is a backfill: its DAG's work does not depend on
    the logical date (``why`` says what it reads instead), so a backfill would only repeat today's
    work once per past date. Airflow 3.1 offers a backfill for every DAG with a time schedule (a
    DAG-level ``allowed_run_types`` comes in a later release); this is the refusal, with a reason.

    Raises:
        AirflowFailException: the run is a backfill (no retry).
    """
    from airflow.exceptions import AirflowFailException
    from airflow.sdk import get_current_context

    if run_type() == "backfill":
        raise AirflowFailException(
            f"the {get_current_context()['dag'].dag_id} DAG does not backfill: {why}. Trigger a run instead "
            "(the ingest DAG backfills landing dates, and its lake events start the rest)."
        )
