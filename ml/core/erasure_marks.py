"""Models marked for retraining because data they learned from was erased.

An erasure (:mod:`ml.ops.erasure`) marks the models that learned from the erased data, by owner:
a tenant id, or ``global.<region>`` for a region's global models, and kind. The next train run
retrains a marked model with reason ``erasure`` (its snapshot changed or not) and closes the mark
once a new version is registered.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from ml.core import control_db
from ml.core.settings import Settings


def mark(con: sqlite3.Connection, owner: str, kinds: list[str], why: str) -> None:
    """Mark an owner's models of these kinds, inside the caller's control-database transaction."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    con.executemany(
        "insert into erasure_retrains (owner, kind, requested_at, why) values (?, ?, ?, ?)",
        [(owner, kind, now, why) for kind in kinds],
    )


def pending(settings: Settings, owner: str, kind: str) -> list[str]:
    """Why each open mark of an owner's model was made (empty: none open)."""
    with control_db.connect(settings) as con:
        rows = con.execute(
            "select why from erasure_retrains where owner = ? and kind = ? and done_at is null order by id",
            (owner, kind),
        ).fetchall()
    return [r[0] for r in rows]


def close(settings: Settings, owner: str, kind: str) -> int:
    """Close the open marks of an owner's model (it was retrained); returns how many."""
    with control_db.connect(settings) as con:
        cur = con.execute(
            "update erasure_retrains set done_at = ? where owner = ? and kind = ? and done_at is null",
            (datetime.now(UTC).isoformat(timespec="seconds"), owner, kind),
        )
    return int(cur.rowcount)
