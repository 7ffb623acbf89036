"""Starting another DAG's run from a task, as Airflow's TriggerDagRunOperator does on Airflow 3.

The operator's module imports Airflow's ORM models and SQLAlchemy (0.77 s of the monitor DAG's
parse, every parse); a task raising the Task SDK's ``DagRunTriggerException`` is what the operator
itself does at run time, and the task runner turns it into the run (run type
``operator_triggered``), with none of that imported while parsing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def trigger_run(dag_id: str, run_id: str, conf: dict[str, Any]) -> None:
    """Start ``dag_id``'s run ``run_id`` with ``conf`` now; a run of that id already there is left
    alone (a retried task never starts a second one). Raises ``DagRunTriggerException`` always:
    the task runner handles it."""
    from airflow.sdk.exceptions import DagRunTriggerException

    raise DagRunTriggerException(
        trigger_dag_id=dag_id,
        dag_run_id=run_id,
        conf=conf,
        logical_date=datetime.now(UTC),
        reset_dag_run=False,
        skip_when_already_exists=True,
        wait_for_completion=False,
        allowed_states=["success"],
        failed_states=["failed"],
        poke_interval=60,
        deferrable=False,
    )
