"""The control database: one SQLite file per home for the control plane's small tables.

Tenants, API keys, the model audit log, monitoring policies and retrain requests, traffic
splits: many readers, rare writers, safe across processes (which a DuckDB file is not). The
schema is versioned: numbered SQL files under ``migrations/control/`` are applied in order,
each once, in one ``BEGIN IMMEDIATE`` transaction (SQLite's writer lock: two processes opening
a new home migrate it one after the other), and ``PRAGMA user_version`` records the last one.
Nothing else creates a table here. The API's webhook ledger is a second database with its own
migrations (``migrations/webhook/``), opened the same way.

The files use SQLite's write-ahead log (readers never wait for the writer) and every transaction
here begins ``IMMEDIATE`` (a writer takes the lock when it starts, so a read-then-write transaction
waits its turn instead of failing on a lock upgrade).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from importlib import resources
from pathlib import Path

from ml.core import atomic
from ml.core.settings import Settings, get_settings

_LOCK = threading.Lock()


class ControlConnection(sqlite3.Connection):
    """A connection that remembers the audit entry its transaction appended (:mod:`ml.core.audit`),
    so the head is written once the transaction commits."""

    audit_head: dict | None = None


def migrations(schema: str) -> list[tuple[int, str, str]]:
    """``(number, name, source)`` of a schema's migration files, in order: SQL, or Python (a
    module with ``upgrade(con)``, for a step SQL cannot do, such as hashing rows)."""
    folder = resources.files("ml.core") / "migrations" / schema
    out = []
    for f in folder.iterdir():
        if f.name.endswith((".sql", ".py")) and f.name[0].isdigit():
            number, _, name = f.name.rsplit(".", 1)[0].partition("_")
            out.append((int(number), f.name, f.read_text()))
    return sorted(out)


def latest_version(schema: str) -> int:
    return max(number for number, _, _ in migrations(schema))


def migrate(con: sqlite3.Connection, schema: str) -> int:
    """Apply the schema's migrations that this database has not seen; return its version.

    Statements are split on ``;``: a migration file holds no ``;`` inside a statement.
    """
    con.execute("begin immediate")
    try:
        (version,) = con.execute("pragma user_version").fetchone()
        for number, file, source in migrations(schema):
            if number > version:
                if file.endswith(".py"):
                    namespace: dict = {}
                    exec(compile(source, file, "exec"), namespace)
                    namespace["upgrade"](con)
                else:
                    for statement in (s for s in source.split(";") if s.strip()):
                        con.execute(statement)
                version = number
        con.execute(f"pragma user_version = {int(version)}")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return int(version)


def open_sqlite(path: Path, schema: str, factory: type[sqlite3.Connection] = sqlite3.Connection) -> sqlite3.Connection:
    """A connection (autocommit: transactions are explicit) to a migrated database; the caller closes it.

    Each connection reads the file's schema version (a header read) and migrates a file behind
    the code: a home deleted and made again in the same process is migrated again.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=30, isolation_level=None, factory=factory)
    (version,) = con.execute("pragma user_version").fetchone()
    if version < latest_version(schema):
        with _LOCK:
            con.execute("pragma journal_mode=wal")
            migrate(con, schema)
    return con


@contextmanager
def connect(settings: Settings | None = None) -> Iterator[sqlite3.Connection]:
    """The control database in one transaction: committed on a clean exit, rolled back on an error."""
    settings = settings or get_settings()
    path = settings.stores.control_db
    _adopt_legacy_file(path)
    with closing(open_sqlite(path, "control", ControlConnection)) as con:
        con.execute("begin immediate")
        try:
            yield con
        except BaseException:
            con.execute("rollback")
            raise
        con.execute("commit")
        if con.audit_head is not None:  # type: ignore[attr-defined]
            _write_audit_head(settings.stores.audit_head, con.audit_head)  # type: ignore[attr-defined]


def _write_audit_head(path: Path, head: dict) -> None:
    """Move the audit log's head forward after a commit (never back: a slower writer's older head
    is not written over a newer one)."""
    from filelock import FileLock

    with FileLock(f"{path}.lock"):
        try:
            if int(json.loads(path.read_text())["id"]) >= int(head["id"]):
                return
        except FileNotFoundError:
            pass
        atomic.write_json(path, head)


def _adopt_legacy_file(path: Path) -> None:
    """Homes made before the control database had its name kept these tables in ``registry.sqlite``."""
    legacy = path.with_name("registry.sqlite")
    if not path.exists() and legacy.exists():
        legacy.rename(path)
