"""Connection arguments for Airflow's embedded SQLite database (``AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS``).

The api-server, scheduler, dag-processor and task processes share one SQLite file (in WAL mode,
which Airflow sets itself). Two things make its writes fail with ``database is locked``:

- pysqlite's default 5 s busy timeout, shorter than a scheduler loop can hold the write lock.
  :data:`CONNECT_ARGS` waits up to a minute.
- A ``SAVEPOINT`` outside a transaction. pysqlite (legacy transaction control) begins a transaction
  only before an INSERT/UPDATE/DELETE, so SQLAlchemy's ``session.begin_nested()`` makes the
  ``SAVEPOINT`` itself open a *deferred* transaction: its SELECTs take a read snapshot, and its
  first write must upgrade that to the write lock. If another process committed in between, SQLite
  answers ``SQLITE_BUSY_SNAPSHOT`` at once — no busy timeout can help, since waiting would not make
  the snapshot current (https://www.sqlite.org/isolation.html, "BEGIN IMMEDIATE"). Airflow does
  exactly this when it creates backfill runs (``airflow.models.backfill._create_backfill_dag_run``:
  ``POST /api/v2/backfills`` answered 500 and left a half-made backfill that the next request
  refused with 409) and when it queues asset-triggered runs
  (``AssetManager._slow_path_queue_dagruns``). :class:`ImmediateSavepointConnection` starts such a
  transaction with ``BEGIN IMMEDIATE`` instead, so the write lock is taken first, waited for under
  the busy timeout, and the snapshot is always current. This is SQLAlchemy's own advice for
  pysqlite and SAVEPOINT ("Serializable isolation / Savepoints / Transactional DDL" in
  sqlalchemy.dialects.sqlite), done in the DBAPI connection because Airflow owns its engine.

Only used for the embedded SQLite default (:func:`ml.ops.airflow.airflow_env`); a Postgres
deployment sets its own ``AIRFLOW__DATABASE__*``. ``tests/ops/test_airflow_sqlite.py`` reproduces
the failure with two engines on one file and shows this connection class prevents it.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Self


class _Cursor(sqlite3.Cursor):
    def execute(self, sql: str, parameters: Any = (), /) -> Self:
        if not self.connection.in_transaction and sql.lstrip()[:9].upper() == "SAVEPOINT":
            super().execute("BEGIN IMMEDIATE")
        return super().execute(sql, parameters)


class ImmediateSavepointConnection(sqlite3.Connection):
    """A pysqlite connection whose outermost ``SAVEPOINT`` opens a ``BEGIN IMMEDIATE`` transaction.

    Every other statement behaves as with :class:`sqlite3.Connection`. The transaction then ends
    where SQLAlchemy ends it (``COMMIT``/``ROLLBACK`` of the session), not at ``RELEASE``.
    """

    def cursor(self, factory: Any = _Cursor) -> sqlite3.Cursor:  # type: ignore[override]
        return super().cursor(factory)


CONNECT_ARGS: dict[str, Any] = {"timeout": 60, "factory": ImmediateSavepointConnection}
ASYNC_CONNECT_ARGS: dict[str, Any] = {"timeout": 60}
