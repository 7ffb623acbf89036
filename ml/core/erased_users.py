"""Tombstones of erased end users: a keyed hash per (tenant, user), never the user id itself.

``tenantflow erase user`` (:mod:`ml.ops.user_erasure`) records one before it deletes anything, so
ingestion drops a re-sent export's rows of that user (counted in the partition manifest as
``dropped["erased_user"]``, never quarantined: a quarantine keeps raw text) while the deletion
runs and forever after. The hash is HMAC-SHA256 (RFC 2104) keyed with a secret generated per home
(``secrets/erasure-key``, mode 0600, :mod:`ml.core.secret_files`): the control database alone
cannot be searched for a known user id, and the same user of two homes hashes differently.
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ml.core import control_db, secret_files
from ml.core.settings import Settings


def _key(settings: Settings) -> bytes:
    return secret_files.generated(settings.stores.erasure_key).encode()


def user_hash(settings: Settings, tenant_id: str, user_id: str) -> str:
    """The tombstone of one user of one tenant (64 hex characters)."""
    return _hash(_key(settings), tenant_id, user_id)


def _hash(key: bytes, tenant_id: str, user_id: str) -> str:
    return hmac.new(key, f"{tenant_id}\0{user_id}".encode(), hashlib.sha256).hexdigest()


def record(con: sqlite3.Connection, settings: Settings, tenant_id: str, user_id: str) -> str:
    """Record the tombstone inside the caller's control-database transaction; returns the hash."""
    digest = user_hash(settings, tenant_id, user_id)
    con.execute(
        "insert or ignore into erased_users (tenant_id, user_hash, erased_at) values (?, ?, ?)",
        (tenant_id, digest, datetime.now(UTC).isoformat(timespec="seconds")),
    )
    return digest


def tombstones(settings: Settings, tenant_id: str) -> set[str]:
    """The hashes of the tenant's erased users (empty for most tenants)."""
    with control_db.connect(settings) as con:
        rows = con.execute("select user_hash from erased_users where tenant_id = ?", (tenant_id,)).fetchall()
    return {r[0] for r in rows}


def erased_rows(settings: Settings, tenant_id: str, user_ids: pd.Series) -> np.ndarray:
    """Which rows (bool, ``len(user_ids)``) belong to an erased user of the tenant.

    Hashes each distinct user id once, and nothing at all for a tenant without tombstones.
    """
    found = np.zeros(len(user_ids), dtype=bool)
    dead = tombstones(settings, tenant_id)
    if not dead or not len(user_ids):
        return found
    codes, uniques = pd.factorize(user_ids, use_na_sentinel=True)
    key = _key(settings)
    hit = np.array([_hash(key, tenant_id, str(u)) in dead for u in uniques], dtype=bool)
    found[codes >= 0] = hit[codes[codes >= 0]]
    return found


def without_user(table: pa.Table, user_id: str) -> tuple[pa.Table, int]:
    """``table`` without the rows whose ``user_id`` is the user, and how many were removed (the
    table itself, and 0, when it has no such row or no ``user_id`` column)."""
    if "user_id" not in table.column_names:
        return table, 0
    mine = pc.fill_null(pc.equal(table.column("user_id").cast(pa.string()), pa.scalar(user_id)), False)
    n = int(pc.sum(mine).as_py() or 0)
    return (table.filter(pc.invert(mine)) if n else table), n
