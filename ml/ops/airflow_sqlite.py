"""Connection arguments for Airflow's embedded SQLite database (``AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS``).

The api-server, scheduler, dag-processor and task processes share one SQLite file. With pysqlite's
default 5 s busy timeout, a write that waits behind the scheduler's fails with "database is locked":
``POST /api/v2/backfills`` then answers 500 and leaves a half-created backfill behind (apache/airflow
#66726). Waiting up to a minute for the lock (and the WAL journal, set by :func:`ml.ops.airflow.prepare_airflow`,
so readers never block the writer) makes that a delay instead of a failure. Only used for the embedded
SQLite default; a Postgres deployment sets its own ``AIRFLOW__DATABASE__*``.
"""

CONNECT_ARGS = {"timeout": 60}
ASYNC_CONNECT_ARGS = {"timeout": 60}
